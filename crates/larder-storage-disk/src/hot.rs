//! The hot-entry cache, nginx's `open_file_cache` for the disk storage: for the entries
//! looked up recently, the decoded [`CacheMeta`], the body's place and its chunk CRC-32s, and
//! an open descriptor of the file holding the body (the meta file for an inline body, the
//! body file otherwise). A hit through it is one positional read of the body and its CRC
//! check: no path built, no `open`, no meta file decoded.
//!
//! It is safe because a file, once renamed into place, is never written again: a commit,
//! a meta update, a purge, an eviction, a corrupt entry and the start-up scan's removals all
//! drop the name's entry under the name's lock ([`Hot::remove`]). A lookup that missed here
//! inserts what it read only if no removal of a name of its shard happened since it started
//! ([`Probe::Miss`] carries the shard's generation), so an entry read before a replace is
//! never inserted after it.
//!
//! A hot entry of an inline body (at most 64 KiB) also keeps the body's bytes, verified when
//! the meta file was read and decoded, while the bytes kept by all entries stay within
//! `DiskConfig::kept_bodies`: a hit of it hands out a clone of those bytes, with no read and
//! no checksum. They are dropped with the entry, so every removal above drops them too.
//!
//! Bounded by a count of entries (`DiskConfig::open_files`, at most a quarter of the soft
//! `RLIMIT_NOFILE`), each holding one descriptor, and by the byte budget of kept bodies;
//! CLOCK eviction per shard.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use larder_storage::CacheMeta;
use parking_lot::Mutex;

use crate::layout::Name;

/// What the cache keeps of one complete entry.
pub(crate) struct HotEntry {
    /// The entry id (names its body file).
    pub(crate) id: u64,
    /// The decoded meta, shared with every hit.
    pub(crate) meta: CacheMeta,
    /// When the meta says the entry stops being fresh (for the eviction index).
    pub(crate) fresh_until: SystemTime,
    /// The file holding the body: the meta file when `inline`, else the body file.
    pub(crate) file: Arc<File>,
    /// Whether the body is inside the meta file.
    pub(crate) inline: bool,
    /// Where the body starts in `file`.
    pub(crate) offset: u64,
    /// The body length.
    pub(crate) len: u64,
    /// The size of a checksummed chunk.
    pub(crate) chunk_size: u32,
    /// The CRC-32 of each body chunk.
    pub(crate) crcs: Arc<[u32]>,
    /// The entry's weight in the eviction index (meta file plus body file bytes).
    pub(crate) weight: usize,
    /// The inline body, verified, when the budget of kept bodies had room for it.
    pub(crate) kept: Option<Kept>,
}

/// A verified body kept with its hot entry; its bytes count against the budget of kept
/// bodies until it is dropped.
pub(crate) struct Kept {
    /// The body.
    pub(crate) body: Bytes,
    used: Arc<AtomicUsize>,
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.used.fetch_sub(self.body.len(), Ordering::Relaxed);
    }
}

/// What [`Hot::get`] found.
pub(crate) enum Probe {
    /// The name's entry.
    Hit(Arc<HotEntry>),
    /// Not cached; the shard's generation, to hand to [`Hot::insert`].
    Miss(u64),
}

struct Slot {
    name: Name,
    entry: Arc<HotEntry>,
    visited: bool,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Name, usize>,
    slots: Vec<Slot>,
    hand: usize,
    /// Bumped by every removal, so a lookup that read files before a removal does not
    /// insert what it read.
    generation: u64,
}

impl Shard {
    fn remove(&mut self, name: &Name) {
        self.generation += 1;
        let Some(i) = self.map.remove(name) else {
            return;
        };
        self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.map.insert(moved.name, i);
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
    }

    /// The slot CLOCK picks to reuse: the first not visited since the hand last passed.
    fn victim(&mut self) -> usize {
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[i];
            if !slot.visited {
                return i;
            }
            slot.visited = false;
        }
    }
}

/// The hot-entry cache; see the module documentation.
pub(crate) struct Hot {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    /// Bytes of the bodies kept now.
    kept: Arc<AtomicUsize>,
    /// The most bytes of bodies kept.
    kept_max: usize,
}

const SHARDS: usize = 16;

impl Hot {
    /// A cache of at most about `capacity` entries (zero: caches nothing), keeping at most
    /// `kept_max` bytes of bodies.
    pub(crate) fn new(capacity: usize, kept_max: usize) -> Self {
        let shards = capacity.min(SHARDS);
        Hot {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(shards.max(1)),
            kept: Arc::default(),
            kept_max,
        }
    }

