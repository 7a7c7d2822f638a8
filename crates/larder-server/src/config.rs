//! The `larder` binary's configuration: a TOML file, overridden by command-line flags, and
//! its checks. [`CacheSettings::cache_config`] turns the `[cache]` table into the layer's
//! `CacheConfig`, wiring in the storage it names; `crate::sites` builds one layer per site
//! over it. `docs/deploy.md` has a full example of two HTTPS sites behind a TLS listener.
//!
//! Durations take a string with units, `ms`, `s`, `m`, `h`, `d` (`"250ms"`, `"5s"`,
//! `"1h30m"`); a bare number keeps the unit of the key's long name (`lock_timeout = 5000` is
//! `lock_timeout_ms = 5000`, milliseconds; `default_ttl = 60` is seconds), and is seconds in
//! keys without one (`shutdown_grace`, `connect_timeout`). Each `*_ms` / `*_secs` key can be
//! written under its short name (`lock_timeout`, `default_ttl`), not both. Sizes take bytes or
//! a unit (`"256MiB"`).
//!
//! ```toml
//! listen = "127.0.0.1:6188"     # one plain listener, when there is no [[listener]]
//! upstream = "http://127.0.0.1:8000"   # one site for every host, when there is no [[site]]
//! admin = "127.0.0.1:9090"
//! unknown_host = 421            # or 404: what a host no [[site]] names gets
//! shutdown_grace = "10s"        # connections and background fills finish within it
//!
//! [forwarding]                  # fields added to requests to origins (all off by default)
//! x_forwarded_for = false       # append the client's address
//! forwarded = false             # append for=…;proto=…;host=… (RFC 7239)
//! x_forwarded_proto = false     # https or http, as the client connected
//! trust_incoming = false        # keep the clients' own forwarding fields (behind a load
//!                               # balancer that sets them); off: with any field above on,
//!                               # they are removed first (Forwarded, X-Forwarded-For,
//!                               # -Proto, -Host, -Port)
//!
//! [[listener]]                  # any number; replaces `listen`
//! address = "0.0.0.0:443"
//! tls_cert = "/etc/larder/a.pem"   # PEM chain and key: the listener speaks TLS (h2, http/1.1)
//! tls_key = "/etc/larder/a.key"
//! certificates = [{ cert = "/etc/larder/b.pem", key = "/etc/larder/b.key" }]   # by SNI
//!
//! [[site]]                      # any number; replaces `upstream`
//! hosts = ["a.example", "*.a.example"]   # exact, *. (one or more labels) or *; any case
//! upstream = "https://origin.internal:8443"
//! ca_file = "/etc/larder/ca.pem"          # (https) a private CA
//! sni = "origin.internal"                 # (https) default: the upstream's host
//! insecure_skip_verify = false            # (https) logged loudly when true
//! http2 = true                            # (https) offer h2 in ALPN
//! connect_timeout = "10s"
//! response_timeout = "60s"                # to the response head; then 504
//! host = "a.example"                      # the Host sent; default: the one asked for
//! forwarding = { x_forwarded_for = true } # instead of [forwarding]
//! # And, overriding [cache]'s for this site: default_ttl, stale_while_revalidate,
//! # stale_if_error, purge_token, max_object_size, cache_status_name.
//!
//! [cache]
//! size = "256MiB"             # bytes held in memory (bounded: least useful entries are evicted);
//!                             # with memory+…, the size of the memory tier. Bytes, or a string
//!                             # with a unit: B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)
//! max_object_size = "8MiB"    # larger responses are passed through, not stored (0 = no limit);
//!                             # unset: 8MiB in memory, an eighth of disk_size on disk
//! eviction = "tinyufo"        # or "lru": the memory tier's policy
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
//! disk_eviction = "lru"       # (disk) or "tinyufo"
//! redis_prefix = "larder:"    # (redis) prefix of every key, to share a Redis with others
//! redis_timeout = "250ms"     # (redis) the longest one call may take; then it is a miss
//! local_ttl = "0s"            # (memory+redis, disk+redis) serve a local copy at most this
//!                             # long, then ask Redis again (0 = until evicted or stale)
//! # Each key above with a unit can be written with its long name too, where a bare number
//! # keeps its unit: redis_timeout_ms, local_ttl_secs, lock_age_ms, lock_timeout_ms,
//! # default_ttl_secs, stale_while_revalidate_secs, stale_if_error_secs.
//! lock_age = "5s"             # a fill older than this no longer blocks other requests
//! lock_timeout = "5s"         # the longest a request waits for another's fill
//! purge_token = "secret"      # PURGE needs `Authorization: Bearer secret`; unset = PURGE gets 405
//! cache_status_name = "larder"
//! # Off by default: no freshness is invented for responses without explicit freshness
//! # (RFC 9111 §4.2.2 heuristics from Last-Modified still apply).
//! # default_ttl = "1m"
//! stale_while_revalidate = "0s"
//! stale_if_error = "0s"
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
//!   written to both. Responses larger than `cache.size` (or `max_object_size`, 8 MiB unless
//!   set) are stored in neither. A PURGE (or an unsafe method's invalidation) removes the object from Redis and
//!   from this proxy's memory; the other proxies keep their local copy until it is evicted,
//!   goes stale, or is older than `local_ttl_secs`. While Redis is unreachable, lookups that
//!   miss memory are plain misses and writes fill memory only.
//! - `disk:PATH`: a [`DiskStorage`](larder_storage_disk::DiskStorage) on the directory
//!   `PATH` (created if missing), at most `disk_size` bytes, evicting with `disk_eviction`
//!   (LRU unless set); the cache survives restarts and crashes (the disk format:
//!   `docs/disk.md`). Responses up to `max_object_size` (unset: an eighth of `disk_size`) are
//!   stored; `cache.size` does not apply. On a
//!   graceful shutdown (SIGTERM, Ctrl-C) the eviction order is saved, so a restart keeps it.
//! - `memory+disk:PATH`: a memory tier of `cache.size` bytes in front of the disk: hot
//!   objects are served from memory, a disk hit is copied into memory, new responses are
//!   written to both. A response larger than memory's limit (`max_object_size`, 8 MiB unless
//!   set, capped by `cache.size`) goes to the disk alone, up to the disk's limit (as for
//!   `disk:PATH`), and readers of its fill stream it from the disk.
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
use crate::duration::{
    deserialize_duration, deserialize_ms, deserialize_secs, deserialize_secs_u32,
    deserialize_some_secs_u32,
};
pub use crate::duration::{parse_ms, parse_secs, parse_secs_duration, parse_secs_u32};
pub use crate::size::parse_size;
use crate::size::{deserialize_size, deserialize_some_size};
pub use site::{CertFiles, ForwardingSettings, ListenerSettings, SiteSettings, UnknownHost};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Where the proxy listens (plain HTTP) when there is no `[[listener]]` table.
    pub listen: SocketAddr,
    /// The origin (`http://host[:port]` or `https://host[:port]`) of the
    /// one site of a configuration without `[[site]]`: every host goes there.
    pub upstream: Option<String>,
    /// Where the admin endpoints (`/metrics`, `/healthz`) listen; none when unset.
    pub admin: Option<SocketAddr>,
    /// What a request for a host no `[[site]]` names gets: 421 (the default) or 404.
    pub unknown_host: UnknownHost,
    /// How long open connections and background fills get to finish on shutdown (default
    /// 10s). In the file, seconds or a string with a unit (`"30s"`).
    #[serde(deserialize_with = "deserialize_duration")]
    pub shutdown_grace: Duration,
    /// The forwarding fields added to requests sent to origins (sites may set their own).
    pub forwarding: ForwardingSettings,
    /// `[[listener]]` tables; when none, one plain listener on `listen`.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerSettings>,
    /// `[[site]]` tables; when none, one site for every host, to `upstream`.
    #[serde(rename = "site")]
    pub sites: Vec<SiteSettings>,
    /// Cache settings: the storage every site shares, and the defaults of the per-site ones.
    pub cache: CacheSettings,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6188)),
            upstream: None,
            admin: None,
            unknown_host: UnknownHost::default(),
            shutdown_grace: larder_proxy::server::SHUTDOWN_GRACE,
            forwarding: ForwardingSettings::default(),
            listeners: Vec::new(),
            sites: Vec::new(),
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
    /// Responses larger than this are not stored; 0 means no limit. Each tier's size caps it
    /// for that tier. Unset: 8 MiB for the memory tier and an eighth of `disk_size` for the
    /// disk (see [`CacheSettings::max_object_sizes`]).
    #[serde(default, deserialize_with = "deserialize_some_size")]
    pub max_object_size: Option<u64>,
    /// The eviction policy of the memory storage or tier.
    pub eviction: EvictionPolicy,
    /// The eviction policy of the disk. LRU by default: `TinyUFO`'s admission window is a tenth
    /// of the capacity, so it would evict at once any object larger than a tenth of the disk.
    pub disk_eviction: EvictionPolicy,
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
    #[serde(alias = "redis_timeout", deserialize_with = "deserialize_ms")]
    pub redis_timeout_ms: u64,
    /// With local tiers in front of Redis (`memory+redis`, `disk:…+redis`,
    /// `memory+disk:…+redis`): how long, in seconds, a proxy serves an object from a local
    /// tier after it entered it (written or copied from Redis) before looking it up in the
    /// next tier again. Bounds how long an object purged through another proxy is still served
    /// here. 0 (the default) keeps local copies until they are evicted or go stale. Ages are
    /// kept in memory: after a restart, disk copies are checked against Redis again.
    #[serde(alias = "local_ttl", deserialize_with = "deserialize_secs")]
    pub local_ttl_secs: u64,
    /// How long a cache fill may hold the lock before other requests stop waiting for it.
    #[serde(alias = "lock_age", deserialize_with = "deserialize_ms")]
    pub lock_age_ms: u64,
    /// The longest a request waits on another request's fill.
    #[serde(alias = "lock_timeout", deserialize_with = "deserialize_ms")]
    pub lock_timeout_ms: u64,
    /// The bearer token PURGE needs; PURGE is refused with 405 when unset.
    pub purge_token: Option<String>,
    /// The cache name in `Cache-Status` (RFC 9211).
    pub cache_status_name: String,
    /// A freshness lifetime for responses without explicit freshness or `Last-Modified`. Unset
    /// (the default) invents none, as RFC 9111 §4.2.2 expects.
    #[serde(
        alias = "default_ttl",
        default,
        deserialize_with = "deserialize_some_secs_u32"
    )]
    pub default_ttl_secs: Option<u32>,
    /// The stale-while-revalidate window when the origin gives none.
    #[serde(
        alias = "stale_while_revalidate",
        deserialize_with = "deserialize_secs_u32"
    )]
    pub stale_while_revalidate_secs: u32,
    /// The stale-if-error window when the origin gives none.
    #[serde(alias = "stale_if_error", deserialize_with = "deserialize_secs_u32")]
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
            max_object_size: None,
            eviction: EvictionPolicy::default(),
            disk_eviction: EvictionPolicy::Lru,
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
        match (&self.upstream, self.sites.is_empty()) {
            (None, true) => {
                return Err(Error::ConfigInvalid(
                    "no upstream: set `upstream` in the file, pass --upstream, or add [[site]] \
                     tables"
                        .to_owned(),
                ));
            }
            (Some(upstream), true) => {
                larder_proxy::Upstream::new(upstream)?;
            }
            (Some(_), false) => {
                return Err(Error::ConfigInvalid(
                    "`upstream` (or --upstream) and [[site]] tables cannot both be set: give the \
                     catch-all site its own table with hosts = [\"*\"]"
                        .to_owned(),
                ));
            }
            (None, false) => {}
        }
        let mut seen = std::collections::HashSet::new();
        for site in &self.sites {
            site.validate()?;
            for host in &site.hosts {
                if !seen.insert(host.to_ascii_lowercase()) {
                    return Err(Error::ConfigInvalid(format!(
                        "host {host:?} is named by two sites"
                    )));
                }
            }
        }
        let mut addresses = std::collections::HashSet::new();
        for listener in &self.listeners {
            listener.validate()?;
            if !addresses.insert(listener.address) {
                return Err(Error::ConfigInvalid(format!(
                    "two listeners on {}",
                    listener.address
                )));
            }
        }
        let c = &self.cache;
        if c.size == 0 {
            return Err(Error::ConfigInvalid(
                "cache.size must be above 0".to_owned(),
            ));
        }
        if !site::is_token(&c.cache_status_name) {
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

impl ProxyConfig {
    /// The listeners: the `[[listener]]` tables, or one plain listener on `listen`.
    pub fn listener_list(&self) -> Vec<ListenerSettings> {
        if self.listeners.is_empty() {
            vec![ListenerSettings::plain(self.listen)]
        } else {
            self.listeners.clone()
        }
    }

    /// The sites: the `[[site]]` tables, or one site for every host, to `upstream`.
    pub fn site_list(&self) -> Vec<SiteSettings> {
        match (&self.upstream, self.sites.is_empty()) {
            (Some(upstream), true) => vec![SiteSettings::catch_all(upstream)],
            _ => self.sites.clone(),
        }
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

mod site;
#[cfg(test)]
mod tests;
