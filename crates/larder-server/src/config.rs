//! The `larder` binary's configuration: a TOML file, overridden by command-line flags, and
//! its checks. [`CacheSettings::cache_config`] turns the `[cache]` table into the layer's
//! `CacheConfig`, wiring in the storage it names.
//!
//! ```toml
//! listen = "127.0.0.1:6188"
//! upstream = "http://127.0.0.1:8000"
//! admin = "127.0.0.1:9090"
//!
//! [cache]
//! size = "256MiB"             # bytes held in memory (bounded: least useful entries are evicted);
//!                             # with memory+…, the size of the memory tier. Bytes, or a string
//!                             # with a unit: B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)
//! max_object_size = 8388608   # larger responses are passed through, not stored (0 = no limit)
//! eviction = "tinyufo"        # or "lru" (the memory tier's and the disk's)
//! storage = "memory"          # where responses are stored, one of:
//!                             #   "memory"                        this process only
//!                             #   "redis://127.0.0.1:6379"        one Redis shared by a fleet
//!                             #   "memory+redis://127.0.0.1:6379" local memory in front of it
//!                             #   "disk:/var/cache/larder"        a directory kept across restarts
//!                             #   "memory+disk:/var/cache/larder" memory in front of the disk
//!                             #   "memory+disk:/var/cache/larder+redis://127.0.0.1:6379"
//!                             #                                   memory, disk, then shared Redis
//! disk_size = "20GiB"         # (disk) the most the directory holds (default 1GiB)
//! disk_sync = "never"         # (disk) or "always": fsync every entry before it is visible
//! redis_prefix = "larder:"    # (redis) prefix of every key, to share a Redis with others
//! redis_timeout_ms = 250      # (redis) the longest one call may take; then it is a miss
//! local_ttl_secs = 0          # (memory+redis, disk+redis) serve a local copy at most this
//!                             # long, then ask Redis again (0 = until evicted or stale)
//! lock_age_ms = 5000          # a fill older than this no longer blocks other requests
//! lock_timeout_ms = 5000      # the longest a request waits for another's fill
//! purge_token = "secret"      # PURGE needs `Authorization: Bearer secret`; unset = PURGE gets 405
//! cache_status_name = "larder"
//! # Off by default: no freshness is invented for responses without explicit freshness
//! # (RFC 9111 §4.2.2 heuristics from Last-Modified still apply).
//! # default_ttl_secs = 60
//! stale_while_revalidate_secs = 0
//! stale_if_error_secs = 0
//! set_cookie = "opt-in"       # which responses with Set-Cookie are stored (never with the
//!                             # cookie), one of:
//!                             #   "opt-in"  those the origin marks public, s-maxage or
//!                             #             CDN-Cache-Control (the default)
//!                             #   "never"   none
//!                             #   "strip"   any RFC 9111 allows
//! ```
//!
//! # Storage
//!
//! Tiers are joined by `+`, fastest first: `memory` first when present, then `disk:PATH`,
//! then a Redis URL last ([`StorageBackend`] has the grammar).
//!
//! - `memory`: a `MemCache` of `cache.size` bytes with the `cache.eviction` policy.
//! - `redis://host:port[/db]`: every proxy pointing at the same Redis (and `redis_prefix`)
//!   shares one cache; Redis bounds its own memory (`maxmemory`) and `cache.size` does not
//!   apply. See [`RedisStorage`](larder_storage_redis::RedisStorage).
//! - `memory+redis://host:port[/db]`: a [`TieredStorage`](larder_storage::tiered::TieredStorage), each proxy's own memory tier of
//!   `cache.size` bytes (evicting with `cache.eviction`) in front of the shared Redis.
//!   Lookups try memory, then Redis; a Redis hit is copied into memory; new responses are
//!   written to both. Responses larger than `cache.size` (or `max_object_size`) are stored in
//!   neither. A PURGE (or an unsafe method's invalidation) removes the object from Redis and
//!   from this proxy's memory; the other proxies keep their local copy until it is evicted,
//!   goes stale, or is older than `local_ttl_secs`. While Redis is unreachable, lookups that
//!   miss memory are plain misses and writes fill memory only.
//! - `disk:PATH`: a [`DiskStorage`](larder_storage_disk::DiskStorage) on the directory
//!   `PATH` (created if missing), at most `disk_size` bytes, evicting with `cache.eviction`;
//!   the cache survives restarts and crashes (the disk format: `docs/disk.md`). Responses up
//!   to `disk_size` (or `max_object_size`) are stored; `cache.size` does not apply. On a
//!   graceful shutdown (SIGTERM, Ctrl-C) the eviction order is saved, so a restart keeps it.
//! - `memory+disk:PATH`: a memory tier of `cache.size` bytes in front of the disk: hot
//!   objects are served from memory, a disk hit is copied into memory, new responses are
//!   written to both. As with `memory+redis`, the memory tier holds each response while it
//!   is written, so responses larger than `cache.size` are stored in neither.
//! - `disk:PATH+redis://…`, `memory+disk:PATH+redis://…`: the same local tiers in front of a
//!   Redis shared by a fleet; a Redis hit is copied into the disk and memory. A PURGE removes
//!   the object from every tier of this proxy and from Redis.

