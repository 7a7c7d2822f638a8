//! The sharded, weighted LRU.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use parking_lot::{Mutex, MutexGuard};

use self::random::next_random;
use crate::Evicted;
use crate::shard::Shard;

mod random;

/// One shard and its lock-free shadows, padded to its own cache lines so that threads working on
/// different shards do not contend on the same line.
///
/// The shadow counters are written only while `unit` is locked (a plain load + store, no atomic
/// read-modify-write), and read without the lock by [`Lru::shard_len`] and friends.
#[repr(align(128))]
struct Slot<T> {
    unit: Mutex<Shard<T>>,
    len: AtomicUsize,
    weight: AtomicUsize,
    evicted_len: AtomicUsize,
    evicted_weight: AtomicUsize,
}

impl<T> Slot<T> {
    /// Refreshes the shadows of `unit` (the guard proves the lock is held).
    #[inline]
    fn sync(&self, unit: &MutexGuard<'_, Shard<T>>) {
        self.len.store(unit.len(), Relaxed);
        self.weight.store(unit.weight(), Relaxed);
    }

    /// Counts one eviction of `weight` (the lock is held, so load + store cannot race).
    #[inline]
    fn count_eviction(&self, weight: usize) {
        self.evicted_len
            .store(self.evicted_len.load(Relaxed) + 1, Relaxed);
        self.evicted_weight
            .store(self.evicted_weight.load(Relaxed) + weight, Relaxed);
    }
}

/// Global totals, on their own cache line.
#[repr(align(128))]
#[derive(Default)]
struct Totals {
    weight: AtomicUsize,
    len: AtomicUsize,
}

/// A sharded, weighted, thread-safe LRU keyed by `u64` hashes.
///
/// `N` is the number of shards; a key lives in shard `key % N` (see [`Lru::shard_for_key`]). Each
/// shard is an index-linked list in one `Vec` plus a hash table from key to slot, behind its own
/// [`parking_lot::Mutex`], so every operation is O(1) and touches one lock (eviction may visit a
/// few). Weights are `usize` and clamped to at least 1. Totals are relaxed atomics: exact when the
/// LRU is quiescent, best effort while other threads are writing.
///
/// Two ways to admit:
/// - [`Lru::admit_and_evict`] inserts and returns what had to go to stay under the limits (the
///   primary API);
/// - [`Lru::admit`] only inserts; call [`Lru::evict_to_limit`] afterwards (the split form, useful
///   to batch several admissions before evicting).
///
/// # Example
/// ```
/// use larder_eviction::Lru;
///
/// let lru: Lru<&str, 1> = Lru::with_capacity(10, 16);
/// assert!(lru.admit_and_evict(1, "one", 4).is_empty());
/// assert!(lru.admit_and_evict(2, "two", 4).is_empty());
/// assert!(lru.promote(1)); // 2 is now the least recently used
/// let evicted = lru.admit_and_evict(3, "three", 4);
/// assert_eq!(evicted.len(), 1);
/// assert_eq!((evicted[0].key, evicted[0].data, evicted[0].weight), (2, "two", 4));
/// assert_eq!((lru.len(), lru.weight()), (2, 8));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lru<T, const N: usize = 16> {
    slots: [Slot<T>; N],
    totals: Totals,
    weight_limit: AtomicUsize,
    len_watermark: Option<usize>,
}

impl<T, const N: usize> std::fmt::Debug for Lru<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lru")
            .field("shards", &N)
            .field("len", &self.len())
            .field("weight", &self.weight())
            .field("weight_limit", &self.weight_limit())
            .field("len_watermark", &self.len_watermark)
            .finish_non_exhaustive()
    }
}

impl<T, const N: usize> Lru<T, N> {
    /// Creates an LRU holding at most `weight_limit` total weight (once evicted down to it), with
    /// room for `capacity_per_shard` items preallocated in each of the `N` shards.
    ///
    /// # Panics
    /// Panics if `N` is 0 (a type-level set-up bug).
    #[must_use]
    pub fn with_capacity(weight_limit: usize, capacity_per_shard: usize) -> Self {
        Self::with_capacity_and_watermark(weight_limit, capacity_per_shard, None)
    }

