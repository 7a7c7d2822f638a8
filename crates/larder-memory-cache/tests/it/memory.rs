//! `MemoryCache`: reads, writes, TTLs, eviction.

use std::time::Duration;

use larder_memory_cache::{CacheStatus, MemoryCache};

const MINUTE: Duration = Duration::from_mins(1);

#[test]
fn get_of_absent_key_is_a_miss() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(10);
    assert_eq!(cache.get(&1), (None, CacheStatus::Miss));
    assert_eq!(cache.get_stale(&1), (None, CacheStatus::Miss));
}

#[test]
fn put_then_get_then_remove() {
    let cache: MemoryCache<u64, &str> = MemoryCache::new(10);
    cache.put(&1, "one", None);
    cache.put(&2, "two", Some(MINUTE));
    assert_eq!(cache.get(&1), (Some("one"), CacheStatus::Hit));
    assert_eq!(cache.get(&2), (Some("two"), CacheStatus::Hit));
    cache.put(&1, "uno", None);
    assert_eq!(cache.get(&1), (Some("uno"), CacheStatus::Hit));
    cache.remove(&1);
    assert_eq!(cache.get(&1), (None, CacheStatus::Miss));
    assert_eq!(cache.get(&2), (Some("two"), CacheStatus::Hit));
}

#[test]
fn borrowed_key_types_find_owned_keys() {
    let cache: MemoryCache<String, u8> = MemoryCache::new(10);
    cache.put("a", 1, None);
    cache.put(&"b".to_string(), 2, None);
    assert_eq!(cache.get(&"a".to_string()), (Some(1), CacheStatus::Hit));
    assert_eq!(cache.get("b"), (Some(2), CacheStatus::Hit));
    assert_eq!(cache.get("c"), (None, CacheStatus::Miss));
}

#[test]
fn distinct_keys_never_see_each_others_values() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(5_000);
    for k in 0..2_000 {
        cache.force_put(&k, k * 10, None);
    }
    for k in 0..2_000 {
        assert_eq!(cache.get(&k), (Some(k * 10), CacheStatus::Hit));
    }
    for k in 2_000..4_000 {
        assert_eq!(cache.get(&k), (None, CacheStatus::Miss));
    }
}

#[tokio::test(start_paused = true)]
async fn entry_expires_after_its_ttl() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(10);
    cache.put(&1, 100, Some(Duration::from_millis(50)));
    cache.put(&2, 200, None);
    tokio::time::advance(Duration::from_millis(49)).await;
    assert_eq!(cache.get(&1), (Some(100), CacheStatus::Hit));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(cache.get(&1), (None, CacheStatus::Expired));
    assert_eq!(cache.get(&2), (Some(200), CacheStatus::Hit));
    // A new put makes it fresh again.
    cache.put(&1, 101, Some(MINUTE));
    assert_eq!(cache.get(&1), (Some(101), CacheStatus::Hit));
}

#[tokio::test(start_paused = true)]
async fn get_stale_reports_how_long_ago_it_expired() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(10);
    cache.put(&1, 100, Some(Duration::from_secs(1)));
    assert_eq!(cache.get_stale(&1), (Some(100), CacheStatus::Hit));
    tokio::time::advance(Duration::from_millis(1_250)).await;
    assert_eq!(
        cache.get_stale(&1),
        (Some(100), CacheStatus::Stale(Duration::from_millis(250)))
    );
    assert_eq!(cache.get(&1), (None, CacheStatus::Expired));
}

#[test]
fn zero_ttl_stores_nothing_and_drops_the_old_value() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(10);
    cache.put(&1, 100, Some(Duration::ZERO));
    assert_eq!(cache.get(&1), (None, CacheStatus::Miss));
    cache.put(&1, 100, None);
    cache.force_put(&1, 101, Some(Duration::ZERO));
    assert_eq!(cache.get(&1), (None, CacheStatus::Miss));
}

