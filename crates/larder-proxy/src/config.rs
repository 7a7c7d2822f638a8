//! The `larder` binary's configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! listen = "127.0.0.1:6188"
//! upstream = "http://127.0.0.1:8000"
//! admin = "127.0.0.1:9090"
//!
//! [cache]
//! size = 268435456            # bytes held in memory (bounded: least useful entries are evicted)
//! max_object_size = 8388608   # larger responses are passed through, not stored (0 = no limit)
//! eviction = "tinyufo"        # or "lru"
//! storage = "memory"         # or "redis://127.0.0.1:6379" to share one cache in a fleet
//! redis_prefix = "larder:"    # (redis) prefix of every key, to share a Redis with others
//! redis_timeout_ms = 250      # (redis) the longest one call may take; then it is a miss
//! lock_age_ms = 5000          # a fill older than this no longer blocks other requests
//! lock_timeout_ms = 5000      # the longest a request waits for another's fill
//! purge_token = "secret"      # PURGE needs `Authorization: Bearer secret`; unset = PURGE gets 405
//! cache_status_name = "larder"
//! # Off by default: no freshness is invented for responses without explicit freshness
//! # (RFC 9111 §4.2.2 heuristics from Last-Modified still apply).
//! # default_ttl_secs = 60
//! stale_while_revalidate_secs = 0
//! stale_if_error_secs = 0
//! ```

use std::net::SocketAddr;
use std::path::Path;
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

/// Where responses are stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(try_from = "String")]
#[non_exhaustive]
pub enum StorageBackend {
    /// In process memory, bounded by `cache.size`.
    #[default]
    Memory,
    /// A Redis (or Valkey) server at this `redis://host:port[/db]` URL, shared by every proxy
    /// pointing at it. Redis bounds its own memory (`maxmemory`); `cache.size` does not apply.
    Redis(String),
}

impl std::str::FromStr for StorageBackend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "memory" => Ok(Self::Memory),
            url if url.starts_with("redis://") => Ok(Self::Redis(url.to_owned())),
            _ => Err(Error::ConfigInvalid(format!(
                "unknown storage backend {s:?} (expected memory or redis://host:port)"
            ))),
        }
    }
}

impl TryFrom<String> for StorageBackend {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// The origin, `http://host[:port]`. Required.
    pub upstream: Option<String>,
    /// Where the admin endpoints (`/metrics`, `/healthz`) listen; none when unset.
    pub admin: Option<SocketAddr>,
    /// Cache settings.
    pub cache: CacheSettings,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6188)),
            upstream: None,
            admin: None,
            cache: CacheSettings::default(),
        }
    }
}

/// The `[cache]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CacheSettings {
    /// Bytes the storage may hold.
    pub size: u64,
    /// Responses larger than this are not stored; 0 means no limit. The cache size caps it.
    pub max_object_size: u64,
    /// The eviction policy.
    pub eviction: EvictionPolicy,
    /// The storage backend.
    pub storage: StorageBackend,
    /// With Redis storage: the prefix of every key.
    pub redis_prefix: String,
    /// With Redis storage: the longest one Redis call may take, in milliseconds. A lookup
    /// that takes longer is a miss served from upstream; a write that takes longer is dropped.
    pub redis_timeout_ms: u64,
    /// How long a cache fill may hold the lock before other requests stop waiting for it.
    pub lock_age_ms: u64,
    /// The longest a request waits on another request's fill.
    pub lock_timeout_ms: u64,
    /// The bearer token PURGE needs; PURGE is refused with 405 when unset.
    pub purge_token: Option<String>,
    /// The cache name in `Cache-Status` (RFC 9211).
    pub cache_status_name: String,
    /// A freshness lifetime for responses without explicit freshness or `Last-Modified`. Unset
    /// (the default) invents none, as RFC 9111 §4.2.2 expects.
    pub default_ttl_secs: Option<u32>,
    /// The stale-while-revalidate window when the origin gives none.
    pub stale_while_revalidate_secs: u32,
    /// The stale-if-error window when the origin gives none.
    pub stale_if_error_secs: u32,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            size: 256 * 1024 * 1024,
            max_object_size: 8 * 1024 * 1024,
            eviction: EvictionPolicy::default(),
            storage: StorageBackend::default(),
            redis_prefix: "larder:".to_owned(),
            redis_timeout_ms: 250,
            lock_age_ms: 5_000,
            lock_timeout_ms: 5_000,
            purge_token: None,
            cache_status_name: "larder".to_owned(),
            default_ttl_secs: None,
            stale_while_revalidate_secs: 0,
            stale_if_error_secs: 0,
        }
    }
}

