//! `HttpCache`: the phase-gated HTTP cache state machine and RFC 9111 semantics.
//!
//! A proxy keeps one [`HttpCache`] per request and drives it through its phases
//! ([`CachePhase`]), with pingora-cache's names and flows. The rules deciding what may be
//! stored and for how long live beside it as free functions: [`filters`] (cacheability,
//! freshness, heuristics), [`age`] (RFC 9111 §4.2.3), [`request`] (request directives),
//! [`variance`] (`Vary`), [`revalidate`] (conditional requests and 304 merging), plus the cache
//! [`lock`], the cacheability [`predictor`], [`max_file_size`], [`range`], [`conditional`],
//! [`cache_status`] (RFC 9211) and [`set_cookie`] (responses that set a cookie).
//!
//! # The miss flow
//!
//! `enable → set_cache_key → cache_lookup [None] → cache_miss → set_cache_meta →
//! set_miss_handler → write the body → finish_miss_handler`
//!
//! ```
//! use bytes::Bytes;
//! use http::{HeaderMap, StatusCode, header};
//! use larder_cache::cache_control::CacheControl;
//! use larder_cache::filters::{RespCacheable, resp_cacheable};
//! use larder_cache::{CacheKey, CacheMetaDefaults, CachePhase, HttpCache, MemCache};
//! use larder_cache::ResponseHeader;
//!
//! static DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::STRICT;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let storage: &'static MemCache = Box::leak(Box::new(MemCache::new()));
//! let mut cache = HttpCache::new();
//! cache.enable(storage, None, None, None, None);
//! cache.set_cache_key(CacheKey::new("", "https://example.com/a", ""));
//! assert!(cache.cache_lookup().await?.is_none());
//! cache.cache_miss();
//!
//! // The upstream answered; decide whether and how long to store it.
//! let mut response = ResponseHeader::new(StatusCode::OK);
//! response.append_header(header::CACHE_CONTROL, "max-age=60")?;
//! let headers: HeaderMap = response.headers.clone();
//! let cc = CacheControl::from_headers(&headers);
//! let RespCacheable::Cacheable(meta) = resp_cacheable(Some(&cc), response, false, &DEFAULTS)
//! else { unreachable!("max-age=60 is cacheable") };
//! cache.set_cache_meta(meta);
//! cache.set_miss_handler().await?;
//! let writer = cache.miss_handler().expect("just set");
//! writer.write_body(Bytes::from_static(b"hello"), true).await?;
//! cache.finish_miss_handler().await?;
//! assert_eq!(cache.phase(), CachePhase::Miss);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The hit flow
//!
//! `enable → set_cache_key → cache_lookup [Some] → cache_found → hit_handler().read_body() →
//! finish_hit_handler`
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use bytes::Bytes;
//! use http::StatusCode;
//! use larder_cache::{CacheKey, CacheMeta, CachePhase, HitStatus, HttpCache, MemCache};
//! use larder_cache::{ResponseHeader, Storage};
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let storage: &'static MemCache = Box::leak(Box::new(MemCache::new()));
//! let key = CacheKey::new("", "https://example.com/a", "");
//! # let now = SystemTime::now();
//! # let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0,
//! #     ResponseHeader::new(StatusCode::OK));
//! # let mut w = storage.get_miss_handler(&key, &meta, &tracing::Span::none()).await?;
//! # w.write_body(Bytes::from_static(b"hello"), true).await?;
//! # w.finish().await?;
//! // An earlier request stored the response (see the miss flow).
//! let mut cache = HttpCache::new();
//! cache.enable(storage, None, None, None, None);
//! cache.set_cache_key(key);
//! let (meta, hit) = cache.cache_lookup().await?.expect("stored");
//! let fresh = meta.is_fresh(SystemTime::now());
//! let status = if fresh { HitStatus::Fresh } else { HitStatus::Expired };
//! cache.cache_found(meta, hit, status);
//! assert_eq!(cache.phase(), CachePhase::Hit);
//! let mut body = Vec::new();
//! while let Some(chunk) = cache.hit_handler().read_body().await? {
//!     body.extend_from_slice(&chunk);
//! }
//! assert_eq!(body, b"hello");
//! // The `Age` to send is the entry's current age (RFC 9111 §4.2.3).
//! assert!(cache.cache_meta().age(SystemTime::now()) < Duration::from_secs(60));
//! cache.finish_hit_handler().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The other paths
//!
//! - **Stale**: `cache_found(.., HitStatus::Expired)` → `Stale`; the first request takes the
//!   lock as a stale writer and revalidates with the conditional headers of
//!   [`revalidate::request_filter`]. A 304: merge with [`HttpCache::revalidate_merge_header`],
//!   run the filters on the merged header, then [`HttpCache::revalidate_cache_meta`] (→ `Revalidated`) or
//!   [`HttpCache::revalidate_uncacheable`] (→ `RevalidatedNoCache`). A 200:
//!   `set_cache_meta` (→ `Expired`) and the miss flow. An upstream error within the
//!   stale-if-error window ([`HttpCache::can_serve_stale_error`]): release the lock and serve
//!   the stale entry. Within stale-while-revalidate ([`HttpCache::can_serve_stale_updating`]):
//!   hand the write permit to a background refresh ([`HttpCache::take_write_lock`]) and
//!   [`HttpCache::set_stale_updating`].
//! - **Lock**: with a [`lock::CacheLock`], concurrent misses elect one writer; the others see
//!   [`HttpCache::is_cache_locked`], call [`HttpCache::cache_lock_wait`] and look up again.
//! - **Vary**: see [`variance`] for the lookup flow of varied entries.
//!
//! The crate's integration tests (`tests/it/driver.rs`) hold a complete miniature proxy loop
//! over these calls: lookup with Vary and lock handling, hit, stale-while-revalidate with a
//! background refresh, stale-if-error, 304 merge and the miss write with a size limit.
//!
//! # Where this crate follows RFC 9111 rather than pingora-cache
//!
//! The names and flows are pingora-cache's; the rules are the RFC's:
//!
//! - The upstream `Age`, `Date` and the request's round trip count in a stored response's age
//!   and freshness ([`age`]); `CacheMeta::age(now)` is the RFC's `current_age`.
//! - Responses without explicit freshness get the `Last-Modified` heuristic (10% by default,
//!   capped) only for heuristically cacheable statuses or `public` responses, and are not stored
//!   at all when nothing gives them a lifetime ([`CacheMetaDefaults::STRICT`]); per-status
//!   default TTLs apply only without explicit freshness unless [`DefaultTtlScope::Always`].
//! - `must-understand`, `Vary: *`, 1xx and 206 responses, and invalid or repeated `Expires`
//!   are handled as RFC 9111 §3 and §5.3 say; `CDN-Cache-Control` and other targeted fields
//!   replace `Cache-Control` and `Expires` (RFC 9213).
//! - Request directives (`max-age`, `max-stale`, `min-fresh`, `no-cache`, `no-store`,
//!   `only-if-cached`, `Pragma: no-cache`) are interpreted ([`request`]).
//! - A 304 updates every stored header field except the framing ones
//!   ([`revalidate::merge_not_modified`], §3.2), not only five names.
//! - A response that sets a cookie (`Set-Cookie`) is stored only when the origin addresses
//!   shared caches (`public`, `s-maxage`, a targeted field), and never with its cookie
//!   ([`set_cookie`], [`SetCookiePolicy`]): one user's session is not replayed to the next.
//! - A bare `no-cache` response with a validator is stored for revalidation; `ForceExpired`
//!   turns off stale serving for the request; a hit releases the lock the request held; a
//!   failed lookup takes the lock like a miss, so a broken entry does not send every request
//!   upstream at once.

