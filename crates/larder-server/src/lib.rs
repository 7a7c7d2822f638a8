//! The `larder` caching reverse proxy: its configuration (a TOML file overridden by flags) and
//! the storage backends it wires into `larder-proxy`'s [`CacheLayer`].
//!
//! `larder-proxy` knows storage only through the `Storage` trait; this crate is where the
//! binary picks one: a bounded in-memory cache, a Redis server shared by a fleet
//! ([`RedisStorage`](larder_storage_redis::RedisStorage)), a directory that survives restarts
//! ([`DiskStorage`](larder_storage_disk::DiskStorage)), or tiers of them, memory first
//! ([`TieredStorage`](larder_storage::tiered::TieredStorage)). See [`config`] for every key.
//!
//! One storage serves every site: [`sites`] builds a layer per `[[site]]` over it and routes
//! requests by host; [`reload`] holds the current configuration, which SIGHUP replaces for new
//! requests and handshakes while the cache is kept (`docs/deploy.md`).
//!
//! ```text
//! larder --upstream http://127.0.0.1:8000 --listen 127.0.0.1:6188
//! larder --config larder.toml            # flags given too override the file
//! ```
//!
//! ```
//! use larder_server::config::ProxyConfig;
//!
//! let config = ProxyConfig::from_toml(
//!     "upstream = \"http://127.0.0.1:8000\"\n[cache]\nsize = 1048576\n",
//! )?;
//! config.validate()?;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let layer = larder_server::build_layer(&config.cache, larder_proxy::DefaultHooks)?;
//! assert!(layer.render_metrics().contains("larder_requests_total 0"));
//! # Ok::<(), larder_server::Error>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
pub mod config;
mod duration;
mod error;
mod hosts;
pub mod reload;
pub mod signals;
pub mod sites;
mod size;
mod storage;

pub use error::Error;
use larder_proxy::{CacheHooks, CacheLayer};
pub use storage::disk_storage;

/// A layer configured from the binary's `[cache]` settings: the storage they name (bounded
/// memory, a Redis server shared by a fleet, a disk, or tiers of them), lock timeouts,
/// object size limit, freshness defaults, purge token and `Cache-Status` name; see
/// [`config::CacheSettings::cache_config`].
///
/// # Errors
///
/// [`Error::ConfigInvalid`] for an unusable Redis URL or cache directory, or when called
/// outside a Tokio runtime with Redis or disk storage.
pub fn build_layer<H: CacheHooks>(
    settings: &config::CacheSettings,
    hooks: H,
) -> Result<CacheLayer<H>, Error> {
    Ok(CacheLayer::new(settings.cache_config()?, hooks))
}
