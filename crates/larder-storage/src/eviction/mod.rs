//! Eviction managers: they track the size of stored entries and choose which to evict.
//!
//! A cache calls [`EvictionManager::admit`] when an entry is stored and
//! [`EvictionManager::access`] when it is read; `admit` returns the keys that must go to stay
//! under the limit, which the caller purges from storage with
//! [`PurgeType::Eviction`](crate::PurgeType::Eviction).
//!
//! Three implementations over larder-eviction: [`simple_lru::Manager`] (one strict LRU list),
//! [`lru::Manager`] (a sharded LRU, the default choice) and [`tinyufo::Manager`] (TinyUFO:
//! S3-FIFO eviction with TinyLFU admission). They share one implementation of the trait, the
//! delegation to their policy and the saving and loading below; each manager only says what it
//! adds (its files, how an access of an untracked key is handled, an index beside the policy).
//!
//! # Saved state
//!
//! [`EvictionManager::save`] writes files under a directory and
//! [`EvictionManager::load`] reads them back into a fresh manager, so a restarted process
//! keeps its eviction order. Each file is written to a temporary name, synced and renamed, so
//! a crash never leaves a half-written file under the real name; leftover temporary files are
//! removed by the next `load`. The format (`LRDE`, version 1) is: 4 magic bytes, a version
//! byte, a varint entry count, then per entry the 16-byte primary hash, a flags byte (bit 0: a
//! 16-byte variance hash follows), the varint-length-prefixed UTF-8 user tag and the varint
//! size, most recently used first. A corrupt file is reported as
//! [`Error::CorruptEvictionState`](crate::Error::CorruptEvictionState), never a panic.

// The docs name algorithms (TinyUFO, TinyLFU, S3-FIFO) in prose, not code items.
#![allow(clippy::doc_markdown)]

use std::time::SystemTime;

use async_trait::async_trait;

use crate::{CompactCacheKey, Result};

/// Tracks stored entries and their sizes, and chooses victims.
///
/// Every method takes `&self`; implementations handle concurrency internally.
#[async_trait]
pub trait EvictionManager: Send + Sync {
    /// Total size of the tracked entries.
    fn total_size(&self) -> usize;
    /// Number of tracked entries.
    fn total_items(&self) -> usize;
    /// Total size evicted so far (a counter that only grows).
    fn evicted_size(&self) -> usize;
    /// Number of entries evicted so far (a counter that only grows).
    fn evicted_items(&self) -> usize;

    /// Starts tracking `item` with `size` (or updates it if already tracked) and returns the
    /// entries to evict to stay within the limits. Their sizes are already deducted; the
    /// caller must purge them from storage.
    fn admit(
        &self,
        item: CompactCacheKey,
        size: usize,
        fresh_until: SystemTime,
    ) -> Vec<CompactCacheKey>;

    /// Adds `delta` to the size of a tracked `item` (capped at `max_weight` where the
    /// implementation supports it) and returns the entries to evict. A no-op for an untracked
    /// item.
    fn increment_weight(
        &self,
        item: &CompactCacheKey,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<CompactCacheKey>;

    /// Stops tracking `item`.
    fn remove(&self, item: &CompactCacheKey);

    /// Records an access: promotes a tracked item, or starts tracking an untracked one
    /// without evicting anything. Returns whether it was tracked already.
    fn access(&self, item: &CompactCacheKey, size: usize, fresh_until: SystemTime) -> bool;

    /// Whether `item` is tracked, with no side effects.
    fn peek(&self, item: &CompactCacheKey) -> bool;

    /// Saves the state into files under `dir_path` (created if missing).
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when a file cannot be written.
    async fn save(&self, dir_path: &str) -> Result<()>;

    /// Loads state saved by [`save`](Self::save) into this manager.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when a file cannot be read, or
    /// [`Error::CorruptEvictionState`](crate::Error::CorruptEvictionState).
    async fn load(&self, dir_path: &str) -> Result<()>;
}

pub mod lru;
mod persist;
pub mod simple_lru;
pub mod tinyufo;
mod tracked;

/// The `u64` an eviction policy tracks a key under: the first 8 bytes of the combined hash,
/// mixed with the hash of the user tag when there is one. Stable across processes and
/// versions, so saved state reloads into the same shards.
pub(crate) fn eviction_key(item: &CompactCacheKey) -> u64 {
    let combined = item.combined_bin();
    let hash = if item.user_tag.is_empty() {
        combined
    } else {
        let mut buf = Vec::with_capacity(16 + item.user_tag.len());
        buf.extend_from_slice(&combined);
        buf.extend_from_slice(item.user_tag.as_bytes());
        crate::hash_key(buf)
    };
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first)
}
