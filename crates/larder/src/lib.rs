//! larder: an HTTP caching toolkit for Rust.
//!
//! larder is the caching layer of a reverse proxy or CDN node, split into crates that can be
//! used one at a time, plus a ready caching reverse proxy built on them. This facade re-exports
//! the crates behind features, so one dependency line gives access to all of them.
//!
//! ```
//! use http::HeaderMap;
//! use larder::cache_control::CacheControl;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(http::header::CACHE_CONTROL, "public, max-age=3600".parse()?);
//! let cc = CacheControl::from_headers(&headers);
//! assert_eq!(cc.max_age(), Some(Ok(3600)));
//! assert!(cc.public());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! - `cache-control` (default): [`cache_control`], Cache-Control and CDN-Cache-Control parsing.
//! - `full`: every feature.

#[cfg(feature = "cache-control")]
#[doc(inline)]
pub use larder_cache_control as cache_control;
