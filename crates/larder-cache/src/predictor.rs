//! The cacheability predictor: a bounded memory of keys recently found uncacheable.
//!
//! A request for a key whose last response was not cacheable (say `Cache-Control: private`) would
//! otherwise take the cache lock and make every concurrent request for that key wait for nothing.
//! [`Predictor`] remembers the primary hashes of such keys in a sharded LRU, so `HttpCache` can
//! skip the lock (and the lookup) for them until a response shows the key cacheable again.
//!
//! Only reasons that say something about the *resource* are remembered: the origin marked it
//! uncacheable ([`NoCacheReason::is_origin_not_cache`]: `OriginNotCache`, `Private`, `NoStore`,
//! ...), it was too large ([`NoCacheReason::ResponseTooLarge`]), or a custom reason the
//! embedding code did not ask to skip.
//! Transient failures (storage, upstream, lock timeouts, ...) say nothing about the next response.
//!
//! The variance is ignored: prediction happens before the lookup, when only the primary key is known.
//!
//! ```
//! use larder_cache::NoCacheReason;
//! use larder_cache::predictor::{CacheablePredictor, Predictor};
//! use larder_storage::CacheKey;
//!
//! let predictor: Predictor<16> = Predictor::new(1024, None);
//! let key = CacheKey::new("", "/private", "");
//! assert!(predictor.cacheable_prediction(&key));
//!
//! assert_eq!(predictor.mark_uncacheable(&key, NoCacheReason::OriginNotCache), Some(true));
//! assert!(!predictor.cacheable_prediction(&key));
//! // A transient failure is not remembered.
//! assert_eq!(predictor.mark_uncacheable(&key, NoCacheReason::StorageError), None);
//!
//! // The resource became cacheable again.
//! assert!(!predictor.mark_cacheable(&key));
//! assert!(predictor.cacheable_prediction(&key));
//! ```

use std::collections::{BTreeMap, HashMap};

use larder_storage::CacheKey;
use parking_lot::Mutex;

use crate::NoCacheReason;

/// Says whether custom no-cache reasons should be skipped (not remembered): returns `true` to skip.
pub type CustomReasonPredicate = fn(&'static str) -> bool;

/// Predicts whether a key's response will be cacheable, from what earlier responses showed.
pub trait CacheablePredictor {
    /// Whether the response for `key` is predicted cacheable (true unless it was recently marked
    /// uncacheable).
    fn cacheable_prediction(&self, key: &CacheKey) -> bool;

    /// Record that `key`'s response was cacheable. Returns `false` if the key had been marked
    /// uncacheable (and is forgotten now), `true` if it was already predicted cacheable.
    fn mark_cacheable(&self, key: &CacheKey) -> bool;

    /// Record that `key`'s response was not cacheable for `reason`. Returns `None` if the reason is
    /// not one that is remembered, otherwise `Some(true)` if the key is newly marked and
    /// `Some(false)` if it was already marked.
    fn mark_uncacheable(&self, key: &CacheKey, reason: NoCacheReason) -> Option<bool>;
}

/// The standard [`CacheablePredictor`]: `N_SHARDS` LRU sets of primary hashes, each holding at most
/// `shard_capacity` keys (the least recently marked one is forgotten first).
#[derive(Debug)]
pub struct Predictor<const N_SHARDS: usize> {
    shards: [Mutex<LruSet>; N_SHARDS],
    skip_custom_reasons_fn: Option<CustomReasonPredicate>,
}

impl<const N_SHARDS: usize> Predictor<N_SHARDS> {
    /// A predictor remembering up to `shard_capacity` keys per shard (so up to
    /// `N_SHARDS * shard_capacity` in all; a capacity of 0 remembers nothing).
    ///
    /// `skip_custom_reasons_fn` decides which [`NoCacheReason::Custom`] reasons are not remembered
    /// (it returns `true` to skip); without it every custom reason is remembered.
    ///
    /// `N_SHARDS` must be at least 1 (checked at compile time).
    pub fn new(
        shard_capacity: usize,
        skip_custom_reasons_fn: Option<CustomReasonPredicate>,
    ) -> Self {
        const { assert!(N_SHARDS > 0, "a Predictor needs at least one shard") };
        Self {
            shards: std::array::from_fn(|_| Mutex::new(LruSet::new(shard_capacity))),
            skip_custom_reasons_fn,
        }
    }

    /// The number of keys currently marked uncacheable.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no key is marked uncacheable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, hash: u128) -> &Mutex<LruSet> {
        // Primary hashes are cryptographic hashes: their low bits are already uniform.
        #[allow(clippy::cast_possible_truncation)] // the remainder is below N_SHARDS, a usize
        &self.shards[(hash % N_SHARDS as u128) as usize]
    }

    fn remembers(&self, reason: NoCacheReason) -> bool {
        match reason {
            r if r.is_origin_not_cache() => true,
            NoCacheReason::ResponseTooLarge => true,
            NoCacheReason::Custom(r) => !self.skip_custom_reasons_fn.is_some_and(|skip| skip(r)),
            // Everything else is transient or request-specific (storage, upstream, lock and
            // internal failures, `NeverEnabled`, `Deferred`, `PredictedResponseTooLarge`, and any
            // reason added later): the next response may well be cacheable.
            _ => false,
        }
    }
}

