//! Tests of the `lru` module.

use super::*;

#[test]
fn admit_and_evict_returns_lru_victims_in_order() {
    let lru: Lru<u64, 1> = Lru::with_capacity(3, 4);
    for k in 1..=3 {
        assert!(lru.admit_and_evict(k, k * 10, 1).is_empty());
    }
    assert!(lru.promote(1));
    let v = lru.admit_and_evict(4, 40, 2);
    let keys: Vec<_> = v.iter().map(|e| (e.key, e.data, e.weight)).collect();
    assert_eq!(keys, [(2, 20, 1), (3, 30, 1)]);
    assert_eq!(lru.shard_keys(0), [4, 1]);
    assert_eq!((lru.len(), lru.weight()), (2, 3));
    assert_eq!((lru.evicted_len(), lru.evicted_weight()), (2, 2));
}

#[test]
fn oversized_newcomer_is_evicted_last() {
    let lru: Lru<(), 1> = Lru::with_capacity(5, 4);
    lru.admit_and_evict(1, (), 2);
    lru.admit_and_evict(2, (), 2);
    let v = lru.admit_and_evict(3, (), 9);
    assert_eq!(v.iter().map(|e| e.key).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(lru.is_empty());
    assert_eq!(lru.weight(), 0);
}

#[test]
fn zero_weight_is_clamped_to_one() {
    let lru: Lru<(), 2> = Lru::with_capacity(10, 4);
    lru.admit(7, (), 0);
    assert_eq!(lru.peek_weight(7), Some(1));
    assert!(lru.insert_tail(8, (), 0));
    assert_eq!(lru.weight(), 2);
}

#[test]
fn split_admit_then_evict_to_limit() {
    let lru: Lru<u64, 4> = Lru::with_capacity(4, 4);
    for k in 0..10 {
        assert_eq!(lru.admit(k, k, 1), Lru::<u64, 4>::shard_for_key(k));
    }
    assert_eq!(lru.weight(), 10);
    let v = lru.evict_to_limit();
    assert_eq!(v.len(), 6);
    assert_eq!(lru.weight(), 4);
    assert!(lru.evict_to_limit().is_empty());
    let sum: usize = (0..4).map(|s| lru.shard_len(s)).sum();
    assert_eq!(sum, 4);
}

#[test]
fn watermark_limits_item_count() {
    let lru: Lru<(), 2> = Lru::with_capacity_and_watermark(100, 4, Some(3));
    for k in 0..5 {
        lru.admit(k, (), 1);
    }
    assert_eq!(lru.evict_to_limit().len(), 2);
    assert_eq!(lru.len(), 3);
    let v = lru.admit_and_evict(9, (), 1);
    assert_eq!(v.len(), 1);
    assert!(lru.peek(9));
}

#[test]
fn increment_weight_updates_totals_without_admitting() {
    let lru: Lru<(), 2> = Lru::with_capacity(100, 4);
    assert_eq!(lru.increment_weight(1, 5, None), None);
    assert!(lru.is_empty());
    lru.admit(1, (), 2);
    lru.admit(3, (), 1);
    assert_eq!(lru.increment_weight(1, 5, Some(4)), Some(4));
    assert_eq!(lru.weight(), 5);
    assert_eq!(lru.shard_weight(1), 5);
    assert_eq!(lru.shard_keys(1), [1, 3]);
}

#[test]
fn remove_is_not_an_eviction() {
    let lru: Lru<&str, 2> = Lru::with_capacity(100, 4);
    lru.admit(1, "a", 3);
    assert_eq!(lru.remove(1), Some(("a", 3)));
    assert_eq!(lru.remove(1), None);
    assert_eq!((lru.len(), lru.weight(), lru.evicted_len()), (0, 0, 0));
}

#[test]
fn iter_for_each_then_insert_tail_restores_order() {
    let lru: Lru<u64, 2> = Lru::with_capacity(100, 4);
    for k in 0..8 {
        lru.admit(k, k + 100, usize::try_from(k).unwrap() + 1);
    }
    lru.promote(2);
    let restored: Lru<u64, 2> = Lru::with_capacity(100, 4);
    for shard in 0..2 {
        lru.iter_for_each(shard, |k, d, w| assert!(restored.insert_tail(k, *d, w)));
        assert_eq!(restored.shard_keys(shard), lru.shard_keys(shard));
        assert_eq!(restored.shard_weight(shard), lru.shard_weight(shard));
    }
    assert_eq!(restored.peek_lru(0), lru.peek_lru(0));
    assert_eq!(restored.weight(), lru.weight());
}

#[test]
fn evict_shard_and_peek_lru() {
    let lru: Lru<u64, 2> = Lru::with_capacity(100, 4);
    lru.admit(2, 20, 1);
    lru.admit(4, 40, 1);
    assert_eq!(lru.peek_lru(0), Some((2, 20, 1)));
    assert_eq!(lru.peek_lru(5), None);
    assert_eq!(lru.evict_shard(6), Some((20, 1)));
    assert_eq!(lru.evict_shard(1), None);
    assert_eq!(lru.evicted_len(), 1);
}

#[test]
fn promote_top_n_leaves_near_head_entries_in_place() {
    let lru: Lru<(), 1> = Lru::with_capacity(10, 4);
    for k in 1..=4 {
        lru.admit(k, (), 1);
    }
    assert!(lru.promote_top_n(3, 2));
    assert_eq!(lru.shard_keys(0), [4, 3, 2, 1]);
    assert!(lru.promote_top_n(1, 2));
    assert_eq!(lru.shard_keys(0), [1, 4, 3, 2]);
    assert!(!lru.promote_top_n(9, 2));
}

#[test]
fn promote_or_admit_tracks_without_evicting() {
    let lru: Lru<u64, 1> = Lru::with_capacity(1, 4);
    assert!(!lru.promote_or_admit(1, 1, || 10));
    assert!(!lru.promote_or_admit(2, 1, || 20));
    assert_eq!((lru.len(), lru.weight()), (2, 2));
    assert!(lru.promote_or_admit(1, 5, || unreachable!("present keys build no data")));
    assert_eq!(lru.shard_keys(0), [1, 2]);
    assert_eq!(lru.peek_weight(1), Some(1));
    assert_eq!(lru.evict_to_limit(), [(20, 1)]);
}

#[test]
fn set_weight_limit_applies_at_next_eviction() {
    let lru: Lru<(), 1> = Lru::with_capacity(10, 4);
    for k in 0..10 {
        lru.admit(k, (), 1);
    }
    lru.set_weight_limit(5);
    assert_eq!(lru.weight_limit(), 5);
    let v = lru.evict_to_limit_keyed();
    assert_eq!(v.iter().map(|e| e.key).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
}