    /// Like [`Lru::with_capacity`], plus an optional item-count limit: eviction also runs while
    /// more than `len_watermark` items are held.
    ///
    /// # Panics
    /// Panics if `N` is 0 (a type-level set-up bug).
    #[must_use]
    pub fn with_capacity_and_watermark(
        weight_limit: usize,
        capacity_per_shard: usize,
        len_watermark: Option<usize>,
    ) -> Self {
        assert!(N > 0, "an Lru needs at least one shard");
        Self {
            slots: std::array::from_fn(|_| Slot {
                unit: Mutex::new(Shard::with_capacity(capacity_per_shard)),
                len: AtomicUsize::new(0),
                weight: AtomicUsize::new(0),
                evicted_len: AtomicUsize::new(0),
                evicted_weight: AtomicUsize::new(0),
            }),
            totals: Totals::default(),
            weight_limit: AtomicUsize::new(weight_limit),
            len_watermark,
        }
    }

    /// The shard that holds `key`: `key % N`.
    #[inline]
    pub const fn shard_for_key(key: u64) -> usize {
        // `N` fits in usize and the remainder is below `N`, so the cast is lossless.
        #[allow(clippy::cast_possible_truncation)]
        let shard = (key % N as u64) as usize;
        shard
    }

    /// The number of shards, `N`.
    pub const fn shards(&self) -> usize {
        N
    }

    /// The total weight limit that eviction brings the LRU back under.
    pub fn weight_limit(&self) -> usize {
        self.weight_limit.load(Relaxed)
    }

    /// Changes the weight limit; it takes effect at the next eviction.
    pub fn set_weight_limit(&self, weight_limit: usize) {
        self.weight_limit.store(weight_limit, Relaxed);
    }

    /// The item-count limit given at construction, if any.
    pub fn len_watermark(&self) -> Option<usize> {
        self.len_watermark
    }

    /// Whether the totals exceed the weight limit or the watermark.
    #[inline]
    fn is_over_limit(&self) -> bool {
        self.totals.weight.load(Relaxed) > self.weight_limit()
            || self
                .len_watermark
                .is_some_and(|w| self.totals.len.load(Relaxed) > w)
    }

    /// Applies the global bookkeeping of an insert or update whose old weight was `old` (0 = new).
    #[inline]
    fn account_insert(&self, old: usize, new: usize) {
        if old == 0 {
            self.totals.len.fetch_add(1, Relaxed);
            self.totals.weight.fetch_add(new, Relaxed);
        } else if new > old {
            self.totals.weight.fetch_add(new - old, Relaxed);
        } else if new < old {
            self.totals.weight.fetch_sub(old - new, Relaxed);
        }
    }

    /// Applies the global bookkeeping of an entry of `weight` leaving the LRU.
    #[inline]
    fn account_removal(&self, weight: usize) {
        self.totals.len.fetch_sub(1, Relaxed);
        self.totals.weight.fetch_sub(weight, Relaxed);
    }

    /// Inserts `key` (or replaces its data and weight) at the head, without evicting.
    ///
    /// `weight` is clamped to at least 1. Returns the index of the shard the key lives in. The LRU
    /// may now be over its limits; call [`Lru::evict_to_limit`], or use [`Lru::admit_and_evict`].
    pub fn admit(&self, key: u64, data: T, weight: usize) -> usize {
        let shard = Self::shard_for_key(key);
        let slot = &self.slots[shard];
        let weight = weight.max(1);
        let mut unit = slot.unit.lock();
        let old = unit.admit(key, data, weight);
        self.account_insert(old, weight);
        slot.sync(&unit);
        shard
    }

    /// Inserts `key` (or replaces its data and weight) at the head, then evicts least recently
    /// used entries until the total weight is within the limit (and the length within the
    /// watermark). Returns the evicted entries, which the caller may need to purge elsewhere.
    ///
    /// `weight` is clamped to at least 1. Eviction first takes the tail of the key's own shard,
    /// under the lock already held, as long as that shard is not shorter than the average shard;
    /// the rest comes from the balanced loop of [`Lru::evict_to_limit`]. The new entry itself is
    /// evicted only when nothing else is left (it alone exceeds a limit). With one shard the
    /// victims are exactly the least recently used entries, oldest first. Replaced data is
    /// dropped, not returned.
    pub fn admit_and_evict(&self, key: u64, data: T, weight: usize) -> Vec<Evicted<T>> {
        let mut evicted = Vec::new();
        self.admit_and_evict_with(key, data, weight, |e| evicted.push(e));
        evicted
    }