fn primary_hash(key: &CacheKey) -> u128 {
    u128::from_be_bytes(key.primary_bin())
}

impl<const N_SHARDS: usize> CacheablePredictor for Predictor<N_SHARDS> {
    fn cacheable_prediction(&self, key: &CacheKey) -> bool {
        let hash = primary_hash(key);
        // A peek: the LRU order changes only when a key is marked.
        !self.shard(hash).lock().contains(hash)
    }

    fn mark_cacheable(&self, key: &CacheKey) -> bool {
        let hash = primary_hash(key);
        !self.shard(hash).lock().remove(hash)
    }

    fn mark_uncacheable(&self, key: &CacheKey, reason: NoCacheReason) -> Option<bool> {
        if !self.remembers(reason) {
            return None;
        }
        let hash = primary_hash(key);
        Some(self.shard(hash).lock().insert(hash))
    }
}

/// A bounded set with least-recently-inserted eviction: the map gives each key its last insertion
/// tick, the ordered map gives the ticks in age order.
#[derive(Debug)]
struct LruSet {
    capacity: usize,
    tick: u64,
    ticks: HashMap<u128, u64, ahash::RandomState>,
    order: BTreeMap<u64, u128>,
}

impl LruSet {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tick: 0,
            ticks: HashMap::default(),
            order: BTreeMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.ticks.len()
    }

    fn contains(&self, key: u128) -> bool {
        self.ticks.contains_key(&key)
    }

    /// Insert or refresh `key`; true if it was not present.
    fn insert(&mut self, key: u128) -> bool {
        if self.capacity == 0 {
            return false;
        }
        self.tick += 1;
        let tick = self.tick;
        let fresh = match self.ticks.insert(key, tick) {
            Some(old) => {
                self.order.remove(&old);
                false
            }
            None => true,
        };
        self.order.insert(tick, key);
        while self.ticks.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.ticks.remove(&oldest);
        }
        fresh
    }

    /// Remove `key`; true if it was present.
    fn remove(&mut self, key: u128) -> bool {
        match self.ticks.remove(&key) {
            Some(tick) => {
                self.order.remove(&tick);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(path: &str) -> CacheKey {
        CacheKey::new("", path, "")
    }

    #[test]
    fn remembered_reasons_only() {
        let p: Predictor<1> = Predictor::new(10, None);
        let k = key("a");
        for reason in [
            NoCacheReason::NeverEnabled,
            NoCacheReason::PredictedResponseTooLarge,
            NoCacheReason::StorageError,
            NoCacheReason::InternalError,
            NoCacheReason::Deferred,
            NoCacheReason::DeclinedToUpstream,
            NoCacheReason::UpstreamError,
            NoCacheReason::CacheLockGiveUp,
            NoCacheReason::CacheLockTimeout,
            // A page may set a cookie only for some clients: the next answer may be storable.
            NoCacheReason::SetCookie,
        ] {
            assert_eq!(p.mark_uncacheable(&k, reason), None, "{reason}");
            assert!(p.cacheable_prediction(&k), "{reason}");
        }
        assert_eq!(
            p.mark_uncacheable(&k, NoCacheReason::OriginNotCache),
            Some(true)
        );
        assert_eq!(
            p.mark_uncacheable(&k, NoCacheReason::ResponseTooLarge),
            Some(false)
        );
        assert!(!p.cacheable_prediction(&k));
        assert_eq!(
            p.mark_uncacheable(&key("b"), NoCacheReason::Custom("x")),
            Some(true)
        );
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn custom_reasons_can_be_skipped() {
        let p: Predictor<4> = Predictor::new(10, Some(|r| r == "per-request"));
        assert_eq!(
            p.mark_uncacheable(&key("a"), NoCacheReason::Custom("per-request")),
            None
        );
        assert!(p.cacheable_prediction(&key("a")));
        assert_eq!(
            p.mark_uncacheable(&key("a"), NoCacheReason::Custom("policy")),
            Some(true)
        );
        assert!(!p.cacheable_prediction(&key("a")));
    }

    #[test]
    fn mark_cacheable_forgets() {
        let p: Predictor<4> = Predictor::new(10, None);
        let k = key("a");
        assert!(p.mark_cacheable(&k));
        p.mark_uncacheable(&k, NoCacheReason::OriginNotCache);
        assert!(!p.mark_cacheable(&k));
        assert!(p.mark_cacheable(&k));
        assert!(p.cacheable_prediction(&k));
        assert!(p.is_empty());
    }

    #[test]
    fn variance_is_ignored() {
        let p: Predictor<4> = Predictor::new(10, None);
        let mut variant = key("a");
        variant.set_variance_key([1; 16]);
        p.mark_uncacheable(&variant, NoCacheReason::OriginNotCache);
        assert!(!p.cacheable_prediction(&key("a")));
    }

    #[test]
    fn least_recently_marked_key_is_forgotten_first() {
        let p: Predictor<1> = Predictor::new(2, None);
        p.mark_uncacheable(&key("a"), NoCacheReason::OriginNotCache);
        p.mark_uncacheable(&key("b"), NoCacheReason::OriginNotCache);
        // Marking `a` again makes `b` the oldest; a lookup does not change the order.
        p.mark_uncacheable(&key("a"), NoCacheReason::OriginNotCache);
        assert!(!p.cacheable_prediction(&key("b")));
        p.mark_uncacheable(&key("c"), NoCacheReason::OriginNotCache);
        assert!(p.cacheable_prediction(&key("b")));
        assert!(!p.cacheable_prediction(&key("a")));
        assert!(!p.cacheable_prediction(&key("c")));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let p: Predictor<2> = Predictor::new(0, None);
        assert_eq!(
            p.mark_uncacheable(&key("a"), NoCacheReason::OriginNotCache),
            Some(false)
        );
        assert!(p.cacheable_prediction(&key("a")));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8),
        Remove(u8),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The LRU set matches a naive model (a Vec in insertion order) and never exceeds its capacity.
        #[test]
        fn lru_set_matches_model(
            cap in 0usize..6,
            ops in prop::collection::vec(
                prop_oneof![(0u8..10).prop_map(Op::Insert), (0u8..10).prop_map(Op::Remove)],
                0..64,
            ),
        ) {
            let mut set = LruSet::new(cap);
            let mut model: Vec<u128> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        let k = u128::from(k);
                        let was = model.iter().position(|&x| x == k);
                        let fresh = set.insert(k);
                        if cap == 0 {
                            prop_assert!(!fresh);
                            continue;
                        }
                        prop_assert_eq!(fresh, was.is_none());
                        if let Some(i) = was {
                            model.remove(i);
                        }
                        model.push(k);
                        if model.len() > cap {
                            model.remove(0);
                        }
                    }
                    Op::Remove(k) => {
                        let k = u128::from(k);
                        let was = model.iter().position(|&x| x == k);
                        prop_assert_eq!(set.remove(k), was.is_some());
                        if let Some(i) = was {
                            model.remove(i);
                        }
                    }
                }
                prop_assert!(set.len() <= cap);
                prop_assert_eq!(set.len(), model.len());
                prop_assert_eq!(set.order.len(), set.ticks.len());
                for k in 0..10u128 {
                    prop_assert_eq!(set.contains(k), model.contains(&k));
                }
            }
        }
    }
}
