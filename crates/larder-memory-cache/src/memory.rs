//! [`MemoryCache`]: a TTL-aware in-memory cache on `TinyUFO`.

use std::borrow::Borrow;
use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;

use ahash::RandomState;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use tinyufo::TinyUfo;
use tokio::time::Instant;

use crate::CacheStatus;
use crate::doorkeeper::Doorkeeper;

/// The two independent 64-bit hashes of a key: `key` indexes the store, `check` is kept with the
/// value and compared on every read, so a 64-bit collision of `key` never serves another key's
/// value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct KeyHash {
    pub(crate) key: u64,
    pub(crate) check: u64,
}

/// Which admission a write goes through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// Always store.
    Force,
    /// The doorkeeper, then `TinyLFU`; an entry already cached is always updated.
    Filter,
    /// As `Filter`, for a key known to be absent (no need to look for an entry to update).
    FilterAbsent,
}

#[derive(Clone)]
struct Node<T> {
    value: T,
    /// `None`: never expires.
    expire_on: Option<Instant>,
    check: u64,
}

impl<T> Node<T> {
    /// How long ago the node expired, or `None` if it is still fresh.
    fn stale_for(&self, now: Instant) -> Option<Duration> {
        let expire_on = self.expire_on?;
        (expire_on <= now).then(|| now.duration_since(expire_on))
    }
}

/// An in-memory cache with per-entry TTLs, evicting with `TinyUFO` (S3-FIFO eviction with `TinyLFU`
/// admission).
///
/// * **Size.** [`MemoryCache::new`] counts items (every item weighs 1);
///   [`MemoryCache::with_weight_limit`] with [`put_weighted`](Self::put_weighted) bounds a total
///   weight instead.
/// * **TTL.** A TTL is checked when an entry is read, against a monotonic clock
///   ([`tokio::time::Instant`], which is [`std::time::Instant`] unless tokio's test clock is paused).
///   An expired entry is reported as [`CacheStatus::Expired`] (or served by
///   [`get_stale`](Self::get_stale)) and stays in memory until eviction reaches it.
/// * **Removal.** [`remove`](Self::remove) (and a put with a zero TTL) overwrites the entry in
///   place with a *tombstone* of weight 1, which reads as a miss and stays until eviction reaches
///   it or the key is stored again. `TinyUfo::remove` (tinyufo 0.9.1) is not used: it leaves the
///   key in its FIFO queue, so storing the key again queues it twice and, once the entry is
///   promoted, evicting the stale copy subtracts its weight a second time (the queue weight wraps
///   around: a panic in debug builds, a cache that evicts everything in release builds). Updating
///   a present key never queues it again. So a removal frees all but 1 of the entry's weight at
///   once (nothing, in a cache counting items) and the last unit when the tombstone is evicted.
/// * **Admission.** Once the cache is full, [`put`](Self::put) admits a new key only when it was
///   offered before within a recent window (`TinyLFU`'s *doorkeeper*, a small Bloom filter that
///   `TinyUFO` lacks) and `TinyLFU` then estimates it more popular than the entry it would evict.
///   Keys offered once (most misses under a skewed workload) cost one memory word instead of a
///   trip through the admission sketch. [`force_put`](Self::force_put) always stores the value.
///   Until the cache first evicts, every put is stored.
/// * **Keys.** A key is not stored: it is hashed to two independent 64-bit values with
///   per-instance random seeds. The first indexes the store; the second is stored beside the value
///   and compared on every read, so two keys whose first hashes collide never see each other's
///   value (a read of the other key is a [`CacheStatus::Miss`]; a write replaces the other entry,
///   which is only an early eviction). Serving a wrong value would need both 64-bit hashes to
///   collide at once.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use larder_memory_cache::{CacheStatus, MemoryCache};
///
/// let cache: MemoryCache<str, u32> = MemoryCache::new(1_000);
/// cache.put("answer", 42, Some(Duration::from_secs(60)));
/// assert_eq!(cache.get("answer"), (Some(42), CacheStatus::Hit));
/// assert_eq!(cache.get("question"), (None, CacheStatus::Miss));
/// cache.remove("answer");
/// assert_eq!(cache.get("answer"), (None, CacheStatus::Miss));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemoryCache<K: ?Sized, T> {
    /// `None` is a tombstone: a removed entry (see the type docs, "Removal").
    store: TinyUfo<u64, Option<Node<T>>>,
    doorkeeper: Doorkeeper,
    /// Whether the store has evicted since the last `remove`: admission only applies then.
    full: AtomicBool,
    hasher: RandomState,
    checker: RandomState,
    _key: PhantomData<fn(&K)>,
}

