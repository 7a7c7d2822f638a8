//! `MemoryCache` against a `HashMap` model, while under capacity.

use std::collections::HashMap;

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
    fn behaves_like_a_hash_map_under_capacity(ops in prop::collection::vec(op(), 1..200)) {
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