    /// A copy of `body`, verified by the caller, to keep with a hot entry; `None` when the
    /// budget of kept bodies has no room for it (or the cache keeps no entries).
    pub(crate) fn keep(&self, body: &[u8]) -> Option<Kept> {
        if self.shards.is_empty() {
            return None;
        }
        self.kept
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(body.len())
                    .filter(|&total| total <= self.kept_max)
            })
            .ok()?;
        Some(Kept {
            body: Bytes::copy_from_slice(body),
            used: Arc::clone(&self.kept),
        })
    }

    /// The bytes of bodies kept now by cached entries (and by an entry a lookup holds for
    /// the moment it takes to start a hit).
    pub(crate) fn kept_bytes(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }

    fn shard(&self, name: &Name) -> Option<&Mutex<Shard>> {
        if self.shards.is_empty() {
            return None;
        }
        // The bytes the lock stripes use are the first two; these are independent of them.
        let i = usize::from(name.0[2]) % self.shards.len();
        self.shards.get(i)
    }

    /// The entry of `name`, or the generation to insert one under.
    pub(crate) fn get(&self, name: &Name) -> Probe {
        let Some(shard) = self.shard(name) else {
            return Probe::Miss(0);
        };
        let mut shard = shard.lock();
        match shard.map.get(name).copied() {
            Some(i) => {
                let slot = &mut shard.slots[i];
                slot.visited = true;
                Probe::Hit(Arc::clone(&slot.entry))
            }
            None => Probe::Miss(shard.generation),
        }
    }

    /// Caches `entry` for `name` unless a removal happened in its shard since `generation`
    /// was read.
    pub(crate) fn insert(&self, name: Name, generation: u64, entry: HotEntry) {
        let Some(shard) = self.shard(&name) else {
            return;
        };
        let entry = Arc::new(entry);
        let mut shard = shard.lock();
        if shard.generation != generation {
            return;
        }
        if let Some(&i) = shard.map.get(&name) {
            shard.slots[i].entry = entry;
            return;
        }
        let slot = Slot {
            name,
            entry,
            visited: false,
        };
        if shard.slots.len() < self.per_shard {
            let i = shard.slots.len();
            shard.slots.push(slot);
            shard.map.insert(name, i);
            return;
        }
        let i = shard.victim();
        let old = std::mem::replace(&mut shard.slots[i], slot);
        shard.map.remove(&old.name);
        shard.map.insert(name, i);
    }

    /// Drops `name`'s entry (its descriptor closes once no hit uses it). Called under the
    /// name's lock after each change of its files.
    pub(crate) fn remove(&self, name: &Name) {
        if let Some(shard) = self.shard(name) {
            shard.lock().remove(name);
        }
    }

    /// The entries cached, each holding one open descriptor.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().slots.len()).sum()
    }
}

/// How many hot entries to keep when `wanted` are asked for: at most a quarter of the
/// process's soft `RLIMIT_NOFILE`, so the cache's descriptors leave room for connections.
pub(crate) fn capacity(wanted: usize) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let Some(budget) = limit.and_then(|l| usize::try_from(l / 4).ok()) else {
        return wanted;
    };
    if wanted > budget {
        tracing::info!(
            wanted,
            kept = budget,
            "disk cache: fewer hot entries kept open than configured, for RLIMIT_NOFILE"
        );
    }
    wanted.min(budget)
}

