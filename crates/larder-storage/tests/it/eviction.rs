//! Eviction managers: victims, accounting, and save/load round trips.

use std::collections::{HashSet, VecDeque};
use std::time::SystemTime;

use larder_storage::eviction::{EvictionManager, lru, simple_lru, tinyufo};
use larder_storage::{CacheKey, CompactCacheKey, Error};
use proptest::prelude::*;

fn key(i: usize) -> CompactCacheKey {
    CacheKey::new("ns", format!("/object/{i}"), "").to_compact()
}

fn dir_str(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().expect("temp dirs have UTF-8 paths")
}

#[test]
fn simple_lru_evicts_least_recently_used_first() {
    let m = simple_lru::Manager::new(30);
    let now = SystemTime::now();
    for i in 0..3 {
        assert!(m.admit(key(i), 10, now).is_empty());
    }
    assert!(m.access(&key(0), 10, now));
    assert_eq!(m.admit(key(3), 10, now), vec![key(1)]);
    assert_eq!(m.admit(key(4), 20, now), vec![key(2), key(0)]);
    assert_eq!((m.total_items(), m.total_size()), (2, 30));
    assert_eq!((m.evicted_items(), m.evicted_size()), (3, 30));
    assert!(m.peek(&key(3)) && !m.peek(&key(0)));
    m.remove(&key(3));
    assert!(!m.peek(&key(3)));
    assert_eq!(m.total_size(), 20);
}

#[test]
fn access_starts_tracking_without_evicting_in_lru_managers() {
    let now = SystemTime::now();
    let m: lru::Manager<4> = lru::Manager::with_capacity(10, 4);
    assert!(!m.access(&key(1), 100, now));
    assert!(m.peek(&key(1)));
    assert_eq!(m.total_size(), 100, "access does not evict");
    assert_eq!(m.peek_weight(&key(1)), Some(100));
}

#[test]
fn watermark_limits_item_count() {
    let now = SystemTime::now();
    let m = simple_lru::Manager::new_with_watermark(1000, Some(2));
    m.admit(key(0), 1, now);
    m.admit(key(1), 1, now);
    assert_eq!(m.admit(key(2), 1, now), vec![key(0)]);
    let s: lru::Manager<2> = lru::Manager::with_capacity_and_watermark(1000, 4, Some(3));
    let victims: usize = (0..10).map(|i| s.admit(key(i), 1, now).len()).sum();
    assert_eq!((victims, s.total_items()), (7, 3));
}

#[test]
fn increment_weight_evicts_when_over_limit() {
    let now = SystemTime::now();
    let m = simple_lru::Manager::new(20);
    m.admit(key(0), 5, now);
    m.admit(key(1), 5, now);
    assert!(
        m.increment_weight(&key(9), 100, None).is_empty(),
        "untracked: no-op"
    );
    let victims = m.increment_weight(&key(1), 12, None);
    assert_eq!(victims, vec![key(0)]);
    assert_eq!(m.total_size(), 17);
}

#[test]
fn tinyufo_manager_tracks_and_evicts() {
    let now = SystemTime::now();
    let m = tinyufo::Manager::new(10, 100);
    let mut victims = Vec::new();
    for i in 0..30 {
        victims.extend(m.admit(key(i), 1, now));
    }
    assert!(m.total_size() <= 10);
    assert_eq!(m.total_items() + victims.len(), 30);
    assert_eq!(m.evicted_items(), victims.len());
    for v in &victims {
        assert!(!m.peek(v), "a victim is no longer tracked");
    }
    let kept: Vec<_> = (0..30).map(key).filter(|k| m.peek(k)).collect();
    assert_eq!(kept.len(), m.total_items());
    assert!(!m.access(&key(1000), 1, now));
    assert!(!m.peek(&key(1000)), "access does not start tracking");
    m.remove(&kept[0]);
    assert!(!m.peek(&kept[0]));
}

#[tokio::test]
async fn simple_lru_save_then_load_restores_order() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let m = simple_lru::Manager::new(1000);
    for i in 0..50 {
        m.admit(key(i), i + 1, now);
    }
    for i in (0..50).step_by(7) {
        m.access(&key(i), i + 1, now);
    }
    m.save(dir_str(&dir)).await.unwrap();
    let fresh = simple_lru::Manager::new(1000);
    fresh.load(dir_str(&dir)).await.unwrap();
    assert_eq!(fresh.entries(), m.entries());
    assert_eq!(fresh.total_size(), m.total_size());
    // The restored order drives eviction: both evict the same victims.
    let big = key(999);
    assert_eq!(fresh.admit(big.clone(), 500, now), m.admit(big, 500, now));
}

#[tokio::test]
async fn sharded_lru_save_then_load_restores_order() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let m: lru::Manager<4> = lru::Manager::with_capacity(10_000, 16);
    let mut variant = CacheKey::new("ns", "/varied", "alice");
    variant.set_variance_key(larder_storage::hash_key("br"));
    m.admit(variant.to_compact(), 7, now);
    for i in 0..100 {
        m.admit(key(i), 10 + i % 5, now);
    }
    for i in (0..100).step_by(3) {
        m.access(&key(i), 0, now);
    }
    m.save(dir_str(&dir)).await.unwrap();
    let fresh: lru::Manager<4> = lru::Manager::with_capacity(10_000, 16);
    fresh.load(dir_str(&dir)).await.unwrap();
    for shard in 0..4 {
        assert_eq!(fresh.shard_entries(shard), m.shard_entries(shard));
        assert_eq!(fresh.peek_lru(shard), m.peek_lru(shard));
    }
    assert!(fresh.peek(&variant.to_compact()));
    assert_eq!(
        fresh.get_shard_for_key(&key(5)),
        m.get_shard_for_key(&key(5))
    );
    assert_eq!(
        (fresh.total_items(), fresh.total_size()),
        (m.total_items(), m.total_size())
    );
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.extension().is_none_or(|ext| ext != "tmp")),
        "{names:?}"
    );
    assert_eq!(names.len(), 4);
}

