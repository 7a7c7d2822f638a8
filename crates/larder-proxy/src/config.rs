//! Configuration vocabulary of the library: the eviction policy of
//! [`CacheConfig::in_memory`](crate::CacheConfig::in_memory) and freshness defaults for
//! responses without explicit freshness.
//!
//! The `larder` binary's TOML file and flags, and the storage backends they name (memory,
//! Redis, memory in front of Redis), are the `larder-server` crate's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;
use larder_cache::CacheMetaDefaults;
use serde::Deserialize;

use crate::error::Error;

/// The eviction policy of the in-memory storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EvictionPolicy {
    /// Sharded weighted LRU.
    Lru,
    /// `TinyUFO` (S3-FIFO with `TinyLFU` admission).
    #[default]
    Tinyufo,
}

impl std::str::FromStr for EvictionPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "lru" => Ok(Self::Lru),
            "tinyufo" => Ok(Self::Tinyufo),
            _ => Err(Error::ConfigInvalid(format!(
                "unknown eviction policy {s:?} (expected lru or tinyufo)"
            ))),
        }
    }
}

/// A freshness policy with a default lifetime of `default_ttl_secs` (none when `None`) for the
/// statuses RFC 9110 §15.1 calls heuristically cacheable, for responses without explicit
/// freshness or `Last-Modified`, and the given stale-while-revalidate and stale-if-error
/// windows for responses that name none.
///
/// `CacheMetaDefaults` takes a plain function for the per-status lifetime, so the default
/// lifetime is kept in a process-wide value read by that function: one process runs one
/// configuration, and the last call wins.
///
/// ```
/// use http::StatusCode;
///
/// let defaults = larder_proxy::config::meta_defaults(Some(60), 0, 0);
/// assert_eq!(defaults.fresh_sec(StatusCode::NOT_FOUND), Some(std::time::Duration::from_secs(60)));
/// assert_eq!(defaults.fresh_sec(StatusCode::INTERNAL_SERVER_ERROR), None);
/// ```
pub fn meta_defaults(
    default_ttl_secs: Option<u32>,
    stale_while_revalidate_secs: u32,
    stale_if_error_secs: u32,
) -> CacheMetaDefaults {
    let ttl = default_ttl_secs.map_or(u64::MAX, u64::from);
    DEFAULT_TTL_SECS.store(ttl, Ordering::Relaxed);
    CacheMetaDefaults::new(
        configured_ttl,
        stale_while_revalidate_secs,
        stale_if_error_secs,
    )
}

static DEFAULT_TTL_SECS: AtomicU64 = AtomicU64::new(u64::MAX);

/// The configured default lifetime, for the statuses RFC 9110 §15.1 calls heuristically
/// cacheable.
fn configured_ttl(status: StatusCode) -> Option<Duration> {
    let secs = DEFAULT_TTL_SECS.load(Ordering::Relaxed);
    let heuristic = matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    );
    (secs != u64::MAX && heuristic).then(|| Duration::from_secs(secs))
}
