//! Cache put: pushing a response into the cache without a client request, to pre-warm it or
//! to store a prefetched response (pingora-cache's `put` module).
//!
//! A [`CachePutCtx`] takes a response header and its body and stores them under a key, as the
//! miss path of [`HttpCache`](crate::HttpCache) would: the response must pass the same filters
//! with the same defaults ([`CachePut::cacheable`], by default
//! [`filters::resp_cacheable_targeted`] with `CDN-Cache-Control` as the targeted field and
//! [`CachePut::cache_defaults`]), a body over the maximum size is not stored, the eviction
//! manager admits the entry and its victims are purged, and when a cache lock is given, the put
//! holds the key's write lock while it writes, so concurrent misses of the key wait for it and
//! then find the entry.
//!
//! Unlike pingora-cache, the response comes as a [`ResponseHeader`] and body chunks, not as
//! HTTP/1 bytes in a request body: parsing is the caller's transport's job.
//!
//! ```
//! use bytes::Bytes;
//! use http::StatusCode;
//! use larder_cache::put::{CachePut, CachePutCtx};
//! use larder_cache::{CacheKey, CacheMetaDefaults, MemCache, ResponseHeader};
//!
//! struct Prewarm;
//! impl CachePut for Prewarm {
//!     fn cache_defaults() -> &'static CacheMetaDefaults {
//!         static DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::STRICT;
//!         &DEFAULTS
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let storage: &'static MemCache = Box::leak(Box::new(MemCache::new()));
//! let key = CacheKey::new("", "https://example.com/app.js", "");
//! let mut put = CachePutCtx::new(Prewarm, key, storage, None, tracing::Span::none());
//! let mut header = ResponseHeader::new(StatusCode::OK);
//! header.append_header("cache-control", "max-age=600")?;
//! let refused = put.cache_put(header, [Bytes::from_static(b"console.log(1)")]).await?;
//! assert_eq!(refused, None); // stored: the next request for the key is a hit
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderName;
use larder_storage::eviction::EvictionManager;
use larder_storage::{
    CacheKey, CacheMeta, MissFinishType, MissHandler, PurgeType, ResponseHeader, Storage,
};
use tracing::Span;

use crate::age::ResponseTimes;
use crate::defaults::CacheMetaDefaults;
use crate::error::{Error, Result};
use crate::filters::{self, RespCacheable};
use crate::lock::{CacheKeyLockImpl, LockStatus, Locked, WritePermit};
use crate::max_file_size::{MaxFileSizeTracker, content_length_exceeds};
use crate::phase::NoCacheReason;

/// The targeted field a put honours by default, as the proxy's default configuration does.
static CDN_CACHE_CONTROL: [HeaderName; 1] = [HeaderName::from_static("cdn-cache-control")];

/// How many times a put waits for another writer of the same key before giving up.
const LOCK_ROUNDS: usize = 3;

/// What a put stores, and how long for: the policy side of a [`CachePutCtx`].
pub trait CachePut {
    /// Whether and how long to store `response`. Default: the filters a proxied response
    /// goes through ([`filters::resp_cacheable_targeted`], no `Authorization` since there is
    /// no client request) with [`targeted_cache_control`](Self::targeted_cache_control) and
    /// [`cache_defaults`](Self::cache_defaults).
    fn cacheable(&self, response: ResponseHeader) -> RespCacheable {
        filters::resp_cacheable_targeted(
            response,
            false,
            self.targeted_cache_control(),
            Self::cache_defaults(),
            ResponseTimes::at(SystemTime::now()),
        )
    }

    /// The defaults (per-status TTLs, heuristic freshness, stale windows) of
    /// [`cacheable`](Self::cacheable).
    fn cache_defaults() -> &'static CacheMetaDefaults;

    /// The targeted fields (RFC 9213) that replace `Cache-Control`, in order. Default:
    /// `CDN-Cache-Control`.
    fn targeted_cache_control(&self) -> &[HeaderName] {
        &CDN_CACHE_CONTROL
    }

    /// Called with every response header before it is judged, to record what matters on
    /// the put's span. Default: nothing.
    fn trace_header(&mut self, response: &ResponseHeader) {
        let _ = response;
    }
}