impl<K: Hash + ?Sized, T: Clone + Send + Sync + 'static> MemoryCache<K, T> {
    /// A cache holding up to `size` items (a size of 0 may still keep the newest item).
    pub fn new(size: usize) -> Self {
        Self::with_weight_limit(size, size)
    }

    /// A cache holding items up to a total weight of `total_weight`, where each item weighs what
    /// [`put_weighted`](Self::put_weighted) says (1 for [`put`](Self::put)).
    /// `estimated_items` sizes the admission sketch and the index: about how many items fit.
    pub fn with_weight_limit(total_weight: usize, estimated_items: usize) -> Self {
        Self {
            store: TinyUfo::new(total_weight, estimated_items.max(1)),
            doorkeeper: Doorkeeper::new(estimated_items),
            full: AtomicBool::new(false),
            hasher: RandomState::new(),
            checker: RandomState::new(),
            _key: PhantomData,
        }
    }

    pub(crate) fn hash<Q>(&self, key: &Q) -> KeyHash
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        KeyHash {
            key: self.hasher.hash_one(key),
            check: self.checker.hash_one(key),
        }
    }

    fn node(&self, hash: KeyHash) -> Option<Node<T>> {
        self.store
            .get(&hash.key)
            .flatten()
            .filter(|n| n.check == hash.check)
    }

    /// Whether a live (non-tombstone) entry is stored under the index hash `key`, whatever its
    /// check hash.
    fn is_live(&self, key: u64) -> bool {
        matches!(self.store.get(&key), Some(Some(_)))
    }

    /// Replaces the entry under the index hash `key`, if any, with a tombstone of weight 1.
    fn tombstone(&self, key: u64) {
        if self.is_live(key) {
            // An update in place (the key is present): the queue weight shrinks and the key is
            // not queued again. A shrinking weight evicts nothing.
            self.store.force_put(key, None, 1);
        }
    }

    /// Reads `key`: `(Some(value), Hit)` if present and fresh, `(None, Expired)` if its TTL ran
    /// out, `(None, Miss)` otherwise.
    pub fn get<Q>(&self, key: &Q) -> (Option<T>, CacheStatus)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.get_hashed(self.hash(key))
    }

    pub(crate) fn get_hashed(&self, hash: KeyHash) -> (Option<T>, CacheStatus) {
        match self.node(hash) {
            None => (None, CacheStatus::Miss),
            Some(n) if n.expire_on.is_none() => (Some(n.value), CacheStatus::Hit),
            Some(n) => match n.stale_for(Instant::now()) {
                None => (Some(n.value), CacheStatus::Hit),
                Some(_) => (None, CacheStatus::Expired),
            },
        }
    }

    /// Reads `key`, returning it even when expired: `(Some(value), Hit)` if fresh,
    /// `(Some(value), Stale(how_long_ago_it_expired))` if expired, `(None, Miss)` if absent.
    pub fn get_stale<Q>(&self, key: &Q) -> (Option<T>, CacheStatus)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.get_stale_hashed(self.hash(key))
    }

    pub(crate) fn get_stale_hashed(&self, hash: KeyHash) -> (Option<T>, CacheStatus) {
        match self.node(hash) {
            None => (None, CacheStatus::Miss),
            Some(n) if n.expire_on.is_none() => (Some(n.value), CacheStatus::Hit),
            Some(n) => match n.stale_for(Instant::now()) {
                None => (Some(n.value), CacheStatus::Hit),
                Some(d) => (Some(n.value), CacheStatus::Stale(d)),
            },
        }
    }

    /// Stores `value` under `key` with weight 1, subject to admission once the cache is full: a
    /// new key is stored on its second put within the doorkeeper's window, and then only if
    /// `TinyLFU` finds it more popular than the entry it would evict. A key already cached is
    /// always updated.
    ///
    /// `ttl` `None` never expires. A TTL of zero stores nothing and removes any entry the key
    /// already had (the new value is already expired, so the old one must not be served).
    pub fn put<Q>(&self, key: &Q, value: T, ttl: Option<Duration>)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.put_inner(self.hash(key), value, ttl, 1, Admit::Filter);
    }

    /// Like [`put`](Self::put) with an explicit weight, for caches made with
    /// [`with_weight_limit`](Self::with_weight_limit). A weight of 0 counts as 1.
    pub fn put_weighted<Q>(&self, key: &Q, value: T, ttl: Option<Duration>, weight: u16)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.put_inner(self.hash(key), value, ttl, weight, Admit::Filter);
    }

    /// Like [`put`](Self::put) but skips `TinyLFU` admission: the value is always stored (until
    /// eviction). Meant for values that callers are waiting for.
    pub fn force_put<Q>(&self, key: &Q, value: T, ttl: Option<Duration>)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.put_inner(self.hash(key), value, ttl, 1, Admit::Force);
    }

    /// Like [`force_put`](Self::force_put) with an explicit weight (0 counts as 1).
    pub fn force_put_weighted<Q>(&self, key: &Q, value: T, ttl: Option<Duration>, weight: u16)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.put_inner(self.hash(key), value, ttl, weight, Admit::Force);
    }

    /// [`put`](Self::put) of a key the caller has just seen missing from the cache.
    pub(crate) fn put_absent_hashed(&self, hash: KeyHash, value: T, ttl: Option<Duration>) {
        self.put_inner(hash, value, ttl, 1, Admit::FilterAbsent);
    }

    pub(crate) fn force_put_hashed(&self, hash: KeyHash, value: T, ttl: Option<Duration>) {
        self.put_inner(hash, value, ttl, 1, Admit::Force);
    }

    fn put_inner(&self, hash: KeyHash, value: T, ttl: Option<Duration>, weight: u16, admit: Admit) {
        let expire_on = match ttl {
            None => None,
            Some(ttl) if ttl.is_zero() => {
                self.tombstone(hash.key);
                return;
            }
            // A TTL too large for the clock never expires.
            Some(ttl) => Instant::now().checked_add(ttl),
        };
        let node = Some(Node {
            value,
            expire_on,
            check: hash.check,
        });
        let weight = weight.max(1);
        let evicted = if admit == Admit::Force {
            self.store.force_put(hash.key, node, weight)
        } else {
            if self.full.load(Relaxed)
                && !self.doorkeeper.check_and_record(hash.key)
                // A key already cached is updated whatever the doorkeeper says.
                && (admit == Admit::FilterAbsent || !self.is_live(hash.key))
            {
                return;
            }
            self.store.put(hash.key, node, weight)
        };
        // Evicting only tombstones does not make the cache full.
        if evicted.iter().any(|kv| kv.data.is_some()) && !self.full.load(Relaxed) {
            self.full.store(true, Relaxed);
        }
    }

    /// Removes `key`, if present.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.tombstone(self.hash(key).key);
        if self.full.load(Relaxed) {
            self.full.store(false, Relaxed);
        }
    }

    /// [`get`](Self::get) for each key, in order.
    pub fn multi_get<'a, I, Q>(&self, keys: I) -> Vec<(Option<T>, CacheStatus)>
    where
        I: Iterator<Item = &'a Q>,
        Q: Hash + ?Sized + 'a,
        K: Borrow<Q>,
    {
        keys.map(|k| self.get(k)).collect()
    }

    /// [`multi_get`](Self::multi_get), plus the keys that were missing or expired (in order).
    pub fn multi_get_with_miss<'a, I, Q>(
        &self,
        keys: I,
    ) -> (Vec<(Option<T>, CacheStatus)>, Vec<&'a Q>)
    where
        I: Iterator<Item = &'a Q>,
        Q: Hash + ?Sized + 'a,
        K: Borrow<Q>,
    {
        let mut misses = Vec::new();
        let found = keys
            .map(|k| {
                let r = self.get(k);
                if r.0.is_none() {
                    misses.push(k);
                }
                r
            })
            .collect();
        (found, misses)
    }
}

impl<K: ?Sized, T> std::fmt::Debug for MemoryCache<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_index_hash_is_a_miss_not_a_wrong_value() {
        let cache: MemoryCache<u64, &str> = MemoryCache::new(10);
        let a = KeyHash { key: 1, check: 1 };
        let b = KeyHash { key: 1, check: 2 };
        cache.force_put_hashed(a, "a", None);
        assert_eq!(cache.get_hashed(a), (Some("a"), CacheStatus::Hit));
        assert_eq!(cache.get_hashed(b), (None, CacheStatus::Miss));
        assert_eq!(cache.get_stale_hashed(b), (None, CacheStatus::Miss));
        // Writing the colliding key replaces the other entry (an early eviction).
        cache.force_put_hashed(b, "b", None);
        assert_eq!(cache.get_hashed(a), (None, CacheStatus::Miss));
        assert_eq!(cache.get_hashed(b), (Some("b"), CacheStatus::Hit));
    }

    #[test]
    fn the_two_hashes_are_independent() {
        let cache: MemoryCache<u64, ()> = MemoryCache::new(1);
        let h = cache.hash(&42);
        assert_ne!(h.key, h.check);
    }
}