//! # Set-Cookie
//!
//! A shared cache that stored `Set-Cookie` would hand one user's session to the next user of
//! the entry. larder never stores the field: the client whose request filled the cache gets
//! the origin's cookie; hits, revalidated hits and stale answers come from the stored copy,
//! without it. `set_cookie` (flag `--set-cookie`) decides which responses carrying a cookie
//! are stored at all; a refused one says `detail=SetCookie` in `Cache-Status` and is counted
//! under `larder_cache_not_stored_total{reason="SetCookie"}`:
//!
//! - `opt-in` (the default): only when the origin addresses shared caches: `public` or
//!   `s-maxage` in `Cache-Control`, a `CDN-Cache-Control` field (RFC 9213) that makes the
//!   response storable, or `private` / `no-cache` naming `Set-Cookie`. What nginx and Varnish
//!   do by default, without the opt-in.
//! - `never`: never, whatever the origin says (when any page that sets a cookie may be
//!   personalised).
//! - `strip`: whenever RFC 9111 allows, as if the response had no cookie (for an origin that
//!   adds the same tracking or affinity cookie to pages that are the same for everyone).
//!
//! No setting stores or replays the cookie itself. See `larder_cache::set_cookie`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use larder_cache::{CacheMetaDefaults, SetCookiePolicy};
use larder_proxy::config::EvictionPolicy;
use serde::Deserialize;

use crate::Error;
pub use crate::backend::{DiskSync, StorageBackend};
use crate::size::deserialize_size;
pub use crate::size::parse_size;

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
    /// Bytes the memory storage (or memory tier) may hold. In the file, bytes or a string with
    /// a unit (`"256MiB"`).
    #[serde(deserialize_with = "deserialize_size")]
    pub size: u64,
    /// Responses larger than this are not stored; 0 means no limit. The cache size caps it
    /// (with disk storage alone, the disk size).
    #[serde(deserialize_with = "deserialize_size")]
    pub max_object_size: u64,
    /// The eviction policy.
    pub eviction: EvictionPolicy,
    /// The storage backend.
    pub storage: StorageBackend,
    /// With disk storage: the most bytes the cache directory may hold (entries' meta and
    /// bodies). In the file, bytes or a string with a unit (`"20GiB"`).
    #[serde(deserialize_with = "deserialize_size")]
    pub disk_size: u64,
    /// With disk storage: when written entries are flushed to the device.
    pub disk_sync: DiskSync,
    /// With Redis storage: the prefix of every key.
    pub redis_prefix: String,
    /// With Redis storage: the longest one Redis call may take, in milliseconds. A lookup
    /// that takes longer is a miss served from upstream; a write that takes longer is dropped.
    pub redis_timeout_ms: u64,
    /// With local tiers in front of Redis (`memory+redis`, `disk:…+redis`,
    /// `memory+disk:…+redis`): how long, in seconds, a proxy serves an object from a local
    /// tier after it entered it (written or copied from Redis) before looking it up in the
    /// next tier again. Bounds how long an object purged through another proxy is still served
    /// here. 0 (the default) keeps local copies until they are evicted or go stale. Ages are
    /// kept in memory: after a restart, disk copies are checked against Redis again.
    pub local_ttl_secs: u64,
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
    /// Which responses that set a cookie are stored (always without the cookie): `opt-in`
    /// (the default), `never` or `strip`; see the module docs.
    #[serde(deserialize_with = "from_str")]
    pub set_cookie: SetCookiePolicy,
}