impl ProxyConfig {
    /// Reads a TOML file.
    ///
    /// # Errors
    ///
    /// [`Error::ConfigRead`] when the file cannot be read, [`Error::ConfigParse`] (naming the
    /// line and column) when it is not valid.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| Error::ConfigParse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses TOML text.
    ///
    /// # Errors
    ///
    /// The TOML error, with line and column.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks the values that TOML types cannot.
    ///
    /// # Errors
    ///
    /// [`Error::ConfigInvalid`] naming the field, or [`Error::UpstreamUri`].
    pub fn validate(&self) -> Result<(), Error> {
        let Some(upstream) = &self.upstream else {
            return Err(Error::ConfigInvalid(
                "no upstream: set `upstream` in the file or pass --upstream".to_owned(),
            ));
        };
        crate::upstream::Upstream::new(upstream)?;
        let c = &self.cache;
        if c.size == 0 {
            return Err(Error::ConfigInvalid(
                "cache.size must be above 0".to_owned(),
            ));
        }
        if c.cache_status_name.is_empty()
            || !c
                .cache_status_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(Error::ConfigInvalid(format!(
                "cache.cache_status_name {:?} must be a token (letters, digits, - _ .)",
                c.cache_status_name
            )));
        }
        if matches!(c.storage, StorageBackend::Redis(_)) && c.redis_timeout_ms == 0 {
            return Err(Error::ConfigInvalid(
                "cache.redis_timeout_ms must be above 0".to_owned(),
            ));
        }
        if c.purge_token.as_deref() == Some("") {
            return Err(Error::ConfigInvalid(
                "cache.purge_token must not be empty".to_owned(),
            ));
        }
        Ok(())
    }
}

impl CacheSettings {
    /// The lock age timeout.
    pub fn lock_age(&self) -> Duration {
        Duration::from_millis(self.lock_age_ms)
    }

    /// The lock wait timeout.
    pub fn lock_timeout(&self) -> Duration {
        Duration::from_millis(self.lock_timeout_ms)
    }
    /// The freshness policy these settings describe.
    ///
    /// `CacheMetaDefaults` takes a plain function for the per-status lifetime, so a configured
    /// `default_ttl_secs` is kept in a process-wide value read by that function: one process runs
    /// one configuration, and the last call wins.
    pub fn meta_defaults(&self) -> CacheMetaDefaults {
        let ttl = self.default_ttl_secs.map_or(u64::MAX, u64::from);
        DEFAULT_TTL_SECS.store(ttl, Ordering::Relaxed);
        CacheMetaDefaults::new(
            configured_ttl,
            self.stale_while_revalidate_secs,
            self.stale_if_error_secs,
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let c = ProxyConfig::from_toml(
            "listen = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2\"\n[cache]\nsize = 1000\n\
             max_object_size = 10\neviction = \"lru\"\npurge_token = \"t\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.cache.eviction, EvictionPolicy::Lru);
        assert_eq!(c.cache.size, 1000);
        c.validate().unwrap();
    }

    #[test]
    fn errors_name_the_line() {
        let e = ProxyConfig::from_toml("listen = \"127.0.0.1:1\"\n[cache]\nsize = \"big\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = ProxyConfig::from_toml("bogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = ProxyConfig::default();
        assert!(c.validate().unwrap_err().to_string().contains("upstream"));
        c.upstream = Some("ftp://x".into());
        assert!(matches!(c.validate(), Err(Error::UpstreamUri(_))));
        c.upstream = Some("http://127.0.0.1:9".into());
        c.cache.size = 0;
        assert!(c.validate().unwrap_err().to_string().contains("cache.size"));
        c.cache.size = 1;
        c.cache.cache_status_name = "a b".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("cache_status_name")
        );
    }

    #[test]
    fn storage_is_memory_or_a_redis_url() {
        let c = ProxyConfig::from_toml(
            "upstream = \"http://127.0.0.1:2\"\n[cache]\nstorage = \"redis://10.0.0.5:6379/2\"\n\
             redis_prefix = \"edge:\"\nredis_timeout_ms = 100\n",
        )
        .unwrap();
        assert_eq!(
            c.cache.storage,
            StorageBackend::Redis("redis://10.0.0.5:6379/2".into())
        );
        assert_eq!(
            (c.cache.redis_prefix.as_str(), c.cache.redis_timeout_ms),
            ("edge:", 100)
        );
        c.validate().unwrap();
        assert_eq!(
            "memory".parse::<StorageBackend>().unwrap(),
            StorageBackend::Memory
        );
        let e = ProxyConfig::from_toml("[cache]\nstorage = \"disk\"\n").unwrap_err();
        assert!(e.to_string().contains("redis://"), "{e}");
        let mut c = c;
        c.cache.redis_timeout_ms = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("redis_timeout_ms")
        );
    }
}