/// Whether `body`, cut into chunks of `chunk_size`, matches `crcs`.
pub(crate) fn chunks_match(body: &[u8], chunk_size: u32, crcs: &[u32]) -> bool {
    if chunk_size == 0 {
        return body.is_empty() && crcs.is_empty();
    }
    let chunks = body.chunks(chunk_size as usize);
    chunks.len() == crcs.len()
        && chunks
            .zip(crcs)
            .all(|(chunk, &crc)| crc32fast::hash(chunk) == crc)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http::StatusCode;
    use larder_storage::ResponseHeader;

    fn entry(id: u64) -> HotEntry {
        let now = SystemTime::now();
        HotEntry {
            id,
            meta: CacheMeta::new(now, now, 0, 0, ResponseHeader::new(StatusCode::OK)),
            fresh_until: now,
            file: Arc::new(tempfile::tempfile().unwrap()),
            inline: true,
            offset: 0,
            len: 0,
            chunk_size: 0,
            crcs: Arc::from(Vec::new()),
            weight: 1,
            kept: None,
        }
    }

    fn name(i: u8) -> Name {
        let mut n = [0u8; 16];
        n[2] = 0; // one shard
        n[3] = i;
        Name(n)
    }

    fn id_of(hot: &Hot, n: &Name) -> Option<u64> {
        match hot.get(n) {
            Probe::Hit(e) => Some(e.id),
            Probe::Miss(_) => None,
        }
    }

    fn generation(hot: &Hot, n: &Name) -> u64 {
        match hot.get(n) {
            Probe::Hit(_) => panic!("cached"),
            Probe::Miss(g) => g,
        }
    }

    #[test]
    fn bounded_with_clock_eviction_keeping_visited_entries() {
        // 16 shards of one entry each would not test CLOCK: one shard of 3.
        let hot = Hot {
            shards: vec![Mutex::default()].into_boxed_slice(),
            per_shard: 3,
            kept: Arc::default(),
            kept_max: 0,
        };
        for i in 0..3 {
            hot.insert(name(i), generation(&hot, &name(i)), entry(u64::from(i)));
        }
        assert_eq!(hot.len(), 3);
        // Visit 0 and 2: inserting 3 evicts 1, the one not visited.
        assert_eq!(id_of(&hot, &name(0)), Some(0));
        assert_eq!(id_of(&hot, &name(2)), Some(2));
        hot.insert(name(3), generation(&hot, &name(3)), entry(3));
        assert_eq!(hot.len(), 3);
        assert_eq!(id_of(&hot, &name(1)), None);
        for i in [0, 2, 3] {
            assert_eq!(id_of(&hot, &name(i)), Some(u64::from(i)));
        }
    }

    #[test]
    fn a_removal_since_the_probe_blocks_the_insert() {
        let hot = Hot::new(8, 0);
        let g = generation(&hot, &name(1));
        hot.remove(&name(1));
        hot.insert(name(1), g, entry(1));
        assert_eq!(
            id_of(&hot, &name(1)),
            None,
            "read before a replace: not cached"
        );
        let g = generation(&hot, &name(1));
        hot.insert(name(1), g, entry(2));
        assert_eq!(id_of(&hot, &name(1)), Some(2));
        hot.remove(&name(1));
        assert_eq!(id_of(&hot, &name(1)), None);
        assert_eq!(hot.len(), 0);
    }

    #[test]
    fn kept_bodies_stay_within_their_budget_and_are_released_when_dropped() {
        let hot = Hot::new(8, 100);
        let a = hot.keep(&[1; 60]).unwrap();
        assert_eq!(&a.body[..], &[1; 60][..]);
        assert!(hot.keep(&[2; 41]).is_none(), "over the budget");
        let b = hot.keep(&[3; 40]).unwrap();
        assert_eq!(hot.kept_bytes(), 100);
        // Kept with an entry: replacing or removing the entry releases its bytes.
        let g = generation(&hot, &name(1));
        hot.insert(
            name(1),
            g,
            HotEntry {
                kept: Some(a),
                ..entry(1)
            },
        );
        assert_eq!(hot.kept_bytes(), 100);
        hot.remove(&name(1));
        assert_eq!(hot.kept_bytes(), 40);
        drop(b);
        assert_eq!(hot.kept_bytes(), 0);
        // An insert refused for a removal since the probe releases them too.
        let g = generation(&hot, &name(2));
        hot.remove(&name(2));
        let c = hot.keep(&[4; 10]).unwrap();
        hot.insert(
            name(2),
            g,
            HotEntry {
                kept: Some(c),
                ..entry(2)
            },
        );
        assert_eq!(hot.kept_bytes(), 0);
        assert!(
            Hot::new(0, 100).keep(&[5; 1]).is_none(),
            "no cache, nothing kept"
        );
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let hot = Hot::new(0, 1 << 20);
        hot.insert(name(1), 0, entry(1));
        assert_eq!(id_of(&hot, &name(1)), None);
        assert_eq!(hot.len(), 0);
    }

    #[test]
    fn crcs_checked_per_chunk() {
        let body = vec![5u8; 10];
        let crcs = [
            crc32fast::hash(&body[..4]),
            crc32fast::hash(&body[4..8]),
            crc32fast::hash(&body[8..]),
        ];
        assert!(chunks_match(&body, 4, &crcs));
        assert!(!chunks_match(&body[..9], 4, &crcs));
        let mut bad = body.clone();
        bad[9] ^= 1;
        assert!(!chunks_match(&bad, 4, &crcs));
    }
}
