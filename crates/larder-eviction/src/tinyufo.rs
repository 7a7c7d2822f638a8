//! A TinyUFO-backed policy: S3-FIFO eviction with TinyLFU admission, from the `tinyufo` crate.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tinyufo::TinyUfo;

use crate::{Evicted, EvictionPolicy};

/// What is stored in TinyUFO: it keeps only a hash of the key and a `u16` weight, so the original
/// key and the full weight ride along with the data. `data` is `None` for a tombstone (a removed
/// entry, see [`TinyUfoPolicy`]'s "Removal" section), which counts as absent everywhere.
#[derive(Clone)]
struct Entry<T> {
    key: u64,
    weight: usize,
    data: Option<T>,
}

/// An [`EvictionPolicy`] backed by [`tinyufo::TinyUfo`].
///
/// TinyUFO evicts with S3-FIFO (a small and a main FIFO queue with a per-entry use counter) and
/// admits with TinyLFU: when a newcomer would push out exactly one entry that the frequency
/// sketch says is more popular, the newcomer is rejected instead and is returned by
/// [`EvictionPolicy::admit`] as evicted (the caller purges it like any victim). Build with
/// [`TinyUfoPolicy::always_admit`] to skip that check.
///
/// # Weights
/// TinyUFO weighs entries in `u16`. This policy divides weights by a *unit* chosen at
/// construction ([`TinyUfoPolicy::with_weight_unit`], 1 by default), rounding up (at least 1
/// unit); the limit is `weight_limit / unit` units (at least 1). Rounding up means the true total
/// never exceeds `weight_limit`. An entry of more than `u16::MAX` units, or more units than the
/// whole limit, is refused: `admit` drops any older entry under that key and returns the newcomer
/// as evicted. Pick a unit such that your largest entry fits (for byte sizes up to 64 MiB, a unit
/// of 1 KiB). [`EvictionPolicy::weight`] and the evicted counters report the true weights given
/// to `admit`.
///
/// # Deviations from the LRU
/// - [`EvictionPolicy::access`] and [`EvictionPolicy::peek`] both read the entry, which counts
///   as a use in TinyUFO (it has no side-effect-free lookup).
/// - Re-admitting a present key reads it first (one more use) to learn its old weight.
/// - Removal leaves a tombstone (see below).
/// - TinyUFO is lock-free and accepts small races (two threads admitting one key at once), so
///   the counters here are exact only when admissions of the same key do not overlap.
///
/// # Removal
/// `TinyUfo::remove` (tinyufo 0.9.1) is never called: it drops the entry and its weight but leaves
/// the key in its FIFO queue, so a later admission of the same key queues it twice and evicting
/// the stale copy subtracts the new entry's weight a second time (the queue weight wraps around:
/// a panic in debug builds, a cache that evicts everything in release builds). Instead,
/// [`EvictionPolicy::remove`] overwrites the entry in place with a tombstone of 1 unit (an update
/// of a present key only adjusts its queue's weight and never queues the key again). A tombstone
/// is absent for every method and is not counted by [`EvictionPolicy::len`] or
/// [`EvictionPolicy::weight`]; it holds 1 unit of the limit until S3-FIFO evicts it (silently) or
/// an admission of the same key overwrites it. The removal counts as one more sighting of the
/// key for TinyLFU admission.
///
/// # Example
/// ```
/// use larder_eviction::{EvictionPolicy, TinyUfoPolicy};
///
/// // Byte weights up to 64 MiB in 1 KiB units, 1 GiB in total, about 100k entries.
/// let policy: TinyUfoPolicy<()> = TinyUfoPolicy::with_weight_unit(1 << 30, 100_000, 1024);
/// assert!(policy.admit(1, (), 5000).is_empty());
/// assert!(policy.access(1));
/// assert_eq!(policy.weight(), 5000);
/// assert_eq!(policy.remove(1), Some(((), 5000)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TinyUfoPolicy<T> {
    ufo: TinyUfo<u64, Entry<T>>,
    unit: usize,
    limit_units: usize,
    always_admit: bool,
    weight: AtomicUsize,
    len: AtomicUsize,
    evicted_weight: AtomicUsize,
    evicted_len: AtomicUsize,
}