/// Reads a value through its `FromStr`, so that TOML and flags accept the same words.
fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            size: 256 * 1024 * 1024,
            max_object_size: 8 * 1024 * 1024,
            eviction: EvictionPolicy::default(),
            storage: StorageBackend::default(),
            disk_size: 1 << 30,
            disk_sync: DiskSync::default(),
            redis_prefix: "larder:".to_owned(),
            redis_timeout_ms: 250,
            local_ttl_secs: 0,
            lock_age_ms: 5_000,
            lock_timeout_ms: 5_000,
            purge_token: None,
            cache_status_name: "larder".to_owned(),
            default_ttl_secs: None,
            stale_while_revalidate_secs: 0,
            stale_if_error_secs: 0,
            set_cookie: SetCookiePolicy::default(),
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
    /// [`Error::ConfigInvalid`] naming the field, or [`Error::Proxy`] with
    /// [`larder_proxy::Error::UpstreamUri`].
    pub fn validate(&self) -> Result<(), Error> {
        let Some(upstream) = &self.upstream else {
            return Err(Error::ConfigInvalid(
                "no upstream: set `upstream` in the file or pass --upstream".to_owned(),
            ));
        };
        larder_proxy::Upstream::new(upstream)?;
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
        if c.storage.redis_url().is_some() && c.redis_timeout_ms == 0 {
            return Err(Error::ConfigInvalid(
                "cache.redis_timeout_ms must be above 0".to_owned(),
            ));
        }
        if c.local_ttl_secs != 0 && !c.storage.has_local_tier_before_redis() {
            return Err(Error::ConfigInvalid(format!(
                "cache.local_ttl_secs applies only to local tiers in front of Redis \
                 (storage = \"memory+redis://...\" or \"[memory+]disk:PATH+redis://...\"; \
                 storage is {:?})",
                c.storage.to_string()
            )));
        }
        if c.storage.disk_path().is_some() && c.disk_size == 0 {
            return Err(Error::ConfigInvalid(
                "cache.disk_size must be above 0".to_owned(),
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
    /// See [`larder_proxy::config::meta_defaults`]: one process runs one configuration, and
    /// the last call wins.
    pub fn meta_defaults(&self) -> CacheMetaDefaults {
        larder_proxy::config::meta_defaults(
            self.default_ttl_secs,
            self.stale_while_revalidate_secs,
            self.stale_if_error_secs,
        )
    }
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
        assert!(matches!(
            c.validate(),
            Err(Error::Proxy(larder_proxy::Error::UpstreamUri(_)))
        ));
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
        assert!(e.to_string().contains("disk:PATH"), "{e}");
        let mut c = c;
        c.cache.redis_timeout_ms = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("redis_timeout_ms")
        );
    }

    /// Parses `[cache] storage = <value>` (after an unrelated first line, so errors name line 3).
    fn storage(value: &str) -> Result<StorageBackend, String> {
        ProxyConfig::from_toml(&format!(
            "listen = \"127.0.0.1:1\"\n[cache]\nstorage = {value:?}\n"
        ))
        .map(|c| c.cache.storage)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn storage_values_parse_or_name_the_line() {
        let good = [
            ("memory", StorageBackend::Memory),
            (
                "redis://10.0.0.5:6379",
                StorageBackend::Redis("redis://10.0.0.5:6379".into()),
            ),
            (
                "memory+redis://10.0.0.5:6379/1",
                StorageBackend::Tiered("redis://10.0.0.5:6379/1".into()),
            ),
            (
                "memory+redis://:pw@cache.internal",
                StorageBackend::Tiered("redis://:pw@cache.internal".into()),
            ),
            (
                "memory+disk:/var/cache/larder+redis://10.0.0.5:6379",
                StorageBackend::Disk {
                    memory: true,
                    path: "/var/cache/larder".into(),
                    redis: Some("redis://10.0.0.5:6379".into()),
                },
            ),
        ];
        for (value, want) in good {
            let got = storage(value).unwrap();
            assert_eq!(got, want, "{value}");
            assert_eq!(got.to_string(), value, "displays as written");
            assert_eq!(value.parse::<StorageBackend>().unwrap(), want, "as a flag");
        }
        let bad = [
            ("disk", "memory+redis://"),
            ("disk:", "needs a directory"),
            ("redis://h:1+disk:/c", "redis must be the last tier"),
            ("Memory", "expected memory"),
            ("", "unknown storage backend"),
            ("memory+", "only redis:// or disk:PATH can follow memory+"),
            (
                "memory+disk",
                "only redis:// or disk:PATH can follow memory+",
            ),
            (
                "memory+memory",
                "only redis:// or disk:PATH can follow memory+",
            ),
            ("redis+memory://h:1", "unknown storage backend"),
            ("memory+rediss://h:6379", "use redis://"),
            ("redis://", "redis url"),
            ("memory+redis://", "redis url"),
            ("redis://h:port", "redis url"),
            ("memory+redis://h:99999", "redis url"),
        ];
        for (value, says) in bad {
            let e = storage(value).unwrap_err();
            assert!(e.contains("line 3") && e.contains(says), "{value}: {e}");
            let flag = value.parse::<StorageBackend>().unwrap_err().to_string();
            assert!(flag.contains(says), "{value}: {flag}");
        }
    }

    #[test]
    fn set_cookie_policy_is_a_word_or_names_the_line() {
        let parse = |text: &str| ProxyConfig::from_toml(text).map(|c| c.cache.set_cookie);
        assert_eq!(parse("").unwrap(), SetCookiePolicy::OptIn, "the default");
        for policy in SetCookiePolicy::ALL {
            let text = format!("listen = \"127.0.0.1:1\"\n[cache]\nset_cookie = \"{policy}\"\n");
            assert_eq!(parse(&text).unwrap(), policy);
        }
        for bad in ["\"replay\"", "\"Never\"", "true"] {
            let e = parse(&format!(
                "listen = \"127.0.0.1:1\"\n[cache]\nset_cookie = {bad}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains("line 3"), "{bad}: {e}");
        }
        let e = parse("[cache]\nset_cookie = \"replay\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("never, opt-in or strip"), "{e}");
        let settings = CacheSettings {
            set_cookie: SetCookiePolicy::Never,
            ..CacheSettings::default()
        };
        assert_eq!(
            settings.cache_config().unwrap().set_cookie,
            SetCookiePolicy::Never
        );
    }

    #[test]
    fn local_ttl_needs_tiered_storage() {
        let text = "upstream = \"http://127.0.0.1:2\"\n[cache]\nstorage = \"memory+redis://127.0.0.1:1\"\n\
                    local_ttl_secs = 30\n";
        let mut c = ProxyConfig::from_toml(text).unwrap();
        assert_eq!(c.cache.local_ttl_secs, 30);
        c.validate().unwrap();
        for local_then_redis in ["disk:/c+redis://h:1", "memory+disk:/c+redis://h:1"] {
            c.cache.storage = local_then_redis.parse().unwrap();
            c.validate().unwrap();
        }
        for other in [
            StorageBackend::Memory,
            StorageBackend::Redis("redis://127.0.0.1:1".into()),
            "memory+disk:/c".parse().unwrap(),
        ] {
            c.cache.storage = other;
            let e = c.validate().unwrap_err().to_string();
            assert!(
                e.contains("cache.local_ttl_secs") && e.contains("memory+redis"),
                "{e}"
            );
        }
        c.cache.storage = StorageBackend::Tiered("redis://127.0.0.1:1".into());
        c.cache.local_ttl_secs = 0;
        c.cache.redis_timeout_ms = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("redis_timeout_ms")
        );
        let e = ProxyConfig::from_toml("[cache]\nlocal_ttl_secs = -1\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn disk_settings_read_sizes_with_units_and_sync_words() {
        let c = ProxyConfig::from_toml(
            "upstream = \"http://127.0.0.1:2\"\n[cache]\nstorage = \"memory+disk:/var/cache/larder\"\n\
             size = \"64MiB\"\ndisk_size = \"20GiB\"\ndisk_sync = \"always\"\n\
             max_object_size = \"1GB\"\neviction = \"lru\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.cache.size, 64 << 20);
        assert_eq!(c.cache.disk_size, 20 << 30);
        assert_eq!(c.cache.max_object_size, 1_000_000_000);
        assert_eq!(c.cache.disk_sync, DiskSync::Always);
        assert_eq!(
            c.cache.storage.disk_path(),
            Some(Path::new("/var/cache/larder"))
        );
        let defaults = CacheSettings::default();
        assert_eq!(
            (defaults.disk_size, defaults.disk_sync),
            (1 << 30, DiskSync::Never)
        );
        assert_eq!(
            ProxyConfig::from_toml("[cache]\ndisk_size = 4096\n")
                .unwrap()
                .cache
                .disk_size,
            4096
        );

        let error = |text: &str| ProxyConfig::from_toml(text).unwrap_err().to_string();
        let e = error("listen = \"127.0.0.1:1\"\n[cache]\ndisk_size = \"20 parsecs\"\n");
        assert!(e.contains("line 3") && e.contains("unknown unit"), "{e}");
        let e = error("[cache]\ndisk_sync = \"sometimes\"\n");
        assert!(e.contains("never or always"), "{e}");
        let e = error("[cache]\nsize = -5\n");
        assert!(e.contains("line 2"), "{e}");

        let mut c = c;
        c.cache.disk_size = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("cache.disk_size"), "{e}");
        c.cache.storage = StorageBackend::Memory;
        c.validate().unwrap();
    }
}
