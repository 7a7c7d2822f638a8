//! The interface shared by the eviction policies, so a cache can pick LRU or TinyUFO admission.

use crate::Lru;

/// An entry pushed out of a policy: the caller purges `key` from wherever the data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Evicted<T> {
    /// The key the entry was admitted under.
    pub key: u64,
    /// The data admitted with it.
    pub data: T,
    /// Its weight when it left.
    pub weight: usize,
}

/// A thread-safe eviction policy over `u64` keys (already hashes) with weighted entries.
///
/// Implemented by [`Lru`] (strict per-shard LRU) and [`crate::TinyUfoPolicy`] (S3-FIFO eviction
/// with TinyLFU admission). Every method takes `&self`: implementations synchronise internally.
///
/// # Example
/// ```
/// use larder_eviction::{EvictionPolicy, Lru, TinyUfoPolicy};
///
/// fn fill(policy: &dyn EvictionPolicy<()>) -> usize {
///     (0..100u64).map(|k| policy.admit(k, (), 1).len()).sum()
/// }
/// let lru: Lru<(), 4> = Lru::with_capacity(10, 8);
/// assert_eq!(fill(&lru), 90);
/// let ufo = TinyUfoPolicy::new(10, 100);
/// assert_eq!(fill(&ufo), 90);
/// assert!(lru.weight() <= 10 && ufo.weight() <= 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait EvictionPolicy<T>: Send + Sync {
    /// Admits `key` (or updates its data and weight) and returns the entries evicted to stay
    /// within the limit. Weights are clamped to at least 1. A policy with an admission filter may
    /// reject the newcomer, which then appears among the returned entries.
    fn admit(&self, key: u64, data: T, weight: usize) -> Vec<Evicted<T>>;

    /// Records a hit on `key` (an LRU promotes it). Returns whether the key is present.
    fn access(&self, key: u64) -> bool;

    /// The get-or-admit step of a cache: on a hit, records the access (as [`Self::access`]) and
    /// returns `None`, dropping `data`; on a miss, admits `data` (as [`Self::admit`]) and returns
    /// `Some` of the evicted entries. Policies override it to look the key up only once.
    fn access_or_admit(&self, key: u64, data: T, weight: usize) -> Option<Vec<Evicted<T>>> {
        if self.access(key) {
            None
        } else {
            Some(self.admit(key, data, weight))
        }
    }

    /// Adds `delta` to the weight of a present `key` (not past `max_weight`, never lowering it)
    /// and returns what was evicted as a result. Does nothing for an absent key.
    fn increment_weight(
        &self,
        key: u64,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<Evicted<T>>;

    /// Removes `key`, returning its data and weight. Not counted as an eviction.
    fn remove(&self, key: u64) -> Option<(T, usize)>;

    /// Whether `key` is present. The LRU changes nothing; see each policy for side effects.
    fn peek(&self, key: u64) -> bool;

    /// The total weight held.
    fn weight(&self) -> usize;

    /// The number of entries held.
    fn len(&self) -> usize;

    /// Whether no entry is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total weight evicted so far.
    fn evicted_weight(&self) -> usize;

    /// The number of entries evicted so far.
    fn evicted_len(&self) -> usize;
}

impl<T: Send, const N: usize> EvictionPolicy<T> for Lru<T, N> {
    fn admit(&self, key: u64, data: T, weight: usize) -> Vec<Evicted<T>> {
        self.admit_and_evict(key, data, weight)
    }

    fn access(&self, key: u64) -> bool {
        self.promote(key)
    }

    fn access_or_admit(&self, key: u64, data: T, weight: usize) -> Option<Vec<Evicted<T>>> {
        let mut evicted = Vec::new();
        let hit = self.promote_or_admit_and_evict(key, weight, || data, |e| evicted.push(e));
        (!hit).then_some(evicted)
    }

    fn increment_weight(
        &self,
        key: u64,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<Evicted<T>> {
        if Lru::increment_weight(self, key, delta, max_weight).is_some() {
            self.evict_to_limit_keyed()
        } else {
            Vec::new()
        }
    }

    fn remove(&self, key: u64) -> Option<(T, usize)> {
        Lru::remove(self, key)
    }

    fn peek(&self, key: u64) -> bool {
        Lru::peek(self, key)
    }

    fn weight(&self) -> usize {
        Lru::weight(self)
    }

    fn len(&self) -> usize {
        Lru::len(self)
    }

    fn evicted_weight(&self) -> usize {
        Lru::evicted_weight(self)
    }

    fn evicted_len(&self) -> usize {
        Lru::evicted_len(self)
    }
}
