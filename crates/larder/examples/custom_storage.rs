//! A `Storage` implemented over a `HashMap`, passed to `HttpCache::enable`.
//!
//! The store keeps each entry as its encoded meta plus the whole body, and publishes an entry
//! only when its miss handler finishes, so an unfinished write is never visible. It does not
//! stream partial writes (the default), so a cache lock would be held until the body is
//! complete.
//!
//! Run with `cargo run -p larder --example custom_storage`.

use std::any::Any;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use larder::cache::{
    CacheKey, CacheMeta, CachePhase, CompactCacheKey, HandleHit, HandleMiss, HitHandler, HitStatus,
    HttpCache, MissFinishType, MissHandler, PurgeType, ResponseHeader, Storage,
};
use larder::storage::Result;
use parking_lot::Mutex;
use tracing::Span;

/// Entries by the hex of their combined key hash: (encoded meta, body).
#[derive(Default)]
struct MapStorage {
    entries: Mutex<HashMap<String, (Vec<u8>, Bytes)>>,
}

/// Reads a whole stored body in one chunk.
struct MapHit {
    body: Option<Bytes>,
}

#[async_trait]
impl HandleHit for MapHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        Ok(self.body.take())
    }
    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &Span,
    ) -> Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Buffers the body and publishes the entry on `finish`.
struct MapMiss {
    storage: &'static MapStorage,
    key: String,
    meta: Vec<u8>,
    body: BytesMut,
}

#[async_trait]
impl HandleMiss for MapMiss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.body.extend_from_slice(&data);
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let size = self.body.len();
        self.storage
            .entries
            .lock()
            .insert(self.key, (self.meta, self.body.freeze()));
        Ok(MissFinishType::Created(size))
    }
}

#[async_trait]
impl Storage for MapStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &Span,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some((meta, body)) = self.entries.lock().get(&key.combined()).cloned() else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&meta)?;
        Ok(Some((meta, Box::new(MapHit { body: Some(body) }))))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &Span,
    ) -> Result<MissHandler> {
        Ok(Box::new(MapMiss {
            storage: self,
            key: key.combined(),
            meta: meta.serialize()?,
            body: BytesMut::new(),
        }))
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        _purge_type: PurgeType,
        _trace: &Span,
    ) -> Result<bool> {
        Ok(self.entries.lock().remove(&key.combined()).is_some())
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &Span,
    ) -> Result<bool> {
        let encoded = meta.serialize()?;
        Ok(match self.entries.lock().get_mut(&key.combined()) {
            Some(entry) => {
                entry.0 = encoded;
                true
            }
            None => false,
        })
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let storage: &'static MapStorage = Box::leak(Box::default());
    let key = || CacheKey::new("", "http://example.com/hello", "");

    // A miss fills the map.
    let mut cache = HttpCache::new();
    cache.enable(storage, None, None, None, None);
    assert!(cache.storage_type_is::<MapStorage>());
    cache.set_cache_key(key());
    assert!(cache.cache_lookup().await?.is_none());
    cache.cache_miss();
    let now = SystemTime::now();
    let meta = CacheMeta::new(
        now + Duration::from_mins(1),
        now,
        0,
        0,
        ResponseHeader::new(StatusCode::OK),
    );
    cache.set_cache_meta(meta);
    cache.set_miss_handler().await?;
    let writer = cache.miss_handler().expect("set above");
    writer
        .write_body(Bytes::from_static(b"hello, "), false)
        .await?;
    writer
        .write_body(Bytes::from_static(b"world"), true)
        .await?;
    cache.finish_miss_handler().await?;

    // The next request is a hit from the map.
    let mut cache = HttpCache::new();
    cache.enable(storage, None, None, None, None);
    cache.set_cache_key(key());
    let (meta, hit) = cache.cache_lookup().await?.expect("stored");
    cache.cache_found(meta, hit, HitStatus::Fresh);
    assert_eq!(cache.phase(), CachePhase::Hit);
    let body = cache.hit_handler().read_body().await?.expect("body");
    println!("hit from MapStorage: {}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..], b"hello, world");
    cache.finish_hit_handler().await?;
    Ok(())
}
