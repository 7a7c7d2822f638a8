//! A TinyUFO [`EvictionManager`] over [`larder_eviction::TinyUfoPolicy`]: S3-FIFO eviction
//! with TinyLFU admission.

// The docs name algorithms (TinyUFO, TinyLFU, S3-FIFO) in prose, not code items.
#![allow(clippy::doc_markdown)]

use std::collections::HashMap;
use std::time::SystemTime;

use larder_eviction::{EvictionPolicy, TinyUfoPolicy};
use parking_lot::Mutex;

use super::EvictionManager;
use super::tracked::Tracked;
use crate::CompactCacheKey;

const FILE_NAME: &str = "tinyufo.data";
const INDEX_SHARDS: usize = 16;

type Index = Mutex<HashMap<u64, (CompactCacheKey, usize), ahash::RandomState>>;

/// An eviction manager backed by TinyUFO, which keeps popular keys better than an LRU under
/// skewed loads and may reject a newcomer that is less popular than its victim: such a
/// newcomer is returned by [`admit`](EvictionManager::admit) among the keys to purge.
///
/// TinyUFO counts weights in `u16` units (see [`TinyUfoPolicy`]): an entry of more than
/// 65 535 units is refused (returned as a victim right away). [`Manager::new`] therefore picks
/// a unit of a quarter of the average entry size (`limit / estimated_items / 4`, at least 1);
/// use [`Manager::with_weight_unit`] to choose it yourself. [`unit`](Manager::weight_unit) ×
/// 65 535 is the largest entry kept.
///
/// Differences from the LRU managers:
/// - [`access`](EvictionManager::access) of an untracked key returns `false` and does not
///   start tracking it (TinyUFO cannot admit without evicting, and `access` cannot return
///   victims).
/// - TinyUFO cannot list its entries, so the manager keeps an index of tracked keys (about
///   one more key copy per entry) for [`peek`](EvictionManager::peek) (side-effect free here)
///   and [`save`](EvictionManager::save). TinyUFO has no eviction order to restore: `load`
///   re-admits the saved keys with their sizes. Under concurrent admits of one key the index
///   is best effort.
///
/// ```
/// use std::time::SystemTime;
/// use larder_storage::CacheKey;
/// use larder_storage::eviction::{EvictionManager, tinyufo::Manager};
///
/// let manager = Manager::new(1000, 100);
/// let a = CacheKey::new("", "a", "").to_compact();
/// assert!(manager.admit(a.clone(), 10, SystemTime::now()).is_empty());
/// assert!(manager.peek(&a));
/// assert_eq!(manager.total_size(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Manager {
    policy: TinyUfoPolicy<CompactCacheKey>,
    index: Box<[Index]>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager holding at most `limit` total size, sized for about `estimated_items` keys,
    /// with a weight unit of a quarter of the average entry size (at least 1).
    ///
    /// ```
    /// use larder_storage::eviction::tinyufo::Manager;
    ///
    /// // 256 MiB of entries averaging 4 KiB: 1 KiB units, entries up to 64 MiB.
    /// let m = Manager::new(256 << 20, 65_536);
    /// assert_eq!(m.weight_unit(), 1024);
    /// assert_eq!(Manager::new(10, 100).weight_unit(), 1);
    /// ```
    pub fn new(limit: usize, estimated_items: usize) -> Self {
        let unit = (limit / estimated_items.max(1) / 4).max(1);
        Self::with_weight_unit(limit, estimated_items, unit)
    }

    /// The weight unit: TinyUFO sees sizes as `ceil(size / unit)` units.
    pub fn weight_unit(&self) -> usize {
        self.policy.weight_unit()
    }

    /// A manager whose sizes are counted in units of `unit` inside TinyUFO.
    pub fn with_weight_unit(limit: usize, estimated_items: usize, unit: usize) -> Self {
        Manager {
            policy: TinyUfoPolicy::with_weight_unit(limit, estimated_items, unit),
            index: (0..INDEX_SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
        }
    }

    fn index(&self, key: u64) -> &Index {
        // The key is a hash; its low bits are evenly spread.
        #[allow(clippy::cast_possible_truncation)]
        &self.index[(key as usize) % INDEX_SHARDS]
    }

    /// The tracked keys and sizes, in no particular order.
    pub fn entries(&self) -> Vec<(CompactCacheKey, usize)> {
        self.index
            .iter()
            .flat_map(|shard| shard.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }
}

impl Tracked for Manager {
    type Policy = TinyUfoPolicy<CompactCacheKey>;
    const FILE_PREFIX: &'static str = FILE_NAME;

    fn policy(&self) -> &Self::Policy {
        &self.policy
    }

    fn saved_entries(&self, _file: usize) -> Vec<(CompactCacheKey, usize)> {
        self.entries()
    }

    /// TinyUFO has no order to restore: the saved keys are admitted again with their sizes.
    fn restore(&self, entries: Vec<(CompactCacheKey, usize)>) {
        let now = SystemTime::now();
        for (key, weight) in entries {
            // Victims of a reload were never stored by this process's storage; nothing to purge.
            drop(EvictionManager::admit(self, key, weight, now));
        }
    }

    /// TinyUFO cannot admit without evicting, and `access` cannot return victims: an untracked
    /// key stays untracked.
    fn access(&self, key: u64, _item: &CompactCacheKey, _size: usize) -> bool {
        self.policy.access(key)
    }

    fn peek(&self, key: u64) -> bool {
        self.index(key).lock().contains_key(&key)
    }

    fn admitted(&self, key: u64, item: &CompactCacheKey, size: usize) {
        self.index(key)
            .lock()
            .insert(key, (item.clone(), size.max(1)));
    }

    fn grown(&self, key: u64, delta: usize, max_weight: Option<usize>) {
        if let Some((_, weight)) = self.index(key).lock().get_mut(&key) {
            let grown = weight.saturating_add(delta);
            *weight = max_weight.map_or(grown, |m| grown.min(m).max(*weight));
        }
    }

    fn dropped(&self, key: u64) {
        self.index(key).lock().remove(&key);
    }
}