pub mod age;
pub mod cache_status;
pub mod conditional;
pub mod defaults;
mod error;
pub mod filters;
mod http_cache;
pub mod lock;
pub mod max_file_size;
pub mod meta;
mod phase;
pub mod predictor;
pub mod put;
pub mod range;
pub mod request;
pub mod revalidate;
pub mod set_cookie;
pub mod variance;

pub use defaults::{CacheMetaDefaults, DefaultTtlScope, HeuristicFreshness};
pub use error::{Error, Result};
pub use filters::RespCacheable;
pub use http_cache::{CacheOptionOverrides, HttpCache, HttpCacheDigest};
pub use phase::{CachePhase, ForcedFreshness, HitStatus, NoCacheReason};
pub use set_cookie::SetCookiePolicy;
pub use variance::VarianceBuilder;

pub use larder_cache_control as cache_control;
pub use larder_storage::{
    CacheKey, CacheMeta, CompactCacheKey, HandleHit, HandleMiss, HashBinary, HitHandler, MemCache,
    MissFinishType, MissHandler, PurgeType, ResponseHeader, Storage, hash_key,
};
pub use larder_storage::{eviction, key, storage};

/// The names most cache code uses, for `use larder_cache::prelude::*`.
///
/// pingora-cache's prelude is empty; this one is a superset, so a ported glob import still
/// compiles.
pub mod prelude {
    pub use crate::cache_control::CacheControl;
    pub use crate::filters::resp_cacheable;
    pub use crate::put::{CachePut, CachePutCtx};
    pub use crate::{
        CacheKey, CacheMeta, CacheMetaDefaults, CachePhase, ForcedFreshness, HandleHit, HandleMiss,
        HitHandler, HitStatus, HttpCache, MemCache, MissHandler, NoCacheReason, PurgeType,
        RespCacheable, ResponseHeader, Storage, VarianceBuilder,
    };
}