/// One put: the response header first ([`put_header`](Self::put_header)), then the body
/// ([`put_body`](Self::put_body)), then [`finish`](Self::finish); or all three at once with
/// [`cache_put`](Self::cache_put).
///
/// A refused response (uncacheable, too large) still accepts its body, which is then
/// dropped, so a caller streaming from a connection can drain it the same way either way.
pub struct CachePutCtx<C: CachePut> {
    cache_put: C,
    key: CacheKey,
    storage: &'static (dyn Storage + Sync),
    eviction: Option<&'static (dyn EvictionManager + Sync)>,
    cache_lock: Option<&'static CacheKeyLockImpl>,
    permit: Option<WritePermit>,
    miss_handler: Option<MissHandler>,
    max_file_size: Option<MaxFileSizeTracker>,
    meta: Option<CacheMeta>,
    refused: Option<NoCacheReason>,
    trace: Span,
}

impl<C: CachePut> CachePutCtx<C> {
    /// A put of one response under `key` into `storage`, admitted into `eviction` if given.
    pub fn new(
        cache_put: C,
        key: CacheKey,
        storage: &'static (dyn Storage + Sync),
        eviction: Option<&'static (dyn EvictionManager + Sync)>,
        trace: Span,
    ) -> Self {
        CachePutCtx {
            cache_put,
            key,
            storage,
            eviction,
            cache_lock: None,
            permit: None,
            miss_handler: None,
            max_file_size: None,
            meta: None,
            refused: None,
            trace,
        }
    }

    /// Limits the body to `max_file_size_bytes`: a larger `Content-Length` refuses the
    /// response, a body growing past it abandons the write.
    pub fn set_max_file_size_bytes(&mut self, max_file_size_bytes: usize) {
        self.max_file_size = Some(MaxFileSizeTracker::new(max_file_size_bytes));
    }

    /// Takes `cache_lock`'s write lock on the key while writing, the lock the proxy's misses
    /// use, so they wait for the put instead of fetching the same response. A put that finds
    /// another writer waits for it (at most three times the lock's age timeout) and then
    /// writes its own response, which replaces the other.
    pub fn set_cache_lock(&mut self, cache_lock: Option<&'static CacheKeyLockImpl>) {
        self.cache_lock = cache_lock;
    }

    /// Judges `response` and, when it may be stored, starts writing it. Returns why it is
    /// not stored, or `None` when its body is expected next.
    ///
    /// # Errors
    ///
    /// The storage failed to start the write (nothing is stored).
    ///
    /// # Panics
    ///
    /// If called twice.
    pub async fn put_header(&mut self, response: ResponseHeader) -> Result<Option<NoCacheReason>> {
        assert!(
            self.meta.is_none() && self.refused.is_none(),
            "put_header: the header was already put"
        );
        self.cache_put.trace_header(&response);
        if let Some(tracker) = &self.max_file_size
            && content_length_exceeds(&response.headers, tracker.max())
        {
            return Ok(Some(self.refuse(NoCacheReason::ResponseTooLarge)));
        }
        let mut meta = match self.cache_put.cacheable(response) {
            RespCacheable::Cacheable(meta) => meta,
            RespCacheable::Uncacheable(reason) => return Ok(Some(self.refuse(reason))),
        };
        if let Some(variance) = self.key.get_variance_key() {
            meta.set_variance_key(*variance);
        }
        if let Some(reason) = self.lock().await {
            return Ok(Some(self.refuse(reason)));
        }
        let handler = match self
            .storage
            .get_miss_handler(&self.key, &meta, &self.trace)
            .await
        {
            Ok(handler) => handler,
            Err(error) => {
                self.release(LockStatus::TransientError);
                self.refused = Some(NoCacheReason::StorageError);
                return Err(error.into());
            }
        };
        if self.storage.support_streaming_partial_write() {
            // Waiting requests can read the body as it is written.
            self.release(LockStatus::Done);
        }
        self.miss_handler = Some(handler);
        self.meta = Some(meta);
        Ok(None)
    }

