//! A single-list LRU [`EvictionManager`]: strict least-recently-used order over all keys.

use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use larder_eviction::Lru;

use super::lru::{lru_access, lru_admit, lru_increment};
use super::{EvictionManager, eviction_key, persist};
use crate::{CompactCacheKey, Result};

const FILE_NAME: &str = "simple_lru.data";

/// An LRU eviction manager with one list behind one lock: victims are exactly the least
/// recently used keys, oldest first. Prefer the sharded [`lru::Manager`](super::lru::Manager)
/// under contention.
///
/// [`save`](EvictionManager::save) writes `simple_lru.data` (most recently used first);
/// [`load`](EvictionManager::load) appends its entries at the tail, so loading into a fresh
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

#[async_trait]
impl EvictionManager for Manager {
    fn total_size(&self) -> usize {
        self.lru.weight()
    }

    fn total_items(&self) -> usize {
        self.lru.len()
    }

    fn evicted_size(&self) -> usize {
        self.lru.evicted_weight()
    }

    fn evicted_items(&self) -> usize {
        self.lru.evicted_len()
    }

    fn admit(
        &self,
        item: CompactCacheKey,
        size: usize,
        _fresh_until: SystemTime,
    ) -> Vec<CompactCacheKey> {
        lru_admit(&self.lru, item, size)
    }

    fn increment_weight(
        &self,
        item: &CompactCacheKey,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<CompactCacheKey> {
        lru_increment(&self.lru, item, delta, max_weight)
    }

    fn remove(&self, item: &CompactCacheKey) {
        self.lru.remove(eviction_key(item));
    }

    fn access(&self, item: &CompactCacheKey, size: usize, _fresh_until: SystemTime) -> bool {
        lru_access(&self.lru, item, size)
    }

    fn peek(&self, item: &CompactCacheKey) -> bool {
        self.lru.peek(eviction_key(item))
    }

    async fn save(&self, dir_path: &str) -> Result<()> {
        let data = persist::encode(&self.entries());
        persist::write_atomic(Path::new(dir_path).join(FILE_NAME), data).await
    }

    async fn load(&self, dir_path: &str) -> Result<()> {
        let dir = Path::new(dir_path);
        let entries = persist::load_file(dir.join(FILE_NAME)).await?;
        for (key, weight) in entries {
            self.lru.insert_tail(eviction_key(&key), key, weight);
        }
        persist::remove_tmp_files(dir.to_owned(), FILE_NAME).await;
        Ok(())
    }
}
