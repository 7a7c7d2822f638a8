//! A pingora-cache program ported to larder: a custom `Storage` (a blob store with seekable
//! hits) written as a pingora-cache user writes one, driven through `HttpCache` as pingora's
//! proxy drives it: a miss filled, a hit, a range and a multipart range read by seeking, a
//! revalidation that rewrites the meta, a purge, and the miss after it.
//!
//! Only what the porting table of `docs/guide.md` lists changed from the pingora-cache version:
//!
//! - `pingora_cache::` paths became `larder::cache::` (same module names: `key`, `meta`,
//!   `storage`, `filters`, `cache_control`);
//! - `pingora_http::ResponseHeader` became `larder::cache::ResponseHeader`;
//! - `pingora_error::{Error, Result}` became `larder::storage::{Error, Result}` in the storage
//!   and `larder::cache::Result` for `HttpCache` calls, and
//!   `Error::explain(InternalError, msg)` became `Error::Backend(msg.into())`;
//! - the trace argument `&SpanHandle` became `&tracing::Span`;
//! - `CacheMeta::serialize` gives one blob instead of two, and `deserialize` takes it back.
//!
//! Run with `cargo run -p larder --example port_storage`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use larder::cache::cache_control::CacheControl;
use larder::cache::filters::resp_cacheable;
use larder::cache::key::CompactCacheKey;
use larder::cache::meta::{CacheMeta, CacheMetaDefaults};
use larder::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeType, Storage,
};
use larder::cache::{CacheKey, CachePhase, HitStatus, HttpCache, RespCacheable, ResponseHeader};
use larder::storage::{Error, Result};
use parking_lot::RwLock;
use tracing::Span;

/// One stored object: the serialized meta and the whole body.
struct Blob {
    meta: Vec<u8>,
    body: Bytes,
}

/// A blob store keyed by the combined key hash, as a backend talking to an object store would
/// be (here the objects stay in memory).
#[derive(Default)]
struct BlobStorage {
    blobs: RwLock<HashMap<String, Blob>>,
    /// How many bytes each hit handler hands out per `read_body`.
    chunk_size: usize,
}

/// Reads a stored body in `chunk_size` pieces, within the range set by the last seek.
struct BlobHit {
    body: Bytes,
    pos: usize,
    end: usize,
    chunk_size: usize,
}

#[async_trait]
impl HandleHit for BlobHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let next = (self.pos + self.chunk_size).min(self.end);
        let chunk = self.body.slice(self.pos..next);
        self.pos = next;
        Ok(Some(chunk))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &Span,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let end = end.unwrap_or(self.body.len()).min(self.body.len());
        if start >= self.body.len() || start > end {
            return Err(Error::Backend(
                format!("seek {start}..{end} outside a body of {}", self.body.len()).into(),
            ));
        }
        self.pos = start;
        self.end = end;
        Ok(())
    }

    fn seek_multipart(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        // Parts are read one after the other from the same object.
        self.seek(start, end)
    }

    fn get_eviction_weight(&self) -> usize {
        self.body.len()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Buffers the body and uploads the object when the write finishes.
struct BlobMiss {
    storage: &'static BlobStorage,
    key: String,
    meta: Vec<u8>,
    body: Vec<u8>,
}

#[async_trait]
impl HandleMiss for BlobMiss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let size = self.body.len() + self.meta.len();
        let blob = Blob {
            meta: self.meta,
            body: Bytes::from(self.body),
        };
        self.storage.blobs.write().insert(self.key, blob);
        Ok(MissFinishType::Created(size))
    }
}

