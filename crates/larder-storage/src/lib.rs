//! Cache keys, cache metadata, the storage traits, an in-memory storage and eviction managers.
//!
//! This is the layer of larder that holds cached responses:
//!
//! - [`CacheKey`] / [`CompactCacheKey`]: what an entry is filed under, hashed with
//!   Blake2b-128 exactly as pingora-cache does ([`key`] explains how the parts combine).
//! - [`CacheMeta`]: freshness timestamps, stale-serving windows, the response header and the
//!   variance of a stored response, with a versioned binary encoding
//!   ([`CacheMeta::serialize`]).
//! - [`Storage`], [`HandleHit`], [`HandleMiss`]: the backend interface, with `&'static self`
//!   receivers.
//! - [`MemCache`]: an in-memory [`Storage`] with streaming partial writes.
//! - [`eviction::EvictionManager`] and its implementations.
//! - [`tiered::TieredStorage`]: an ordered list of storages used as one (memory in front of a
//!   disk or a shared Redis), hits from later tiers promoted into earlier ones.
//! - [`metrics::MetricSample`]: the figures a storage reports through [`Storage::metrics`].
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use bytes::Bytes;
//! use http::StatusCode;
//! use larder_storage::{CacheKey, CacheMeta, MemCache, ResponseHeader, Storage};
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let cache: &'static MemCache = Box::leak(Box::new(MemCache::new()));
//! let span = tracing::Span::none();
//! let key = CacheKey::new("", "https://example.com/", "");
//! let now = SystemTime::now();
//! let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0,
//!     ResponseHeader::new(StatusCode::OK));
//!
//! let mut miss = cache.get_miss_handler(&key, &meta, &span).await?;
//! miss.write_body(Bytes::from_static(b"hello"), true).await?;
//! miss.finish().await?;
//!
//! let (meta, mut hit) = cache.lookup(&key, &span).await?.expect("stored");
//! assert_eq!(meta.response_header().status, StatusCode::OK);
//! assert_eq!(hit.read_body().await?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(hit.read_body().await?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod error;
pub mod eviction;
mod header;
pub mod key;
mod memory;
mod meta;
pub mod metrics;
pub mod partial;
pub mod storage;
pub mod tiered;

pub use error::{Error, Result};
pub use header::ResponseHeader;
pub use key::{CacheHashKey, CacheKey, CompactCacheKey, HashBinary, hash_key};
pub use memory::MemCache;
pub use meta::CacheMeta;
pub use storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeType, Storage,
};