impl<T> std::fmt::Debug for TinyUfoPolicy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TinyUfoPolicy")
            .field("unit", &self.unit)
            .field("always_admit", &self.always_admit)
            .field("len", &self.len.load(Relaxed))
            .field("weight", &self.weight.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync + 'static> TinyUfoPolicy<T> {
    /// A policy holding `weight_limit` in total, sized for about `estimated_items` entries, with
    /// a weight unit of 1.
    #[must_use]
    pub fn new(weight_limit: usize, estimated_items: usize) -> Self {
        Self::with_weight_unit(weight_limit, estimated_items, 1)
    }

    /// A policy whose weights are counted in units of `unit` inside TinyUFO (see the type docs).
    /// A `unit` of 0 is treated as 1.
    #[must_use]
    pub fn with_weight_unit(weight_limit: usize, estimated_items: usize, unit: usize) -> Self {
        let unit = unit.max(1);
        let limit_units = (weight_limit / unit).max(1);
        Self {
            ufo: TinyUfo::new(limit_units, estimated_items.max(1)),
            unit,
            limit_units,
            always_admit: false,
            weight: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            evicted_weight: AtomicUsize::new(0),
            evicted_len: AtomicUsize::new(0),
        }
    }

    /// Like [`TinyUfoPolicy::with_weight_unit`] but with TinyUFO's compact layout (skip-list
    /// shards): less memory per entry, slower reads.
    #[must_use]
    pub fn compact(weight_limit: usize, estimated_items: usize, unit: usize) -> Self {
        let mut policy = Self::with_weight_unit(weight_limit, estimated_items, unit);
        policy.ufo = TinyUfo::new_compact(policy.limit_units, estimated_items.max(1));
        policy
    }

    /// Skips the TinyLFU admission check: newcomers are always admitted (TinyUFO's `force_put`,
    /// about 0.5 percentage points lower hit ratio under Zipf loads).
    #[must_use]
    pub fn always_admit(mut self) -> Self {
        self.always_admit = true;
        self
    }

    /// The weight unit: TinyUFO sees `ceil(weight / unit)` (at least 1).
    pub fn weight_unit(&self) -> usize {
        self.unit
    }

    /// Converts a weight to TinyUFO units; `None` if it does not fit in `u16` or in the limit.
    fn units(&self, weight: usize) -> Option<u16> {
        let units = weight.div_ceil(self.unit).max(1);
        if units > self.limit_units {
            return None;
        }
        u16::try_from(units).ok()
    }

    /// Puts an entry whose weight is already accounted for; returns the victims, accounted too.
    fn put(&self, key: u64, data: T, weight: usize) -> Vec<Evicted<T>> {
        let Some(units) = self.units(weight) else {
            // Too heavy to hold: drop any older version and refuse the newcomer.
            let mut out = self.remove_entry(key).1;
            self.evicted_len.fetch_add(1, Relaxed);
            self.evicted_weight.fetch_add(weight, Relaxed);
            out.push(Evicted { key, data, weight });
            return out;
        };
        let entry = Entry {
            key,
            weight,
            data: Some(data),
        };
        let out = if self.always_admit {
            self.ufo.force_put(key, entry, units)
        } else {
            self.ufo.put(key, entry, units)
        };
        self.victims(out)
    }

    /// Accounts TinyUFO's victims and turns them into [`Evicted`]; tombstones are dropped silently.
    fn victims(&self, out: Vec<tinyufo::KV<Entry<T>>>) -> Vec<Evicted<T>> {
        out.into_iter()
            .filter_map(|kv| {
                let e = kv.data;
                let data = e.data?;
                self.len.fetch_sub(1, Relaxed);
                self.weight.fetch_sub(e.weight, Relaxed);
                self.evicted_len.fetch_add(1, Relaxed);
                self.evicted_weight.fetch_add(e.weight, Relaxed);
                Some(Evicted {
                    key: e.key,
                    data,
                    weight: e.weight,
                })
            })
            .collect()
    }

    /// The live (non-tombstone) entry under `key`, as `(data, weight)`. Counts as a use.
    fn live(&self, key: u64) -> Option<(T, usize)> {
        self.ufo
            .get(&key)
            .and_then(|e| e.data.map(|data| (data, e.weight)))
    }

    /// Replaces the live entry under `key`, if any, with a tombstone (see the type docs for why
    /// `TinyUfo::remove` is not used). Returns the removed entry and any victims of the rewrite.
    fn remove_entry(&self, key: u64) -> (Option<(T, usize)>, Vec<Evicted<T>>) {
        let Some((data, weight)) = self.live(key) else {
            return (None, Vec::new());
        };
        self.len.fetch_sub(1, Relaxed);
        self.weight.fetch_sub(weight, Relaxed);
        let tombstone = Entry {
            key,
            weight: 0,
            data: None,
        };
        // The key is present, so this is TinyUFO's update-in-place path: the queue weight drops
        // to 1 unit and nothing is queued again. The weight only shrinks, so nothing is evicted
        // unless another thread raced in; such victims are still accounted.
        let out = self.ufo.force_put(key, tombstone, 1);
        (Some((data, weight)), self.victims(out))
    }

    /// Records the totals for an entry going from `old` weight (None = absent) to `new`.
    fn account(&self, old: Option<usize>, new: usize) {
        match old {
            None => {
                self.len.fetch_add(1, Relaxed);
                self.weight.fetch_add(new, Relaxed);
            }
            Some(old) if new >= old => {
                self.weight.fetch_add(new - old, Relaxed);
            }
            Some(old) => {
                self.weight.fetch_sub(old - new, Relaxed);
            }
        }
    }
}