#[async_trait]
impl Storage for BlobStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let blobs = self.blobs.read();
        let Some(blob) = blobs.get(&key.combined()) else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&blob.meta)?;
        let hit = BlobHit {
            body: blob.body.clone(),
            pos: 0,
            end: blob.body.len(),
            chunk_size: self.chunk_size,
        };
        Ok(Some((meta, Box::new(hit))))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &Span,
    ) -> Result<MissHandler> {
        Ok(Box::new(BlobMiss {
            storage: self,
            key: key.combined(),
            meta: meta.serialize()?,
            body: Vec::new(),
        }))
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        _purge_type: PurgeType,
        _trace: &Span,
    ) -> Result<bool> {
        Ok(self.blobs.write().remove(&key.combined()).is_some())
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &Span,
    ) -> Result<bool> {
        let encoded = meta.serialize()?;
        Ok(match self.blobs.write().get_mut(&key.combined()) {
            Some(blob) => {
                blob.meta = encoded;
                true
            }
            None => false,
        })
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

static STORAGE: LazyLock<BlobStorage> = LazyLock::new(|| BlobStorage {
    chunk_size: 4,
    ..BlobStorage::default()
});
const CACHE_DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(|_| None, 0, 0);
const BODY: &[u8] = b"0123456789abcdef";

fn key() -> CacheKey {
    CacheKey::new("", "example.com/asset.bin", "")
}

/// A request's cache, enabled on the blob store and looked up: `Some` on a hit.
async fn lookup(cache: &mut HttpCache) -> larder::cache::Result<Option<(CacheMeta, HitHandler)>> {
    cache.enable(&*STORAGE, None, None, None, None);
    cache.set_cache_key(key());
    cache.cache_lookup().await
}

async fn read_all(cache: &mut HttpCache) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = cache.hit_handler().read_body().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // 1. A miss: store the origin's response.
    let mut cache = HttpCache::new();
    assert!(lookup(&mut cache).await?.is_none());
    cache.cache_miss();
    let mut resp = ResponseHeader::build(200, None)?;
    resp.insert_header("cache-control", "max-age=60")?;
    resp.insert_header("etag", "\"v1\"")?;
    let cc = CacheControl::from_resp_headers(&resp);
    let RespCacheable::Cacheable(meta) =
        resp_cacheable(cc.as_ref(), resp.clone(), false, &CACHE_DEFAULTS)
    else {
        panic!("max-age=60 is cacheable");
    };
    cache.set_cache_meta(meta);
    cache.set_miss_handler().await?;
    let writer = cache.miss_handler().expect("set above");
    writer
        .write_body(Bytes::from_static(&BODY[..10]), false)
        .await?;
    writer
        .write_body(Bytes::from_static(&BODY[10..]), true)
        .await?;
    cache.finish_miss_handler().await?;
    println!(
        "miss: stored {} bytes under {}",
        BODY.len(),
        key().combined()
    );

    // 2. A hit, read in the storage's 4-byte chunks.
    let mut cache = HttpCache::new();
    let (meta, hit) = lookup(&mut cache).await?.expect("stored by the miss");
    assert!(meta.is_fresh(SystemTime::now()));
    cache.cache_found(meta, hit, HitStatus::Fresh);
    assert_eq!(cache.phase(), CachePhase::Hit);
    assert_eq!(read_all(&mut cache).await?, BODY);
    cache.finish_hit_handler().await?;
    println!("hit: {} bytes", BODY.len());

    // 3. `Range: bytes=2-5` and a multipart `bytes=0-1,12-` from one hit handler.
    let mut cache = HttpCache::new();
    let (meta, hit) = lookup(&mut cache).await?.expect("stored");
    cache.cache_found(meta, hit, HitStatus::Fresh);
    assert!(cache.hit_handler().can_seek() && cache.hit_handler().can_seek_multipart());
    cache.hit_handler().seek(2, Some(6))?;
    assert_eq!(read_all(&mut cache).await?, b"2345");
    let mut parts = Vec::new();
    for (start, end) in [(0, Some(2)), (12, None)] {
        cache.hit_handler().seek_multipart(start, end)?;
        parts.push(read_all(&mut cache).await?);
    }
    assert_eq!(parts, [b"01".to_vec(), b"cdef".to_vec()]);
    assert!(cache.hit_handler().seek(99, None).is_err());
    cache.finish_hit_handler().await?;
    println!("ranges: 2345, 01 + cdef");

    // 4. The entry is stale: a 304 revalidates it and rewrites the stored meta.
    let mut cache = HttpCache::new();
    let (meta, hit) = lookup(&mut cache).await?.expect("stored");
    cache.cache_found(meta, hit, HitStatus::ForceExpired);
    assert_eq!(cache.phase(), CachePhase::Stale);
    let mut not_modified = ResponseHeader::build(304, None)?;
    not_modified.insert_header("cache-control", "max-age=3600")?;
    let merged = cache.revalidate_merge_header(&not_modified);
    let cc = CacheControl::from_resp_headers(&merged);
    let RespCacheable::Cacheable(meta) =
        resp_cacheable(cc.as_ref(), merged.clone(), false, &CACHE_DEFAULTS)
    else {
        panic!("max-age=3600 is cacheable");
    };
    assert!(
        cache.revalidate_cache_meta(meta).await?,
        "the blob store had the entry"
    );
    assert_eq!(cache.phase(), CachePhase::Revalidated);
    let (meta, _) = STORAGE.lookup(&key(), &Span::none()).await?.expect("kept");
    let lifetime = meta.fresh_until().duration_since(meta.updated())?;
    assert!(
        lifetime > Duration::from_mins(1),
        "the new max-age is stored"
    );
    assert_eq!(meta.headers()["etag"], "\"v1\"");
    println!("revalidated: fresh for {}s more", lifetime.as_secs());

    // 5. A purge, then the next request misses.
    let mut cache = HttpCache::new();
    cache.enable(&*STORAGE, None, None, None, None);
    cache.set_cache_key(key());
    assert!(cache.purge().await?, "there was an entry to purge");
    let mut cache = HttpCache::new();
    assert!(lookup(&mut cache).await?.is_none(), "purged");
    println!("purged: the next request misses");
    Ok(())
}
