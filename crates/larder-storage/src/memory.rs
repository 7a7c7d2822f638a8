//! [`MemCache`]: an in-memory [`Storage`] with streaming partial writes.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::RwLock;
use tracing::Span;

use crate::partial::{PartialBody, PartialWriter};
use crate::storage::streaming_write::U64WriteId;
use crate::{
    CacheKey, CacheMeta, CompactCacheKey, Error, HandleHit, HandleMiss, HashBinary, HitHandler,
    MissFinishType, MissHandler, PurgeType, Result, Storage,
};

const SHARDS: usize = 16;

type Map<V> = HashMap<u128, V, ahash::RandomState>;

/// An in-memory [`Storage`].
///
/// An entry is the serialized meta plus the body, both as [`Bytes`], so reads hand out the
/// stored body without copying. Entries are filed under the key's
/// [combined hash](CacheKey::combined_bin) in 16 shards, each behind its own lock.
///
/// **Streaming partial writes.** While a miss is being written, [`lookup`](Storage::lookup)
/// of the same key returns a reader of that write (preferring it to an older complete entry):
/// it yields the bytes as they arrive, is woken by each write (no polling), ends when the
/// writer finishes, and fails with [`Error::WriteAbandoned`] if the writer is dropped before
/// finishing. Several writers of one key do not disturb each other: each has its own slot and
/// [tag](HandleMiss::streaming_write_tag), and the write that finishes last replaces the
/// complete entry. An unfinished write is never visible as a complete entry.
///
/// **Sizes.** [`MissFinishType::Created`] and [`HandleHit::get_eviction_weight`] report the
/// body length plus the serialized meta length. On finish the serialized meta and the body
/// are copied into one allocation of exactly their size, so a small entry never pins a large
/// network buffer; [`update_meta`](Storage::update_meta) copies the body once more.
///
/// **Purges.** [`PurgeType::Invalidation`] removes the complete entry and detaches every write
/// in progress under the key: those writes keep streaming to their readers but are not
/// stored ([`HandleMiss::finish`] returns [`Error::WritePurged`]). [`PurgeType::Eviction`]
/// removes only the complete entry, since a write in progress is newer content that has not
/// been admitted to the eviction manager yet.
///
/// The cache does not limit its own size: pair it with an
/// [`EvictionManager`](crate::eviction::EvictionManager) whose victims are purged.
pub struct MemCache {
    shards: Box<[RwLock<Shard>]>,
    next_write_id: AtomicU64,
    /// Bytes held by complete entries (serialized meta plus body).
    stored_bytes: AtomicUsize,
}

#[derive(Default)]
struct Shard {
    cached: Map<Arc<Entry>>,
    /// Writes in progress per key, oldest first.
    temp: Map<Vec<Arc<TempObject>>>,
}

/// A complete entry: the serialized meta and the body in one buffer, `data[..meta_len]` and
/// `data[meta_len..]`, so an entry costs one allocation besides its map slot.
///
/// An entry read a second time keeps its meta decoded, so later hits clone it (a reference
/// count) instead of decoding it: hot entries skip the decoding, while the many entries read
/// once or never do not pay the decoded meta's memory (several hundred bytes).
struct Entry {
    data: Bytes,
    meta_len: usize,
    /// Whether the entry was read before.
    read: AtomicBool,
    decoded: OnceLock<CacheMeta>,
}

impl Entry {
    fn new(meta: &[u8], body: &[&[u8]]) -> Self {
        let body_len: usize = body.iter().map(|part| part.len()).sum();
        let mut data = Vec::with_capacity(meta.len() + body_len);
        data.extend_from_slice(meta);
        for part in body {
            data.extend_from_slice(part);
        }
        Entry {
            data: Bytes::from(data),
            meta_len: meta.len(),
            read: AtomicBool::new(false),
            decoded: OnceLock::new(),
        }
    }

    fn body(&self) -> Bytes {
        self.data.slice(self.meta_len..)
    }

    /// The meta: a clone of the decoded one if kept, otherwise decoded now (and kept from the
    /// second read on).
    fn meta(&self) -> Result<CacheMeta> {
        if let Some(meta) = self.decoded.get() {
            return Ok(meta.clone());
        }
        // Copying the few header bytes is cheaper than sharing the buffer (measured in
        // benches/storage.rs) and keeps hot entries' reference counts out of the header values.
        let meta = CacheMeta::deserialize(&self.data[..self.meta_len])?;
        if self.read.swap(true, Ordering::Relaxed) {
            // A race with another reader keeps whichever came first: both are the same.
            let _ = self.decoded.set(meta.clone());
        }
        Ok(meta)
    }
}

struct TempObject {
    id: u64,
    meta: Bytes,
    /// `meta` decoded, as readers of the write get it.
    decoded: CacheMeta,
    body: Arc<PartialBody>,
}