#[test]
fn huge_ttl_never_expires() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(10);
    cache.put(&1, 100, Some(Duration::MAX));
    assert_eq!(cache.get(&1), (Some(100), CacheStatus::Hit));
}

#[test]
fn item_count_is_bounded() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(100);
    for k in 0..10_000 {
        cache.force_put(&k, k, None);
    }
    let held = (0..10_000).filter(|k| cache.get(k).0.is_some()).count();
    assert!((90..=100).contains(&held), "held {held}");
}

#[test]
fn total_weight_is_bounded() {
    let cache: MemoryCache<u64, u64> = MemoryCache::with_weight_limit(100, 10);
    for k in 0..1_000 {
        cache.force_put_weighted(&k, k, None, 25);
    }
    let held = (0..1_000).filter(|k| cache.get(k).0.is_some()).count();
    assert!((1..=4).contains(&held), "held {held}");
    // Weight 0 counts as 1 rather than panicking.
    cache.put_weighted(&5_000, 1, None, 0);
}

#[test]
fn admission_prefers_popular_keys() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(100);
    // Keys 0..50 are written (and so counted by TinyLFU) many times.
    for _ in 0..20 {
        for k in 0..50 {
            cache.put(&k, k, None);
        }
    }
    // A scan of one-off keys must not flush them out.
    for k in 1_000..11_000 {
        cache.put(&k, k, None);
    }
    let popular = (0..50).filter(|k| cache.get(k).0.is_some()).count();
    assert!(
        popular >= 40,
        "only {popular} of 50 popular keys survived a scan"
    );
}

#[tokio::test(start_paused = true)]
async fn multi_get_reports_each_key_and_the_misses() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(10);
    cache.put(&1, 10, None);
    cache.put(&3, 30, Some(Duration::from_secs(1)));
    cache.put(&4, 40, Some(MINUTE));
    tokio::time::advance(Duration::from_secs(2)).await;
    let keys = [1, 2, 3, 4];
    let expect = vec![
        (Some(10), CacheStatus::Hit),
        (None, CacheStatus::Miss),
        (None, CacheStatus::Expired),
        (Some(40), CacheStatus::Hit),
    ];
    assert_eq!(cache.multi_get(keys.iter()), expect);
    let (found, misses) = cache.multi_get_with_miss(keys.iter());
    assert_eq!(found, expect);
    assert_eq!(misses, vec![&2, &3]);
}

#[test]
fn usable_from_many_threads() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(1_000);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let cache = &cache;
            s.spawn(move || {
                for k in 0..500 {
                    cache.force_put(&(t * 1_000 + k), k, None);
                    if let (Some(v), status) = cache.get(&(t * 1_000 + k)) {
                        assert_eq!((v, status), (k, CacheStatus::Hit));
                    }
                }
            });
        }
    });
}

/// A cache of 100 that has evicted (so admission applies), holding keys 0..1000's survivors.
fn full_cache() -> MemoryCache<u64, u64> {
    let cache = MemoryCache::new(100);
    for k in 0..1_000 {
        cache.force_put(&k, k, None);
    }
    cache
}

#[test]
fn full_cache_admits_a_new_key_on_its_second_put() {
    // A larger cache than `full_cache`, so that TinyLFU's sketch rarely overestimates a victim.
    let cache: MemoryCache<u64, u64> = MemoryCache::new(1_000);
    for k in 0..2_000 {
        cache.force_put(&k, k, None);
    }
    let mut admitted = 0;
    for k in 10_000..10_020 {
        cache.put(&k, k, None);
        assert_eq!(
            cache.get(&k).1,
            CacheStatus::Miss,
            "a key offered once is not admitted"
        );
        cache.put(&k, k, None);
        admitted += usize::from(cache.get(&k).0.is_some());
    }
    assert!(
        admitted >= 16,
        "only {admitted} of 20 admitted on the second offer"
    );
}

