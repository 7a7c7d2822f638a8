//! `MemoryCache` against a `HashMap` model, while under capacity; its bound over capacity.

use std::collections::HashMap;
use std::time::Duration;

use larder_memory_cache::{CacheStatus, MemoryCache};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u16, u32),
    ForcePut(u16, u32),
    Get(u16),
    Remove(u16),
}

fn op() -> impl Strategy<Value = Op> {
    // Few distinct keys so that operations hit the same keys often.
    let key = 0..64u16;
    prop_oneof![
        (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Put(k, v)),
        (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::ForcePut(k, v)),
        key.clone().prop_map(Op::Get),
        key.prop_map(Op::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn behaves_like_a_hash_map_under_capacity(ops in prop::collection::vec(op(), 1..120)) {
        // Capacity above the number of distinct keys: nothing is ever evicted, and TinyLFU
        // admission only acts when something would be evicted.
        let cache: MemoryCache<u16, u32> = MemoryCache::new(128);
        let mut model = HashMap::new();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    cache.put(&k, v, None);
                    model.insert(k, v);
                }
                Op::ForcePut(k, v) => {
                    cache.force_put(&k, v, None);
                    model.insert(k, v);
                }
                Op::Remove(k) => {
                    cache.remove(&k);
                    model.remove(&k);
                }
                Op::Get(k) => {
                    let expect = match model.get(&k) {
                        Some(v) => (Some(*v), CacheStatus::Hit),
                        None => (None, CacheStatus::Miss),
                    };
                    prop_assert_eq!(cache.get(&k), expect);
                }
            }
        }
        for k in 0..64 {
            prop_assert_eq!(cache.get(&k).0, model.get(&k).copied());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Over capacity with removals: removing then storing a key again must keep the store's
    /// accounting sound (regression for `TinyUfo::remove` leaving the key in its FIFO queue).
    #[test]
    fn removals_over_capacity_keep_the_bound(
        ops in prop::collection::vec(op(), 1..300),
        size in 1..16usize,
    ) {
        let cache: MemoryCache<u16, u32> = MemoryCache::new(size);
        for op in ops {
            match op {
                Op::Put(k, v) => cache.put(&k, v, None),
                Op::ForcePut(k, v) => {
                    cache.force_put(&k, v, None);
                    prop_assert_eq!(cache.get(&k), (Some(v), CacheStatus::Hit));
                }
                Op::Remove(k) => {
                    cache.remove(&k);
                    prop_assert_eq!(cache.get(&k), (None, CacheStatus::Miss));
                }
                Op::Get(k) => {
                    let _ = cache.get(&k);
                }
            }
            let held = (0..64).filter(|k| cache.get_stale(k).0.is_some()).count();
            prop_assert!(held <= size, "held {} of {}", held, size);
        }
    }
}

#[derive(Debug, Clone)]
enum TimedOp {
    /// Put with a TTL in milliseconds (`None`: never expires).
    Put(u8, u32, Option<u16>),
    Get(u8),
    GetStale(u8),
    Remove(u8),
    /// Let this many milliseconds pass.
    Advance(u16),
}

fn timed_op() -> impl Strategy<Value = TimedOp> {
    let key = 0..16u8;
    prop_oneof![
        (key.clone(), any::<u32>(), prop::option::of(0..500u16))
            .prop_map(|(k, v, ttl)| TimedOp::Put(k, v, ttl)),
        key.clone().prop_map(TimedOp::Get),
        key.clone().prop_map(TimedOp::GetStale),
        key.prop_map(TimedOp::Remove),
        (0..300u16).prop_map(TimedOp::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn ttls_behave_like_a_model_clock(ops in prop::collection::vec(timed_op(), 1..100)) {
        // tokio's paused clock drives the cache's `Instant`, so time only moves when told to.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let cache: MemoryCache<u8, u32> = MemoryCache::new(64);
            // key -> (value, expires at: ms since start)
            let mut model: HashMap<u8, (u32, Option<u64>)> = HashMap::new();
            let mut now_ms = 0u64;
            for op in ops {
                match op {
                    TimedOp::Put(k, v, ttl) => {
                        cache.put(&k, v, ttl.map(|ms| Duration::from_millis(ms.into())));
                        match ttl {
                            Some(0) => {
                                model.remove(&k);
                            }
                            ttl => {
                                model.insert(k, (v, ttl.map(|ms| now_ms + u64::from(ms))));
                            }
                        }
                    }
                    TimedOp::Remove(k) => {
                        cache.remove(&k);
                        model.remove(&k);
                    }
                    TimedOp::Advance(ms) => {
                        tokio::time::advance(Duration::from_millis(ms.into())).await;
                        now_ms += u64::from(ms);
                    }
                    TimedOp::Get(k) => {
                        let expect = match model.get(&k) {
                            None => (None, CacheStatus::Miss),
                            Some((_, Some(at))) if *at <= now_ms => (None, CacheStatus::Expired),
                            Some((v, _)) => (Some(*v), CacheStatus::Hit),
                        };
                        prop_assert_eq!(cache.get(&k), expect);
                    }
                    TimedOp::GetStale(k) => {
                        let expect = match model.get(&k) {
                            None => (None, CacheStatus::Miss),
                            Some((v, Some(at))) if *at <= now_ms => (
                                Some(*v),
                                CacheStatus::Stale(Duration::from_millis(now_ms - at)),
                            ),
                            Some((v, _)) => (Some(*v), CacheStatus::Hit),
                        };
                        prop_assert_eq!(cache.get_stale(&k), expect);
                    }
                }
            }
            Ok(())
        })?;
    }
}