impl Default for MemCache {
    fn default() -> Self {
        MemCache::new()
    }
}

impl std::fmt::Debug for MemCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemCache")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

fn map_key(hash: HashBinary) -> u128 {
    u128::from_le_bytes(hash)
}

impl MemCache {
    /// An empty cache.
    pub fn new() -> Self {
        MemCache {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            next_write_id: AtomicU64::new(1),
            stored_bytes: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: u128) -> &RwLock<Shard> {
        // The key is a cryptographic hash, so its low bits are evenly spread.
        &self.shards[(key as usize) % SHARDS]
    }

    /// The number of complete entries.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().cached.len()).sum()
    }

    /// The bytes held by complete entries: serialized metas plus bodies (the sizes reported
    /// to eviction managers), not counting per-entry bookkeeping.
    pub fn stored_bytes(&self) -> usize {
        self.stored_bytes.load(Ordering::Relaxed)
    }

    /// Accounts for an entry of `new` bytes replacing one of `old` bytes (0 = none).
    fn account(&self, old: usize, new: usize) {
        if new >= old {
            self.stored_bytes.fetch_add(new - old, Ordering::Relaxed);
        } else {
            self.stored_bytes.fetch_sub(old - new, Ordering::Relaxed);
        }
    }

    /// Whether there is no complete entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of writes in progress.
    pub fn writes_in_progress(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().temp.values().map(Vec::len).sum::<usize>())
            .sum()
    }

    /// [`Storage::lookup`]: it never waits.
    fn lookup_sync(&self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>> {
        enum Found {
            Partial(Arc<TempObject>),
            Complete(Arc<Entry>),
        }
        let k = map_key(key.combined_bin());
        let found = {
            let shard = self.shard(k).read();
            // A write in progress holds newer data than the complete entry: prefer it.
            if let Some(temp) = shard.temp.get(&k).and_then(|w| w.last()) {
                Found::Partial(temp.clone())
            } else if let Some(entry) = shard.cached.get(&k) {
                Found::Complete(entry.clone())
            } else {
                return Ok(None);
            }
        };
        match found {
            Found::Partial(temp) => Ok(Some(partial_hit(&temp))),
            Found::Complete(entry) => complete_hit(&entry).map(Some),
        }
    }

    fn remove_temp(&self, key: u128, id: u64) -> bool {
        let mut shard = self.shard(key).write();
        remove_temp_locked(&mut shard, key, id)
    }
}

fn remove_temp_locked(shard: &mut Shard, key: u128, id: u64) -> bool {
    let Some(writes) = shard.temp.get_mut(&key) else {
        return false;
    };
    let Some(i) = writes.iter().position(|t| t.id == id) else {
        return false;
    };
    writes.remove(i);
    if writes.is_empty() {
        shard.temp.remove(&key);
    }
    true
}

fn complete_hit(entry: &Entry) -> Result<(CacheMeta, HitHandler)> {
    let meta = entry.meta()?;
    let body = entry.body();
    let hit = CompleteHit {
        start: 0,
        end: body.len(),
        body,
        done: false,
        weight: entry.data.len(),
    };
    Ok((meta, Box::new(hit)))
}

fn partial_hit(temp: &TempObject) -> (CacheMeta, HitHandler) {
    (temp.decoded.clone(), temp.body.reader())
}

/// Serializes `meta` for storage and decodes it back: the decoded copy is what every reader
/// of a write in progress gets, exactly as if it decoded the stored bytes itself (no
/// extensions, say).
fn encode_meta(meta: &CacheMeta) -> Result<(Bytes, CacheMeta)> {
    let bytes = Bytes::from(meta.serialize()?.into_boxed_slice());
    let decoded = CacheMeta::deserialize(&bytes)?;
    Ok((bytes, decoded))
}

