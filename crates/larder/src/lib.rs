//! larder: an HTTP caching toolkit for Rust.
//!
//! larder is the caching layer of a reverse proxy or CDN node, split into crates that can be
//! used one at a time, plus a ready caching reverse proxy built on them. It keeps the
//! vocabulary of pingora-cache (`CacheKey`, `CacheMeta`, `Storage`, `HttpCache` phases,
//! `MemCache`, `RTCache`) and follows RFC 9111. [`cache`] has the module paths of
//! `pingora::cache` (`key`, `meta`, `storage`, `lock`, `eviction`, `filters`, `cache_control`,
//! `max_file_size`, `predictor`, `put`, `prelude`); the porting table of `docs/guide.md` lists
//! what else a port changes, and `examples/port_storage.rs` and `examples/port_cache_filter.rs`
//! are two pingora-cache programs ported that way.
//!
//! # From the dependency to a cached hit
//!
//! Add `larder = "0.1"` (the default `cache` feature gives `larder::cache`). A proxy keeps one
//! [`cache::HttpCache`] per request. The first request misses, stores the upstream's response
//! when RFC 9111 allows it; the next one is a hit:
//!
//! ```
//! use std::time::SystemTime;
//! use bytes::Bytes;
//! use http::{StatusCode, header};
//! use larder::cache::cache_control::CacheControl;
//! use larder::cache::filters::{RespCacheable, resp_cacheable};
//! use larder::cache::key::CacheKey;
//! use larder::cache::meta::CacheMetaDefaults;
//! use larder::cache::{CachePhase, HitStatus, HttpCache, MemCache, ResponseHeader};
//!
//! // Storage lives as long as the process: `HttpCache` takes `&'static` references.
//! static DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::STRICT;
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let storage: &'static MemCache = Box::leak(Box::new(MemCache::new()));
//! let key = || CacheKey::new("", "https://example.com/logo.png", "");
//!
//! // Request 1: a miss. Go upstream, then store the response.
//! let mut cache = HttpCache::new();
//! cache.enable(storage, None, None, None, None);
//! cache.set_cache_key(key());
//! assert!(cache.cache_lookup().await?.is_none());
//! cache.cache_miss();
//! let mut response = ResponseHeader::new(StatusCode::OK);
//! response.append_header(header::CACHE_CONTROL, "max-age=3600")?;
//! let cc = CacheControl::from_resp_headers(&response);
//! let RespCacheable::Cacheable(meta) =
//!     resp_cacheable(cc.as_ref(), response.clone(), false, &DEFAULTS)
//! else { unreachable!("max-age=3600 is cacheable") };
//! cache.set_cache_meta(meta);
//! cache.set_miss_handler().await?;
//! let writer = cache.miss_handler().expect("set above");
//! writer.write_body(Bytes::from_static(b"\x89PNG..."), true).await?;
//! cache.finish_miss_handler().await?;
//!
//! // Request 2: a hit, served from storage.
//! let mut cache = HttpCache::new();
//! cache.enable(storage, None, None, None, None);
//! cache.set_cache_key(key());
//! let (meta, hit) = cache.cache_lookup().await?.expect("stored by request 1");
//! assert!(meta.is_fresh(SystemTime::now()));
//! cache.cache_found(meta, hit, HitStatus::Fresh);
//! assert_eq!(cache.phase(), CachePhase::Hit);
//! let body = cache.hit_handler().read_body().await?.expect("one chunk");
//! assert_eq!(&body[..], b"\x89PNG...");
//! cache.finish_hit_handler().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In a real proxy, the `proxy` feature's `CacheLayer` does all of this (plus locking,
//! revalidation, stale serving, ranges and conditional requests) around any tower service,
//! and the `larder` binary (crate `larder-server`) runs it in front of an origin.
//!
//! # Feature flags
//!
//! - `cache` (default): `larder::cache`, `HttpCache` and the RFC 9111 rules, with `MemCache`,
//!   `CacheKey`, `CacheMeta` and the `Storage` traits. Enables `cache-control` and `storage`.
//! - `cache-control`: `larder::cache_control`, Cache-Control and CDN-Cache-Control parsing.
//! - `storage`: `larder::storage`, keys, `CacheMeta`, the `Storage` traits, `MemCache`, eviction
//!   managers, and `larder::storage::tiered::TieredStorage`, storages used as one tier after
//!   another (memory in front of a disk or Redis).
//! - `eviction`: `larder::eviction`, the eviction core (sharded weighted LRU, `TinyUFO` policy).
//! - `memory-cache`: `larder::memory_cache`, `MemoryCache` and the read-through `RTCache`.
//! - `proxy`: `larder::proxy`, the tower `CacheLayer` and the proxy building blocks (with any
//!   `Storage`; this feature does not pull in the Redis client).
//! - `redis`: `larder::storage_redis`: `RedisStorage`, a `Storage` on Redis shared by a fleet of
//!   proxies, and (re-exported) `TieredStorage`, local memory in front of it.
//! - `disk`: `larder::storage_disk`: `DiskStorage`, a `Storage` on a local directory that
//!   survives restarts and crashes.
//! - `full`: everything.

#[cfg(feature = "cache-control")]
#[doc(inline)]
pub use larder_cache_control as cache_control;

#[cfg(feature = "eviction")]
#[doc(inline)]
pub use larder_eviction as eviction;

#[cfg(feature = "storage")]
#[doc(inline)]
pub use larder_storage as storage;

/// HTTP caching: [`HttpCache`](cache::HttpCache) and everything it works with, under the module
/// paths and names `pingora::cache` uses.
#[cfg(feature = "cache")]
pub mod cache {
    #[doc(inline)]
    pub use larder_cache::*;
}

#[cfg(feature = "memory-cache")]
#[doc(inline)]
pub use larder_memory_cache as memory_cache;

#[cfg(feature = "proxy")]
#[doc(inline)]
pub use larder_proxy as proxy;

#[cfg(feature = "redis")]
#[doc(inline)]
pub use larder_storage_redis as storage_redis;

#[cfg(feature = "disk")]
#[doc(inline)]
pub use larder_storage_disk as storage_disk;