#[test]
fn full_cache_put_always_updates_a_cached_key() {
    let cache = full_cache();
    let cached: Vec<u64> = (0..1_000).filter(|k| cache.get(k).0.is_some()).collect();
    assert!(!cached.is_empty());
    for k in &cached {
        cache.put(k, k + 1, None);
    }
    for k in &cached {
        assert_eq!(cache.get(k), (Some(k + 1), CacheStatus::Hit));
    }
}

#[test]
fn force_put_is_stored_even_when_full() {
    let cache = full_cache();
    cache.force_put(&20_000, 1, None);
    assert_eq!(cache.get(&20_000), (Some(1), CacheStatus::Hit));
}

#[test]
fn tiny_caches_still_work() {
    let empty: MemoryCache<u64, u64> = MemoryCache::new(0);
    for k in 0..100 {
        empty.put(&k, k, None);
        empty.force_put(&k, k, None);
        // A cache of size 0 keeps at most the newest item, and does not panic.
        if let (Some(v), _) = empty.get(&k) {
            assert_eq!(v, k);
        }
    }
    for size in [1, 2] {
        let cache: MemoryCache<u64, u64> = MemoryCache::new(size);
        for k in 0..100 {
            cache.put(&k, k, None);
            cache.force_put(&k, k, None);
            // The value just forced in is readable (until the next write evicts it).
            assert_eq!(cache.get(&k), (Some(k), CacheStatus::Hit), "size {size}");
        }
    }
    let weighted: MemoryCache<u64, u64> = MemoryCache::with_weight_limit(10, 0);
    weighted.force_put_weighted(&1, 1, None, u16::MAX);
    weighted.force_put_weighted(&2, 2, None, 3);
    assert_eq!(weighted.get(&2), (Some(2), CacheStatus::Hit));
}

/// Regression: `TinyUfo::remove` leaves the key in its FIFO queue, so remove-then-put used to
/// queue the key twice and underflow the queue weight once the stale copy was evicted (a panic in
/// debug builds, a cache that evicts everything in release builds).
#[test]
fn put_after_remove_keeps_queue_weights_sound() {
    let cache: MemoryCache<u64, u64> = MemoryCache::new(10);
    cache.force_put(&0, 0, None);
    cache.remove(&0);
    assert_eq!(cache.get(&0), (None, CacheStatus::Miss));
    cache.force_put(&0, 1, None);
    // Two uses: the entry is promoted to the main queue when it reaches the head of the small
    // queue, so a stale second queue entry would find it again.
    assert_eq!(cache.get(&0), (Some(1), CacheStatus::Hit));
    assert_eq!(cache.get(&0), (Some(1), CacheStatus::Hit));
    // A zero TTL removes too.
    cache.force_put(&1, 1, None);
    cache.force_put(&1, 1, Some(Duration::ZERO));
    cache.force_put(&1, 2, None);
    assert_eq!(cache.get(&1), (Some(2), CacheStatus::Hit));
    assert_eq!(cache.get(&1), (Some(2), CacheStatus::Hit));
    // Cycle the queues many times over, removing and re-putting keys along the way.
    let last = 100;
    for k in 2..=last {
        if k % 7 == 0 {
            cache.remove(&(k - 1));
            assert_eq!(cache.get(&(k - 1)), (None, CacheStatus::Miss));
            cache.force_put(&(k - 1), k - 1, None);
            let _ = cache.get(&(k - 1));
        }
        cache.force_put(&k, k, None);
        assert_eq!(cache.get(&k), (Some(k), CacheStatus::Hit));
        let held = (0..=k).filter(|j| cache.get_stale(j).0.is_some()).count();
        assert!(held <= 10, "held {held} after {k}");
    }
    // A wrapped queue weight would make every put evict everything else.
    let held = (0..=last)
        .filter(|j| cache.get_stale(j).0.is_some())
        .count();
    assert!(held >= 5, "held {held}");
    for j in 0..=last {
        cache.remove(&j);
    }
    assert!((0..=last).all(|j| cache.get(&j).0.is_none()));
}
