//! Configuration vocabulary of the library: the eviction policy of
//! [`CacheConfig::in_memory`](crate::CacheConfig::in_memory) and freshness defaults for
//! responses without explicit freshness.
//!
//! The `larder` binary's TOML file and flags, and the storage backends they name (memory,
//! Redis, memory in front of Redis), are the `larder-server` crate's.

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
/// The lifetime is held by the returned value
/// ([`CacheMetaDefaults::with_default_ttl`]), so layers with different policies can share a
/// process.
///
/// ```
/// use http::StatusCode;
///
/// let defaults = larder_proxy::config::meta_defaults(Some(60), 0, 0);
/// let other = larder_proxy::config::meta_defaults(Some(5), 0, 0);
/// assert_eq!(defaults.fresh_sec(StatusCode::NOT_FOUND), Some(std::time::Duration::from_secs(60)));
/// assert_eq!(other.fresh_sec(StatusCode::OK), Some(std::time::Duration::from_secs(5)));
/// assert_eq!(defaults.fresh_sec(StatusCode::INTERNAL_SERVER_ERROR), None);
/// ```
pub fn meta_defaults(
    default_ttl_secs: Option<u32>,
    stale_while_revalidate_secs: u32,
    stale_if_error_secs: u32,
) -> CacheMetaDefaults {
    CacheMetaDefaults::new(no_ttl, stale_while_revalidate_secs, stale_if_error_secs)
        .with_default_ttl(default_ttl_secs.map(|s| Duration::from_secs(u64::from(s))))
}

/// No lifetime from the function: [`CacheMetaDefaults::with_default_ttl`] holds it.
const fn no_ttl(_: StatusCode) -> Option<Duration> {
    None
}