impl<T: Clone + Send + Sync + 'static> EvictionPolicy<T> for TinyUfoPolicy<T> {
    fn admit(&self, key: u64, data: T, weight: usize) -> Vec<Evicted<T>> {
        let weight = weight.max(1);
        if self.units(weight).is_some() {
            let old = self.live(key).map(|(_, w)| w);
            self.account(old, weight);
        }
        self.put(key, data, weight)
    }

    fn access(&self, key: u64) -> bool {
        self.live(key).is_some()
    }

    fn access_or_admit(&self, key: u64, data: T, weight: usize) -> Option<Vec<Evicted<T>>> {
        if self.live(key).is_some() {
            return None;
        }
        let weight = weight.max(1);
        if self.units(weight).is_some() {
            self.account(None, weight);
        }
        Some(self.put(key, data, weight))
    }

    fn increment_weight(
        &self,
        key: u64,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<Evicted<T>> {
        let Some((data, old)) = self.live(key) else {
            return Vec::new();
        };
        let grown = old.saturating_add(delta);
        let new = max_weight.map_or(grown, |m| grown.min(m).max(old));
        if self.units(new).is_some() {
            self.account(Some(old), new);
        }
        self.put(key, data, new)
    }

    fn remove(&self, key: u64) -> Option<(T, usize)> {
        // Victims of the tombstone rewrite (only possible under a race) are accounted as evicted.
        self.remove_entry(key).0
    }

    fn peek(&self, key: u64) -> bool {
        self.live(key).is_some()
    }

    fn weight(&self) -> usize {
        self.weight.load(Relaxed)
    }

    fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    fn evicted_weight(&self) -> usize {
        self.evicted_weight.load(Relaxed)
    }

    fn evicted_len(&self) -> usize {
        self.evicted_len.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_map_to_units_rounding_up_and_clamping() {
        let p: TinyUfoPolicy<()> = TinyUfoPolicy::with_weight_unit(1 << 30, 16, 1024);
        assert_eq!(p.units(0), Some(1));
        assert_eq!(p.units(1), Some(1));
        assert_eq!(p.units(1024), Some(1));
        assert_eq!(p.units(1025), Some(2));
        assert_eq!(p.units(65535 * 1024), Some(u16::MAX));
        assert_eq!(p.units(65535 * 1024 + 1), None);
        assert_eq!(p.units(usize::MAX), None);
        let small: TinyUfoPolicy<()> = TinyUfoPolicy::with_weight_unit(4096, 16, 1024);
        assert_eq!(small.units(4096), Some(4));
        assert_eq!(small.units(4097), None);
        assert_eq!(
            TinyUfoPolicy::<()>::with_weight_unit(10, 1, 0).weight_unit(),
            1
        );
    }

    #[test]
    fn totals_follow_admit_update_remove() {
        let p = TinyUfoPolicy::new(1000, 64);
        assert!(p.admit(1, "a", 10).is_empty());
        assert!(p.admit(2, "b", 20).is_empty());
        assert!(p.admit(1, "a2", 5).is_empty());
        assert_eq!((p.len(), p.weight()), (2, 25));
        assert!(p.increment_weight(2, 10, Some(25)).is_empty());
        assert_eq!(p.weight(), 30);
        assert!(p.increment_weight(3, 10, None).is_empty());
        assert_eq!(p.remove(1), Some(("a2", 5)));
        assert_eq!(p.remove(1), None);
        assert_eq!((p.len(), p.weight(), p.evicted_len()), (1, 25, 0));
    }

    #[test]
    fn evictions_carry_original_keys_and_weights() {
        let p = TinyUfoPolicy::new(10, 100).always_admit();
        let mut evicted = Vec::new();
        for k in 0..50u64 {
            evicted.extend(p.admit(k * 1000, k, 1));
        }
        assert_eq!(evicted.len(), 40);
        assert!(
            evicted
                .iter()
                .all(|e| e.key == e.data * 1000 && e.weight == 1)
        );
        assert_eq!((p.len(), p.weight()), (10, 10));
        assert_eq!((p.evicted_len(), p.evicted_weight()), (40, 40));
    }

    #[test]
    fn oversized_entry_is_refused_and_replaces_older_version() {
        let p = TinyUfoPolicy::new(10, 16);
        assert!(p.admit(1, "small", 4).is_empty());
        let v = p.admit(1, "huge", 11);
        assert_eq!(
            v,
            [Evicted {
                key: 1,
                data: "huge",
                weight: 11
            }]
        );
        assert!(!p.peek(1));
        assert_eq!((p.len(), p.weight(), p.evicted_len()), (0, 0, 1));
        assert!(p.admit(2, "b", 4).is_empty());
        assert_eq!(p.increment_weight(2, 100, None).len(), 1);
        assert_eq!((p.len(), p.weight()), (0, 0));
    }
}