    /// Writes the next body chunk; `eof` marks the last one. A no-op for a refused response.
    ///
    /// # Errors
    ///
    /// [`Error::ResponseTooLarge`] once the body grows past the maximum size, or a storage
    /// failure; either way the write is abandoned (nothing is stored) and later chunks are
    /// dropped.
    pub async fn put_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if self.miss_handler.is_none() {
            return Ok(());
        }
        if let Some(tracker) = self.max_file_size.as_mut()
            && !tracker.add_body_bytes(data.len())
        {
            let max = tracker.max();
            tracing::debug!(parent: &self.trace, max, "cache put body too large");
            self.abandon(NoCacheReason::ResponseTooLarge);
            return Err(Error::ResponseTooLarge);
        }
        let Some(handler) = self.miss_handler.as_mut() else {
            return Ok(());
        };
        if let Err(error) = handler.write_body(data, eof).await {
            self.abandon(NoCacheReason::StorageError);
            return Err(error.into());
        }
        Ok(())
    }

    /// Completes the write: the entry becomes visible, the lock is released, the eviction
    /// manager admits the entry and the victims it names are purged. A no-op for a refused
    /// response, and when called again.
    ///
    /// # Errors
    ///
    /// The storage failed to complete the write (nothing is stored).
    pub async fn finish(&mut self) -> Result<()> {
        let Some(handler) = self.miss_handler.take() else {
            return Ok(());
        };
        let finished = match handler.finish().await {
            Ok(finished) => finished,
            Err(error) => {
                self.abandon(NoCacheReason::StorageError);
                return Err(error.into());
            }
        };
        self.release(LockStatus::Done);
        let Some(eviction) = self.eviction else {
            return Ok(());
        };
        let compact = self.key.to_compact();
        let victims = match finished {
            MissFinishType::Created(size) => {
                let fresh_until = self
                    .meta
                    .as_ref()
                    .map_or_else(SystemTime::now, CacheMeta::fresh_until);
                eviction.admit(compact, size, fresh_until)
            }
            MissFinishType::Appended(delta, max) => eviction.increment_weight(&compact, delta, max),
        };
        for victim in victims {
            if let Err(error) = self
                .storage
                .purge(&victim, PurgeType::Eviction, &self.trace)
                .await
            {
                tracing::warn!(%victim, %error, "failed to purge an evicted entry");
            }
        }
        Ok(())
    }

    /// [`put_header`](Self::put_header), every chunk of `body` through
    /// [`put_body`](Self::put_body) (the last with `eof`), then [`finish`](Self::finish).
    /// Returns why the response was not stored, or `None` when it was.
    ///
    /// # Errors
    ///
    /// As the three steps; [`Error::ResponseTooLarge`] when the body grew past the maximum.
    pub async fn cache_put(
        &mut self,
        response: ResponseHeader,
        body: impl IntoIterator<Item = Bytes>,
    ) -> Result<Option<NoCacheReason>> {
        if let Some(reason) = self.put_header(response).await? {
            return Ok(Some(reason));
        }
        let mut body = body.into_iter().peekable();
        let mut wrote_eof = false;
        while let Some(chunk) = body.next() {
            wrote_eof = body.peek().is_none();
            self.put_body(chunk, wrote_eof).await?;
        }
        if !wrote_eof {
            self.put_body(Bytes::new(), true).await?;
        }
        self.finish().await?;
        Ok(None)
    }

    /// Why the response is not (or will not be) stored, once known.
    pub fn refused(&self) -> Option<NoCacheReason> {
        self.refused
    }

    /// The key the response is stored under.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// Becomes the key's writer, if there is a lock; `Some` reason when it could not.
    async fn lock(&mut self) -> Option<NoCacheReason> {
        let cache_lock = self.cache_lock?;
        for _ in 0..LOCK_ROUNDS {
            match cache_lock.lock(&self.key, false) {
                Locked::Write(permit) => {
                    self.permit = Some(permit);
                    return None;
                }
                Locked::Read(reader) => reader.wait().await,
            }
        }
        Some(NoCacheReason::CacheLockTimeout)
    }

    fn release(&mut self, status: LockStatus) {
        if let (Some(cache_lock), Some(permit)) = (self.cache_lock, self.permit.take()) {
            cache_lock.release(&self.key, permit, status);
        }
    }

    fn refuse(&mut self, reason: NoCacheReason) -> NoCacheReason {
        self.refused = Some(reason);
        reason
    }

    /// Drops the write (nothing is stored) and lets a waiting request become the writer:
    /// this put's failure says nothing about the origin's response.
    fn abandon(&mut self, reason: NoCacheReason) {
        self.miss_handler = None;
        self.refused = Some(reason);
        self.release(LockStatus::TransientError);
    }
}