#[tokio::test]
async fn tinyufo_save_then_load_restores_keys_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let m = tinyufo::Manager::new(10_000, 100);
    for i in 0..40 {
        m.admit(key(i), i + 1, now);
    }
    m.save(dir_str(&dir)).await.unwrap();
    let fresh = tinyufo::Manager::new(10_000, 100);
    fresh.load(dir_str(&dir)).await.unwrap();
    let sorted = |mut v: Vec<(CompactCacheKey, usize)>| {
        v.sort();
        v
    };
    assert_eq!(sorted(fresh.entries()), sorted(m.entries()));
    assert_eq!(fresh.total_size(), m.total_size());
}

#[tokio::test]
async fn corrupt_shard_is_reported_and_others_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let m: lru::Manager<2> = lru::Manager::with_capacity(10_000, 16);
    for i in 0..20 {
        m.admit(key(i), 1, now);
    }
    m.save(dir_str(&dir)).await.unwrap();
    std::fs::write(dir.path().join("lru.data.0"), b"LRDE\x01\xffgarbage").unwrap();
    std::fs::write(dir.path().join("lru.data.1.123-0.tmp"), b"leftover").unwrap();
    let fresh: lru::Manager<2> = lru::Manager::with_capacity(10_000, 16);
    let err = fresh.load(dir_str(&dir)).await.unwrap_err();
    assert!(matches!(err, Error::CorruptEvictionState { .. }), "{err}");
    assert_eq!(fresh.shard_entries(1), m.shard_entries(1));
    assert_eq!(fresh.shard_len(0), 0);
    assert!(
        !dir.path().join("lru.data.1.123-0.tmp").exists(),
        "leftover tmp removed"
    );

    std::fs::write(dir.path().join("simple_lru.data"), b"").unwrap();
    let simple = simple_lru::Manager::new(10);
    assert!(matches!(
        simple.load(dir_str(&dir)).await,
        Err(Error::CorruptEvictionState { .. })
    ));
    std::fs::write(dir.path().join("tinyufo.data"), b"LRDE\x01\x01").unwrap();
    let ufo = tinyufo::Manager::new(10, 10);
    assert!(ufo.load(dir_str(&dir)).await.is_err());
    assert_eq!(ufo.total_items(), 0);
}

#[tokio::test]
async fn missing_state_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let m = simple_lru::Manager::new(10);
    assert!(matches!(
        m.load(missing.to_str().unwrap()).await,
        Err(Error::Io { .. })
    ));
    // Saving creates the directory.
    m.admit(key(1), 1, SystemTime::now());
    m.save(missing.to_str().unwrap()).await.unwrap();
    assert!(missing.join("simple_lru.data").exists());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The single-list manager evicts exactly like a plain most-recent-first list.
    #[test]
    fn simple_lru_matches_a_naive_model(ops in proptest::collection::vec((0usize..20, 1usize..8, any::<bool>()), 1..200)) {
        const LIMIT: usize = 30;
        let now = SystemTime::now();
        let m = simple_lru::Manager::new(LIMIT);
        let mut model: VecDeque<(CompactCacheKey, usize)> = VecDeque::new();
        for (i, size, is_access) in ops {
            let k = key(i);
            let pos = model.iter().position(|(mk, _)| *mk == k);
            if is_access {
                let tracked = m.access(&k, size, now);
                prop_assert_eq!(tracked, pos.is_some());
                let entry = match pos {
                    Some(p) => model.remove(p).unwrap(),
                    None => (k, size),
                };
                model.push_front(entry);
            } else {
                let victims = m.admit(k.clone(), size, now);
                if let Some(p) = pos {
                    model.remove(p);
                }
                model.push_front((k, size));
                let mut expected = Vec::new();
                while model.iter().map(|(_, s)| s).sum::<usize>() > LIMIT && model.len() > 1 {
                    expected.push(model.pop_back().unwrap().0);
                }
                prop_assert_eq!(victims, expected);
                prop_assert!(m.total_size() <= LIMIT);
            }
            let tracked: HashSet<_> = model.iter().map(|(k, _)| k.clone()).collect();
            prop_assert_eq!(m.total_items(), tracked.len());
            prop_assert_eq!(m.total_size(), model.iter().map(|(_, s)| s).sum::<usize>());
        }
        let listed: Vec<_> = m.entries();
        prop_assert_eq!(listed, model.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn tinyufo_default_unit_keeps_large_entries() {
    let now = SystemTime::now();
    let m = tinyufo::Manager::new(256 << 20, 65_536);
    // 1 MiB is far beyond 65 535 bytes, the largest entry a unit of 1 could hold.
    assert!(m.admit(key(1), 1 << 20, now).is_empty());
    assert!(m.peek(&key(1)));
    assert_eq!(m.total_size(), 1 << 20);
    let refused = m.admit(key(3), 300 << 20, now);
    assert_eq!(
        refused,
        vec![key(3)],
        "larger than the whole cache: refused"
    );
}
