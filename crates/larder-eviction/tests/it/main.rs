//! Integration tests: model-based property tests of the LRU against a plain `VecDeque` model,
//! the `TinyUfoPolicy`'s invariants, and a multi-threaded stress test.

use std::collections::{HashSet, VecDeque};

use larder_eviction::{EvictionPolicy, Lru, TinyUfoPolicy};
use proptest::prelude::*;

/// One operation on the LRU. Keys come from a small range so that updates and hits are common.
#[derive(Debug, Clone)]
enum Op {
    Admit(u64, usize),
    AdmitAndEvict(u64, usize),
    Promote(u64),
    Remove(u64),
    Peek(u64),
    IncrementWeight(u64, usize, Option<usize>),
    InsertTail(u64, usize),
    EvictToLimit,
    PromoteOrAdmit(u64, usize),
    PromoteOrAdmitAndEvict(u64, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..40u64;
    let weight = 0..6usize;
    prop_oneof![
        3 => (key.clone(), weight.clone()).prop_map(|(k, w)| Op::Admit(k, w)),
        4 => (key.clone(), weight.clone()).prop_map(|(k, w)| Op::AdmitAndEvict(k, w)),
        3 => key.clone().prop_map(Op::Promote),
        1 => key.clone().prop_map(Op::Remove),
        1 => key.clone().prop_map(Op::Peek),
        1 => (key.clone(), 0..4usize, proptest::option::of(0..8usize))
            .prop_map(|(k, d, m)| Op::IncrementWeight(k, d, m)),
        1 => (key, weight).prop_map(|(k, w)| Op::InsertTail(k, w)),
        1 => Just(Op::EvictToLimit),
        2 => (0..40u64, 0..6usize).prop_map(|(k, w)| Op::PromoteOrAdmit(k, w)),
        3 => (0..40u64, 0..6usize).prop_map(|(k, w)| Op::PromoteOrAdmitAndEvict(k, w)),
    ]
}

/// The reference model: one `VecDeque` per shard, front = most recently used, entries are
/// `(key, weight)`.
struct Model {
    shards: Vec<VecDeque<(u64, usize)>>,
    limit: usize,
    watermark: Option<usize>,
}

impl Model {
    fn new(n: usize, limit: usize, watermark: Option<usize>) -> Self {
        Self {
            shards: vec![VecDeque::new(); n],
            limit,
            watermark,
        }
    }

    fn shard(&mut self, key: u64) -> &mut VecDeque<(u64, usize)> {
        let n = self.shards.len() as u64;
        &mut self.shards[usize::try_from(key % n).expect("shard index fits")]
    }

    fn take(&mut self, key: u64) -> Option<usize> {
        let s = self.shard(key);
        let pos = s.iter().position(|&(k, _)| k == key)?;
        s.remove(pos).map(|(_, w)| w)
    }

    fn admit(&mut self, key: u64, weight: usize) {
        self.take(key);
        self.shard(key).push_front((key, weight.max(1)));
    }

    fn len(&self) -> usize {
        self.shards.iter().map(VecDeque::len).sum()
    }

    fn weight(&self) -> usize {
        self.shards.iter().flatten().map(|&(_, w)| w).sum()
    }

    fn over_limit(&self) -> bool {
        self.weight() > self.limit || self.watermark.is_some_and(|w| self.len() > w)
    }