#[async_trait]
impl Storage for MemCache {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        self.lookup_sync(key)
    }

    fn lookup_now(
        &'static self,
        key: &CacheKey,
        _trace: &Span,
    ) -> Option<Result<Option<(CacheMeta, HitHandler)>>> {
        Some(self.lookup_sync(key))
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(tag) = streaming_write_tag else {
            return self.lookup(key, trace).await;
        };
        let Ok(id) = U64WriteId::try_from(tag).map(u64::from) else {
            return Ok(None);
        };
        let k = map_key(key.combined_bin());
        let temp = {
            let shard = self.shard(k).read();
            shard
                .temp
                .get(&k)
                .and_then(|writes| writes.iter().find(|t| t.id == id))
                .cloned()
        };
        Ok(temp.as_deref().map(partial_hit))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &Span,
    ) -> Result<MissHandler> {
        let (meta, decoded) = encode_meta(meta)?;
        let k = map_key(key.combined_bin());
        let id = self.next_write_id.fetch_add(1, Ordering::Relaxed);
        let writer = PartialWriter::new();
        let temp = Arc::new(TempObject {
            id,
            meta,
            decoded,
            body: Arc::clone(writer.body()),
        });
        self.shard(k)
            .write()
            .temp
            .entry(k)
            .or_default()
            .push(temp.clone());
        Ok(Box::new(MemMissHandler {
            cache: self,
            key: k,
            tag: U64WriteId::from(id),
            temp,
            writer,
            eof: false,
            finished: false,
        }))
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &Span,
    ) -> Result<bool> {
        let k = map_key(key.combined_bin());
        let (cached, temp) = {
            let mut shard = self.shard(k).write();
            let cached = shard
                .cached
                .remove(&k)
                .map(|e| self.account(e.data.len(), 0));
            let cached = cached.is_some();
            // An eviction victim is a complete entry the eviction manager tracked; a write in
            // progress under the same key is newer content that it will admit when it
            // finishes, so only an invalidation detaches writes.
            let temp = match purge_type {
                PurgeType::Invalidation => shard.temp.remove(&k).map_or(0, |writes| writes.len()),
                PurgeType::Eviction => 0,
            };
            (cached, temp)
        };
        tracing::debug!(
            parent: trace,
            key = %key,
            purge_type = purge_type.as_str(),
            cached,
            writes_detached = temp,
            "memcache purge"
        );
        Ok(cached || temp > 0)
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &Span,
    ) -> Result<bool> {
        let meta = Bytes::from(meta.serialize()?.into_boxed_slice());
        let k = map_key(key.combined_bin());
        let mut shard = self.shard(k).write();
        let Some(entry) = shard.cached.get_mut(&k) else {
            return Ok(false);
        };
        // The entry keeps meta and body in one buffer, so the body is copied once here.
        let old = entry.data.len();
        *entry = Arc::new(Entry::new(&meta, &[&entry.body()]));
        self.account(old, entry.data.len());
        Ok(true)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// The writer of one entry.
struct MemMissHandler {
    cache: &'static MemCache,
    key: u128,
    tag: U64WriteId,
    temp: Arc<TempObject>,
    writer: PartialWriter,
    eof: bool,
    finished: bool,
}

#[async_trait]
impl HandleMiss for MemMissHandler {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if self.eof && !data.is_empty() {
            return Err(Error::WriteAfterEnd);
        }
        self.eof |= eof;
        if data.is_empty() {
            return Ok(());
        }
        // Wakes every reader waiting for more bytes.
        self.writer.push(data);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        let entry = self.writer.with_chunks(|chunks| {
            let parts: Vec<&[u8]> = chunks.iter().map(|part| &part[..]).collect();
            Arc::new(Entry::new(&self.temp.meta, &parts))
        });
        let size = entry.data.len();
        let stored = {
            let mut shard = self.cache.shard(self.key).write();
            // Swapping the slot for the complete entry under one lock makes the switch atomic
            // for lookups. A slot that is gone was purged while this write ran.
            let stored = remove_temp_locked(&mut shard, self.key, self.temp.id);
            if stored {
                let old = shard.cached.insert(self.key, entry);
                self.cache.account(old.map_or(0, |e| e.data.len()), size);
            }
            stored
        };
        self.finished = true;
        if !stored {
            tracing::debug!(size, "memcache write purged before it finished; not stored");
        }
        // Readers of this write have every byte either way: let them end cleanly.
        self.writer.end();
        if stored {
            Ok(MissFinishType::Created(size))
        } else {
            Err(Error::WritePurged)
        }
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(self.tag.as_bytes())
    }
}

impl Drop for MemMissHandler {
    fn drop(&mut self) {
        if !self.finished {
            // Dropping `writer` right after this tells readers the write was abandoned.
            self.cache.remove_temp(self.key, self.temp.id);
        }
    }
}

/// A reader of a complete entry.
struct CompleteHit {
    body: Bytes,
    start: usize,
    end: usize,
    done: bool,
    weight: usize,
}

impl CompleteHit {
    /// The rest of the body, once.
    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done || self.start >= self.end {
            return None;
        }
        self.done = true;
        Some(self.body.slice(self.start..self.end))
    }
}

#[async_trait]
impl HandleHit for CompleteHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        Ok(self.next_chunk())
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &Span,
    ) -> Result<()> {
        Ok(())
    }

    fn read_body_now(&mut self) -> Option<Result<Option<Bytes>>> {
        Some(Ok(self.next_chunk()))
    }

    fn finish_now(&mut self) -> Option<Result<()>> {
        Some(Ok(()))
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        self.end = crate::storage::seek_end(start, end, self.body.len())?;
        self.start = start;
        self.done = false;
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.weight
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