    /// [`Lru::admit_and_evict`] handing each victim to `sink` instead of collecting a `Vec`
    /// (no allocation on the hot path). `sink` may run while a shard lock is held: it must not
    /// call back into this LRU.
    pub fn admit_and_evict_with<F: FnMut(Evicted<T>)>(
        &self,
        key: u64,
        data: T,
        weight: usize,
        sink: F,
    ) {
        let weight = weight.max(1);
        let slot = &self.slots[Self::shard_for_key(key)];
        let mut unit = slot.unit.lock();
        let old = unit.admit(key, data, weight);
        self.evict_after_insert(slot, unit, key, old, weight, sink);
    }

    /// Promotes `key` if present and returns `true`; otherwise admits `make()` with `weight` at
    /// the head and returns `false`, without evicting (the LRU may be left over its limits, as
    /// with [`Lru::admit`]). One lock and one table lookup: the "access" of a cache that tracks
    /// an entry as soon as it is seen.
    pub fn promote_or_admit(&self, key: u64, weight: usize, make: impl FnOnce() -> T) -> bool {
        let slot = &self.slots[Self::shard_for_key(key)];
        let weight = weight.max(1);
        let mut unit = slot.unit.lock();
        if unit.promote_or_insert(key, weight, make) {
            return true;
        }
        self.account_insert(0, weight);
        slot.sync(&unit);
        false
    }

    /// The get-or-admit step of a cache in one call: promotes `key` if present and returns
    /// `true`; otherwise admits `make()` with `weight`, hands what must be evicted to stay within
    /// the limits to `sink` (as [`Lru::admit_and_evict_with`] does) and returns `false`.
    ///
    /// Equivalent to [`Lru::promote`] followed on a miss by [`Lru::admit_and_evict_with`], but
    /// takes the shard lock once instead of twice.
    pub fn promote_or_admit_and_evict<F: FnMut(Evicted<T>)>(
        &self,
        key: u64,
        weight: usize,
        make: impl FnOnce() -> T,
        sink: F,
    ) -> bool {
        let slot = &self.slots[Self::shard_for_key(key)];
        let weight = weight.max(1);
        let mut unit = slot.unit.lock();
        if unit.promote_or_insert(key, weight, make) {
            return true;
        }
        self.evict_after_insert(slot, unit, key, 0, weight, sink);
        false
    }

    /// The eviction half of every evicting admission: `key` was just inserted (replacing an
    /// entry of weight `old`, 0 if new) under the lock `unit` of `slot`.
    ///
    /// It evicts locally while the shard holds at least its share of the items (a short shard
    /// leaves the work to the balanced path), then releases the lock and hands any remaining
    /// excess to [`Lru::evict_with`].
    #[inline]
    fn evict_after_insert<F: FnMut(Evicted<T>)>(
        &self,
        slot: &Slot<T>,
        mut unit: MutexGuard<'_, Shard<T>>,
        key: u64,
        old: usize,
        weight: usize,
        mut sink: F,
    ) {
        // Net changes to the global totals, applied once at the end (wrapping arithmetic encodes
        // decreases). A steady-state miss admits one entry and evicts one of the same weight, so
        // it usually writes no shared counter at all.
        let mut d_len = usize::from(old == 0);
        let mut d_weight = weight.wrapping_sub(old);
        let limit = self.weight_limit();
        loop {
            let len = self.totals.len.load(Relaxed).wrapping_add(d_len);
            let total = self.totals.weight.load(Relaxed).wrapping_add(d_weight);
            let over = total > limit || self.len_watermark.is_some_and(|w| len > w);
            if !over || unit.len() * N < len {
                break;
            }
            let Some((k, d, w)) = unit.evict_unless(Some(key)) else {
                break;
            };
            d_len = d_len.wrapping_sub(1);
            d_weight = d_weight.wrapping_sub(w);
            slot.count_eviction(w);
            sink(Evicted {
                key: k,
                data: d,
                weight: w,
            });
        }
        if d_len != 0 {
            self.totals.len.fetch_add(d_len, Relaxed);
        }
        if d_weight != 0 {
            self.totals.weight.fetch_add(d_weight, Relaxed);
        }
        slot.sync(&unit);
        drop(unit);
        if self.is_over_limit() {
            self.evict_with(Some(key), sink);
        }
    }