    /// Checks that a victim was the least recently used entry of its shard, and drops it.
    fn expect_victim(&mut self, key: u64, weight: usize) {
        let back = self.shard(key).pop_back();
        assert_eq!(
            back,
            Some((key, weight)),
            "victim is not its shard's LRU entry"
        );
    }
}

/// Runs `ops` against an `Lru<u64, N>` and the model, checking after every step. The data
/// stored with each key is the key itself, so victims prove they carry the right data.
// One match arm per operation, kept together so the model reads as a table.
#[allow(clippy::too_many_lines)]
fn check_against_model<const N: usize>(ops: &[Op], limit: usize, watermark: Option<usize>) {
    let lru: Lru<u64, N> = Lru::with_capacity_and_watermark(limit, 2, watermark);
    let mut model = Model::new(N, limit, watermark);
    let (mut evicted_len, mut evicted_weight) = (0, 0);
    for op in ops {
        match *op {
            Op::Admit(k, w) => {
                assert_eq!(lru.admit(k, k, w), Lru::<u64, N>::shard_for_key(k));
                model.admit(k, w);
            }
            Op::AdmitAndEvict(k, w) => {
                model.admit(k, w);
                for v in lru.admit_and_evict(k, k, w) {
                    assert_eq!(v.data, v.key);
                    model.expect_victim(v.key, v.weight);
                    evicted_len += 1;
                    evicted_weight += v.weight;
                }
                assert!(
                    !model.over_limit(),
                    "admit_and_evict left the LRU over its limits"
                );
            }
            Op::Promote(k) => {
                let present = model.take(k);
                assert_eq!(lru.promote(k), present.is_some());
                if let Some(w) = present {
                    model.shard(k).push_front((k, w));
                }
            }
            Op::Remove(k) => {
                assert_eq!(lru.remove(k), model.take(k).map(|w| (k, w)));
            }
            Op::Peek(k) => {
                let w = model.shard(k).iter().find(|e| e.0 == k).map(|e| e.1);
                assert_eq!(lru.peek(k), w.is_some());
                assert_eq!(lru.peek_weight(k), w);
            }
            Op::IncrementWeight(k, delta, max) => {
                let expected = model.take(k).map(|old| {
                    let grown = old + delta;
                    let new = max.map_or(grown, |m| grown.min(m).max(old));
                    model.shard(k).push_front((k, new));
                    new
                });
                assert_eq!(lru.increment_weight(k, delta, max), expected);
            }
            Op::InsertTail(k, w) => {
                let exists = model.shard(k).iter().any(|e| e.0 == k);
                assert_eq!(lru.insert_tail(k, k, w), !exists);
                if !exists {
                    model.shard(k).push_back((k, w.max(1)));
                }
            }
            Op::PromoteOrAdmit(k, w) => {
                let present = model.take(k);
                assert_eq!(lru.promote_or_admit(k, w, || k), present.is_some());
                model.shard(k).push_front((k, present.unwrap_or(w.max(1))));
            }
            Op::PromoteOrAdmitAndEvict(k, w) => {
                let present = model.take(k);
                model.shard(k).push_front((k, present.unwrap_or(w.max(1))));
                let mut victims = Vec::new();
                let hit = lru.promote_or_admit_and_evict(k, w, || k, |v| victims.push(v));
                assert_eq!(hit, present.is_some());
                if hit {
                    assert!(victims.is_empty(), "a hit never evicts");
                }
                for v in victims {
                    assert_eq!(v.data, v.key);
                    model.expect_victim(v.key, v.weight);
                    evicted_len += 1;
                    evicted_weight += v.weight;
                }
                if !hit {
                    assert!(
                        !model.over_limit(),
                        "a miss leaves the LRU within its limits"
                    );
                }
            }
            Op::EvictToLimit => {
                for (data, w) in lru.evict_to_limit() {
                    model.expect_victim(data, w);
                    evicted_len += 1;
                    evicted_weight += w;
                }
                assert!(lru.weight() <= limit);
                assert!(watermark.is_none_or(|m| lru.len() <= m));
                assert!(!model.over_limit());
            }
        }
        assert_eq!(lru.len(), model.len());
        assert_eq!(lru.weight(), model.weight());
        assert_eq!(lru.evicted_len(), evicted_len);
        assert_eq!(lru.evicted_weight(), evicted_weight);
    }
    for (i, expected) in model.shards.iter().enumerate() {
        let mut got = Vec::new();
        lru.iter_for_each(i, |k, &d, w| {
            assert_eq!(k, d);
            got.push((k, w));
        });
        assert_eq!(got, expected.iter().copied().collect::<Vec<_>>());
        assert_eq!(lru.shard_len(i), expected.len());
        assert_eq!(lru.shard_weight(i), expected.iter().map(|e| e.1).sum());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn one_shard_matches_model(ops in prop::collection::vec(op(), 1..120), limit in 1..30usize) {
        check_against_model::<1>(&ops, limit, None);
    }

    #[test]
    fn one_shard_with_watermark_matches_model(
        ops in prop::collection::vec(op(), 1..120),
        limit in 1..30usize,
        watermark in 0..10usize,
    ) {
        check_against_model::<1>(&ops, limit, Some(watermark));
    }

    #[test]
    fn four_shards_keep_per_shard_order(
        ops in prop::collection::vec(op(), 1..120),
        limit in 1..30usize,
        watermark in proptest::option::of(0..10usize),
    ) {
        check_against_model::<4>(&ops, limit, watermark);
    }

    #[test]
    fn seven_shards_keep_per_shard_order(ops in prop::collection::vec(op(), 1..120), limit in 1..30usize) {
        check_against_model::<7>(&ops, limit, None);
    }

    #[test]
    fn tinyufo_stays_within_limit_and_consistent(
        ops in prop::collection::vec((0..200u64, 1..4usize), 1..300),
        limit in 1..40usize,
    ) {
        let policy = TinyUfoPolicy::new(limit, 64);
        let mut held: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for (k, w) in ops {
            held.insert(k, w);
            for v in policy.admit(k, k, w) {
                prop_assert_eq!(v.key, v.data);
                // A victim is either a held entry or the rejected newcomer.
                prop_assert_eq!(held.remove(&v.key), Some(v.weight));
            }
            prop_assert!(policy.weight() <= limit);
            prop_assert_eq!(policy.len(), held.len());
            prop_assert_eq!(policy.weight(), held.values().sum::<usize>());
        }
        for (&k, &w) in &held {
            prop_assert!(policy.peek(k));
            prop_assert_eq!(policy.remove(k), Some((k, w)));
        }
        prop_assert!(policy.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tinyufo_mixed_ops_stay_consistent(
        ops in prop::collection::vec((0..4u8, 0..60u64, 1..4usize), 1..300),
        limit in 1..30usize,
    ) {
        let policy = TinyUfoPolicy::new(limit, 64);
        let mut held: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for (op, k, w) in ops {
            match op {
                0 | 1 => {
                    held.insert(k, w);
                    for v in policy.admit(k, k, w) {
                        prop_assert_eq!(held.remove(&v.key), Some(v.weight));
                    }
                }
                2 => {
                    prop_assert_eq!(policy.remove(k), held.remove(&k).map(|w| (k, w)));
                }
                _ => {
                    prop_assert_eq!(policy.access(k), held.contains_key(&k));
                }
            }
            prop_assert!(policy.weight() <= limit);
            prop_assert_eq!(policy.len(), held.len());
            prop_assert_eq!(policy.weight(), held.values().sum::<usize>());
        }
    }
}

#[test]
fn concurrent_admit_promote_remove_keep_invariants() {
    const THREADS: u64 = 4;
    const OPS: u64 = 20_000;
    let lru: Lru<u64, 8> = Lru::with_capacity(500, 64);
    let (mut victims, removed): (Vec<_>, Vec<_>) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let lru = &lru;
                s.spawn(move || {
                    let (mut victims, mut removed) = (Vec::new(), Vec::new());
                    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for _ in 0..OPS {
                        // xorshift: a cheap deterministic key stream per thread.
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = (x >> 16) % 2000;
                        let weight = usize::try_from(key % 5).unwrap();
                        match x % 12 {
                            0..=2 => victims.extend(lru.admit_and_evict(key, key, weight)),
                            3..=5 => {
                                lru.promote(key);
                            }
                            6 => removed.extend(lru.remove(key)),
                            7 => {
                                lru.increment_weight(key, 1, Some(6));
                            }
                            8 | 9 => {
                                lru.promote_or_admit_and_evict(
                                    key,
                                    weight,
                                    || key,
                                    |v| {
                                        victims.push(v);
                                    },
                                );
                            }
                            10 => {
                                lru.promote_or_admit(key, weight, || key);
                            }
                            _ => {
                                lru.admit(key, key, weight);
                                victims.extend(lru.evict_to_limit_keyed());
                            }
                        }
                    }
                    (victims, removed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).fold(
            (Vec::new(), Vec::new()),
            |mut acc, (v, r)| {
                acc.0.extend(v);
                acc.1.extend(r);
                acc
            },
        )
    });
    victims.extend(lru.evict_to_limit_keyed());
    assert!(lru.weight() <= lru.weight_limit());
    assert!(!removed.is_empty());

    let (mut len, mut weight, mut keys) = (0, 0, HashSet::new());
    for shard in 0..lru.shards() {
        let (mut shard_len, mut shard_weight) = (0, 0);
        lru.iter_for_each(shard, |k, &d, w| {
            assert_eq!(k, d);
            assert_eq!(Lru::<u64, 8>::shard_for_key(k), shard);
            assert!(keys.insert(k), "key {k} held twice");
            shard_len += 1;
            shard_weight += w;
        });
        assert_eq!(lru.shard_len(shard), shard_len);
        assert_eq!(lru.shard_weight(shard), shard_weight);
        len += shard_len;
        weight += shard_weight;
    }
    assert_eq!(lru.len(), len);
    assert_eq!(lru.weight(), weight);
    assert_eq!(lru.evicted_len(), victims.len());
    assert_eq!(
        lru.evicted_weight(),
        victims.iter().map(|v| v.weight).sum::<usize>()
    );
    assert!(victims.iter().all(|v| v.key == v.data && v.weight >= 1));
}

#[test]
fn both_policies_work_behind_the_trait() {
    let policies: Vec<Box<dyn EvictionPolicy<u64>>> = vec![
        Box::new(Lru::<u64, 4>::with_capacity(50, 16)),
        Box::new(TinyUfoPolicy::new(50, 200)),
    ];
    for p in &policies {
        let mut evicted = 0;
        for k in 0..200u64 {
            evicted += p.admit(k, k, 1).len();
            if k % 3 == 0 {
                p.access(k);
            }
        }
        assert_eq!(p.len() + evicted, 200);
        assert!(p.weight() <= 50);
        assert_eq!(p.evicted_len(), evicted);
        assert_eq!(p.evicted_weight(), evicted);

        let present = (0..200u64)
            .find(|&k| p.peek(k))
            .expect("something is cached");
        assert!(p.access_or_admit(present, present, 1).is_none());
        let before = p.len();
        let victims = p
            .access_or_admit(1000, 1000, 1)
            .expect("an absent key is admitted");
        assert_eq!(p.len() + victims.len(), before + 1);
        assert!(p.weight() <= 50);
    }
}

/// Regression: `TinyUfo::remove` leaves the key in its FIFO queue, so remove-then-readmit used to
/// queue the key twice and underflow the queue weight once the stale copy was evicted (a panic in
/// debug builds, an emptied cache in release builds).
#[test]
fn tinyufo_readmit_after_remove_keeps_queue_weights_sound() {
    for always_admit in [false, true] {
        let limit = 10;
        let policy = TinyUfoPolicy::new(limit, 64);
        let policy = if always_admit {
            policy.always_admit()
        } else {
            policy
        };
        assert!(policy.admit(0, 0, 1).is_empty());
        assert_eq!(policy.remove(0), Some((0, 1)));
        assert!(!policy.access(0) && !policy.peek(0));
        assert_eq!((policy.len(), policy.weight()), (0, 0));
        assert!(policy.admit(0, 0, 1).is_empty());
        // Two uses: S3-FIFO promotes the entry to the main queue when it reaches the head of the
        // small queue, so a stale second queue entry would find it again.
        assert!(policy.access(0) && policy.peek(0));
        let mut held: std::collections::HashMap<u64, usize> = [(0, 1)].into();
        // Cycle the queues many times over: the stale queue entries get popped and evicted.
        for k in 1..=(10 * limit as u64) {
            if k % 7 == 0 {
                let j = k - 1;
                assert_eq!(policy.remove(j), held.remove(&j).map(|w| (j, w)));
                held.insert(j, 1);
                for v in policy.admit(j, j, 1) {
                    assert_eq!(held.remove(&v.key), Some(v.weight), "victim {}", v.key);
                }
                let _ = policy.access(j) && policy.access(j);
            }
            held.insert(k, 1);
            for v in policy.admit(k, k, 1) {
                assert_eq!(held.remove(&v.key), Some(v.weight), "victim {}", v.key);
            }
            assert!(policy.weight() <= limit);
            assert_eq!(policy.len(), held.len());
            assert_eq!(policy.weight(), held.values().sum::<usize>());
        }
        // The cache still holds entries (a wrapped queue weight would evict everything).
        assert!(!held.is_empty());
        let k = 10 * limit as u64 + 1;
        assert!(
            policy.admit(k, k, 1).len() <= 1,
            "one admission evicts at most one unit-weight entry"
        );
    }
}
