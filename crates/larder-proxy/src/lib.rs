//! A tower caching layer and the larder caching reverse proxy.
//!
//! [`CacheLayer`] wraps any tower service that answers `http::Request`s (a hyper client to an
//! origin, or an application) with an HTTP cache that follows RFC 9111. [`CacheHooks`] carries
//! the cache callbacks a proxy customises. The `larder` binary runs the layer in front of an
//! [`Upstream`] origin.
//!
//! ```
//! use larder_proxy::{CacheConfig, CacheLayer, DefaultHooks};
//! use tower::Layer;
//!
//! let layer = CacheLayer::new(CacheConfig::default(), DefaultHooks);
//! let service = layer.layer(larder_proxy::Upstream::new("http://127.0.0.1:8000")?);
//! # drop(service);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod body;
pub mod config;
mod error;
mod flow;
pub mod headers;
mod hooks;
mod layer;
pub mod metrics;
pub mod purge;
pub mod server;
mod upstream;

pub use body::ProxyBody;
pub use error::{BoxError, Error};
pub use hooks::{CacheHooks, DefaultHooks, StaleCause, default_cache_key, default_variance};
pub use layer::{CacheConfig, CacheLayer, CacheService};
pub use upstream::Upstream;

/// A layer configured from the binary's `[cache]` settings: bounded in-memory storage of
/// `settings.size` bytes with the chosen eviction policy, lock timeouts, object size limit,
/// freshness defaults, purge token and `Cache-Status` name.
pub fn build_layer<H: CacheHooks>(settings: &config::CacheSettings, hooks: H) -> CacheLayer<H> {
    let size = usize::try_from(settings.size).unwrap_or(usize::MAX);
    let mut config = CacheConfig::in_memory(size, settings.eviction)
        .with_lock_timeouts(settings.lock_age(), settings.lock_timeout());
    let max = usize::try_from(settings.max_object_size).unwrap_or(usize::MAX);
    config.max_file_size = Some(if max == 0 { size } else { max.min(size) });
    config.defaults = settings.meta_defaults();
    config
        .cache_status_name
        .clone_from(&settings.cache_status_name);
    config.purge_token.clone_from(&settings.purge_token);
    CacheLayer::new(config, hooks)
}
