//! A single-list LRU [`EvictionManager`](super::EvictionManager): strict least-recently-used
//! order over all keys.

use larder_eviction::Lru;

use super::eviction_key;
use super::lru::access_or_track;
use super::tracked::Tracked;
use crate::CompactCacheKey;

const FILE_NAME: &str = "simple_lru.data";

/// An LRU eviction manager with one list behind one lock: victims are exactly the least
/// recently used keys, oldest first. Prefer the sharded [`lru::Manager`](super::lru::Manager)
/// under contention.
///
/// [`save`](super::EvictionManager::save) writes `simple_lru.data` (most recently used first);
/// [`load`](super::EvictionManager::load) appends its entries at the tail, so loading into a fresh
/// manager restores the order.
///
/// ```
/// use std::time::SystemTime;
/// use larder_storage::CacheKey;
/// use larder_storage::eviction::{EvictionManager, simple_lru::Manager};
///
/// let manager = Manager::new(10);
/// let a = CacheKey::new("", "a", "").to_compact();
/// let b = CacheKey::new("", "b", "").to_compact();
/// let c = CacheKey::new("", "c", "").to_compact();
/// let now = SystemTime::now();
/// manager.admit(a.clone(), 5, now);
/// manager.admit(b.clone(), 5, now);
/// assert!(manager.access(&a, 5, now)); // b is now the least recently used
/// assert_eq!(manager.admit(c, 5, now), vec![b]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Manager {
    lru: Lru<CompactCacheKey, 1>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("lru", &self.lru).finish()
    }
}

impl Manager {
    /// A manager holding at most `limit` total size.
    pub fn new(limit: usize) -> Self {
        Self::new_with_watermark(limit, None)
    }

    /// A manager holding at most `limit` total size and at most `items_watermark` items.
    pub fn new_with_watermark(limit: usize, items_watermark: Option<usize>) -> Self {
        Manager {
            lru: Lru::with_capacity_and_watermark(limit, 0, items_watermark),
        }
    }

    /// The keys and sizes, most recently used first.
    pub fn entries(&self) -> Vec<(CompactCacheKey, usize)> {
        let mut entries = Vec::with_capacity(self.lru.len());
        self.lru
            .iter_for_each(0, |_, key, weight| entries.push((key.clone(), weight)));
        entries
    }
}

impl Tracked for Manager {
    type Policy = Lru<CompactCacheKey, 1>;
    const FILE_PREFIX: &'static str = FILE_NAME;

    fn policy(&self) -> &Self::Policy {
        &self.lru
    }

    fn saved_entries(&self, _file: usize) -> Vec<(CompactCacheKey, usize)> {
        self.entries()
    }

    fn restore(&self, entries: Vec<(CompactCacheKey, usize)>) {
        for (key, weight) in entries {
            self.lru.insert_tail(eviction_key(&key), key, weight);
        }
    }

    fn access(&self, key: u64, item: &CompactCacheKey, size: usize) -> bool {
        access_or_track(&self.lru, key, item, size)
    }
}
