//! A sharded LRU [`EvictionManager`](super::EvictionManager) over [`larder_eviction::Lru`].

use larder_eviction::Lru;

use super::tracked::Tracked;
use super::{eviction_key, persist};
use crate::{CompactCacheKey, Error, Result};

const FILE_PREFIX: &str = "lru.data";

/// A sharded, weighted LRU eviction manager with `N` shards (16 by default), each behind its
/// own lock.
///
/// Keys go to shard `eviction_key % N`. Admitting evicts the least recently used entries until
/// the total size is within the limit (and the item count within the watermark, if set).
/// [`access`](super::EvictionManager::access) of an untracked key starts tracking it without
/// evicting.
///
/// [`save`](super::EvictionManager::save) writes one file per shard, `lru.data.{i}`, most recently
/// used first; [`load`](super::EvictionManager::load) appends each file's entries at the tail of a
/// shard, so loading into a fresh manager with the same `N` restores the order.
///
/// ```
/// use std::time::SystemTime;
/// use larder_storage::CacheKey;
/// use larder_storage::eviction::{EvictionManager, lru::Manager};
///
/// let manager: Manager<1> = Manager::with_capacity(10, 8);
/// let a = CacheKey::new("", "a", "").to_compact();
/// let b = CacheKey::new("", "b", "").to_compact();
/// assert!(manager.admit(a.clone(), 6, SystemTime::now()).is_empty());
/// assert_eq!(manager.admit(b, 6, SystemTime::now()), vec![a]);
/// assert_eq!(manager.total_size(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Manager<const N: usize = 16> {
    lru: Lru<CompactCacheKey, N>,
}

impl<const N: usize> std::fmt::Debug for Manager<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("lru", &self.lru).finish()
    }
}

impl<const N: usize> Manager<N> {
    /// A manager holding at most `limit` total size, with room for `capacity_per_shard` items
    /// preallocated per shard.
    pub fn with_capacity(limit: usize, capacity_per_shard: usize) -> Self {
        Self::with_capacity_and_watermark(limit, capacity_per_shard, None)
    }

    /// Like [`with_capacity`](Self::with_capacity), plus an item-count limit.
    pub fn with_capacity_and_watermark(
        limit: usize,
        capacity_per_shard: usize,
        watermark: Option<usize>,
    ) -> Self {
        Manager {
            lru: Lru::with_capacity_and_watermark(limit, capacity_per_shard, watermark),
        }
    }

    /// The number of shards, `N`.
    pub fn shards(&self) -> usize {
        N
    }

    /// The total size held by shard `shard`.
    pub fn shard_weight(&self, shard: usize) -> usize {
        self.lru.shard_weight(shard)
    }

    /// The number of items in shard `shard`.
    pub fn shard_len(&self, shard: usize) -> usize {
        self.lru.shard_len(shard)
    }

    /// The shard that tracks `key`.
    pub fn get_shard_for_key(&self, key: &CompactCacheKey) -> usize {
        Lru::<CompactCacheKey, N>::shard_for_key(eviction_key(key))
    }

    /// The least recently used key of shard `shard`.
    pub fn peek_lru(&self, shard: usize) -> Option<CompactCacheKey> {
        self.lru.peek_lru(shard).map(|(_, key, _)| key)
    }

    /// The size tracked for `key`.
    pub fn peek_weight(&self, key: &CompactCacheKey) -> Option<usize> {
        self.lru.peek_weight(eviction_key(key))
    }

    /// The keys and sizes of shard `shard`, most recently used first.
    pub fn shard_entries(&self, shard: usize) -> Vec<(CompactCacheKey, usize)> {
        let mut entries = Vec::with_capacity(self.lru.shard_len(shard));
        self.lru
            .iter_for_each(shard, |_, key, weight| entries.push((key.clone(), weight)));
        entries
    }

    /// Encodes shard `shard` in the saved-state format.
    pub fn serialize_shard(&self, shard: usize) -> Vec<u8> {
        persist::encode(&self.shard_entries(shard))
    }

    /// Appends the entries of an encoded shard at the tails of their shards (entries already
    /// tracked are left as they are).
    ///
    /// # Errors
    ///
    /// [`Error::CorruptEvictionState`] if `bytes` does not decode; nothing is loaded then.
    pub fn deserialize_shard(&self, bytes: &[u8]) -> Result<()> {
        let entries = persist::decode(bytes).map_err(|m| Error::CorruptEvictionState {
            path: "<memory>".into(),
            reason: m.0,
        })?;
        self.insert_tail(entries);
        Ok(())
    }

    fn insert_tail(&self, entries: Vec<(CompactCacheKey, usize)>) {
        for (key, weight) in entries {
            self.lru.insert_tail(eviction_key(&key), key, weight);
        }
    }
}

/// An access of an untracked key starts tracking it without evicting (`access` cannot return
/// victims); shared with the single-list manager.
pub(super) fn access_or_track<const N: usize>(
    lru: &Lru<CompactCacheKey, N>,
    key: u64,
    item: &CompactCacheKey,
    size: usize,
) -> bool {
    lru.promote(key) || {
        lru.admit(key, item.clone(), size);
        false
    }
}

impl<const N: usize> Tracked for Manager<N> {
    type Policy = Lru<CompactCacheKey, N>;
    const FILE_PREFIX: &'static str = FILE_PREFIX;

    fn policy(&self) -> &Self::Policy {
        &self.lru
    }

    fn file_names(&self) -> Vec<String> {
        (0..N)
            .map(|shard| format!("{FILE_PREFIX}.{shard}"))
            .collect()
    }

    fn saved_entries(&self, shard: usize) -> Vec<(CompactCacheKey, usize)> {
        self.shard_entries(shard)
    }

    fn restore(&self, entries: Vec<(CompactCacheKey, usize)>) {
        self.insert_tail(entries);
    }

    fn access(&self, key: u64, item: &CompactCacheKey, size: usize) -> bool {
        access_or_track(&self.lru, key, item, size)
    }
}