    /// Evicts the least recently used entry of shard `shard`, if any and if it is not `keep`.
    fn evict_at(&self, shard: usize, keep: Option<u64>) -> Option<Evicted<T>> {
        let slot = &self.slots[shard];
        let mut unit = slot.unit.lock();
        let (key, data, weight) = unit.evict_unless(keep)?;
        self.account_removal(weight);
        slot.count_eviction(weight);
        slot.sync(&unit);
        Some(Evicted { key, data, weight })
    }

    /// Evicts the least recently used entry of shard `shard_seed % N`, if any.
    pub fn evict_shard(&self, shard_seed: u64) -> Option<(T, usize)> {
        self.evict_at(Self::shard_for_key(shard_seed), None)
            .map(|e| (e.data, e.weight))
    }

    /// The eviction loop shared by [`Lru::evict_to_limit`] and [`Lru::admit_and_evict`].
    ///
    /// Each step picks the longer of two random shards ("power of two choices", which keeps the
    /// shards balanced) and probes onwards if it is empty. To stay bounded under concurrent
    /// admissions it stops once it has evicted the excess it saw at the start. The entry `keep`
    /// (one just admitted) is passed over until nothing else is left to evict.
    fn evict_with(&self, mut keep: Option<u64>, mut sink: impl FnMut(Evicted<T>)) {
        let limit = self.weight_limit();
        let mut excess_weight = self.totals.weight.load(Relaxed).saturating_sub(limit);
        let mut excess_len = self
            .len_watermark
            .map_or(0, |w| self.totals.len.load(Relaxed).saturating_sub(w));
        while (excess_weight > 0 && self.totals.weight.load(Relaxed) > limit)
            || (excess_len > 0
                && self
                    .len_watermark
                    .is_some_and(|w| self.totals.len.load(Relaxed) > w))
        {
            let start = if N == 1 {
                0
            } else {
                let r = next_random();
                let a = Self::shard_for_key(r);
                let b = Self::shard_for_key(r >> 32);
                if self.shard_len(a) >= self.shard_len(b) {
                    a
                } else {
                    b
                }
            };
            let mut shard = start;
            let victim = loop {
                if let Some(e) = self.evict_at(shard, keep) {
                    break Some(e);
                }
                shard = (shard + 1) % N;
                if shard == start {
                    break None;
                }
            };
            let Some(e) = victim else {
                if keep.take().is_some() {
                    continue;
                }
                break;
            };
            excess_weight = excess_weight.saturating_sub(e.weight);
            excess_len = excess_len.saturating_sub(1);
            sink(e);
        }
    }

    /// Evicts least recently used entries until the total weight is within the limit and the
    /// length within the watermark. Returns the evicted data and weights.
    ///
    /// Shards are picked by "power of two choices" on their length, so the per-shard order is
    /// strict LRU while the order across shards is approximate. When no other thread is admitting
    /// concurrently, `weight() <= weight_limit()` holds when this returns.
    pub fn evict_to_limit(&self) -> Vec<(T, usize)> {
        let mut evicted = Vec::new();
        if self.is_over_limit() {
            self.evict_with(None, |e| evicted.push((e.data, e.weight)));
        }
        evicted
    }

    /// Like [`Lru::evict_to_limit`], but the victims carry their keys.
    pub fn evict_to_limit_keyed(&self) -> Vec<Evicted<T>> {
        let mut evicted = Vec::new();
        if self.is_over_limit() {
            self.evict_with(None, |e| evicted.push(e));
        }
        evicted
    }

    /// Moves `key` to the head of its shard. Returns whether the key was present.
    ///
    /// An entry already at the head is left untouched, so repeated hits on a hot key cost one
    /// lock and one table lookup.
    #[inline]
    pub fn promote(&self, key: u64) -> bool {
        self.slots[Self::shard_for_key(key)]
            .unit
            .lock()
            .promote(key)
    }

    /// Promotes `key` unless it is already among the `top` most recently used entries of its
    /// shard, in which case the order is left as it is. Returns whether the key was present.
    ///
    /// This trades strict LRU order near the head for fewer writes on very hot keys; the check
    /// walks up to `top` nodes, so keep `top` small (plain [`Lru::promote`] is usually as fast).
    pub fn promote_top_n(&self, key: u64, top: usize) -> bool {
        let mut unit = self.slots[Self::shard_for_key(key)].unit.lock();
        unit.is_near_head(key, top) || unit.promote(key)
    }

    /// Adds `delta` to the weight of `key` and promotes it. With `max_weight` the weight does not
    /// grow past it (a weight already above it is kept). Does not evict: call
    /// [`Lru::evict_to_limit`] afterwards.
    ///
    /// Returns the new weight, or `None` if the key is not present (nothing is admitted).
    pub fn increment_weight(
        &self,
        key: u64,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Option<usize> {
        let slot = &self.slots[Self::shard_for_key(key)];
        let mut unit = slot.unit.lock();
        let (old, new) = unit.increment_weight(key, delta, max_weight)?;
        self.account_insert(old, new);
        slot.sync(&unit);
        Some(new)
    }

    /// Removes `key`. Returns its data and weight. Removal is not counted as an eviction.
    pub fn remove(&self, key: u64) -> Option<(T, usize)> {
        let slot = &self.slots[Self::shard_for_key(key)];
        let mut unit = slot.unit.lock();
        let removed = unit.remove(key)?;
        self.account_removal(removed.1);
        slot.sync(&unit);
        Some(removed)
    }

    /// Inserts `key` at the tail of its shard (least recently used), for restoring a saved order:
    /// feed each shard's entries from most to least recently used. Does not evict.
    ///
    /// `weight` is clamped to at least 1. Returns `false`, changing nothing, if the key is
    /// already present.
    pub fn insert_tail(&self, key: u64, data: T, weight: usize) -> bool {
        let slot = &self.slots[Self::shard_for_key(key)];
        let weight = weight.max(1);
        let mut unit = slot.unit.lock();
        if !unit.insert_tail(key, data, weight) {
            return false;
        }
        self.account_insert(0, weight);
        slot.sync(&unit);
        true
    }

    /// Whether `key` is present, without changing the order.
    pub fn peek(&self, key: u64) -> bool {
        self.slots[Self::shard_for_key(key)].unit.lock().peek(key)
    }

    /// The weight of `key`, without changing the order.
    pub fn peek_weight(&self, key: u64) -> Option<usize> {
        self.slots[Self::shard_for_key(key)]
            .unit
            .lock()
            .peek_weight(key)
    }

    /// The least recently used entry of shard `shard` as `(key, data, weight)`, without removing
    /// it. `None` if the shard is empty or `shard >= N`.
    pub fn peek_lru(&self, shard: usize) -> Option<(u64, T, usize)>
    where
        T: Clone,
    {
        let unit = self.slots.get(shard)?.unit.lock();
        unit.peek_lru().map(|(k, d, w)| (k, d.clone(), w))
    }

    /// The total weight held.
    pub fn weight(&self) -> usize {
        self.totals.weight.load(Relaxed)
    }

    /// The number of entries held.
    pub fn len(&self) -> usize {
        self.totals.len.load(Relaxed)
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total weight evicted so far (removals do not count).
    pub fn evicted_weight(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.evicted_weight.load(Relaxed))
            .sum()
    }

    /// The number of entries evicted so far (removals do not count).
    pub fn evicted_len(&self) -> usize {
        self.slots.iter().map(|s| s.evicted_len.load(Relaxed)).sum()
    }

    /// The number of entries in shard `shard`, read without locking (best effort while other
    /// threads write).
    ///
    /// # Panics
    /// Panics if `shard >= N`.
    pub fn shard_len(&self, shard: usize) -> usize {
        self.slots[shard].len.load(Relaxed)
    }

    /// The total weight of shard `shard`, read without locking (best effort while other threads
    /// write).
    ///
    /// # Panics
    /// Panics if `shard >= N`.
    pub fn shard_weight(&self, shard: usize) -> usize {
        self.slots[shard].weight.load(Relaxed)
    }

    /// Calls `f(key, &data, weight)` on every entry of shard `shard`, from most to least recently
    /// used, holding the shard's lock throughout (do not call back into this shard from `f`).
    /// Feeding the entries back to [`Lru::insert_tail`] in the same order restores the shard.
    ///
    /// # Panics
    /// Panics if `shard >= N`.
    pub fn iter_for_each<F: FnMut(u64, &T, usize)>(&self, shard: usize, f: F) {
        self.slots[shard].unit.lock().for_each(f);
    }

    /// Keys of shard `shard` from most to least recently used (tests only).
    #[cfg(test)]
    pub(crate) fn shard_keys(&self, shard: usize) -> Vec<u64> {
        self.slots[shard].unit.lock().keys()
    }
}

#[cfg(test)]
mod tests;
