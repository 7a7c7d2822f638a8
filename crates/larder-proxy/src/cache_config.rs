//! `CacheConfig`: the settings of a [`CacheLayer`](crate::CacheLayer), shared by the layer,
//! the hooks and the flow.

use std::time::Duration;

use http::HeaderName;
use larder_cache::eviction::{EvictionManager, lru, tinyufo};
use larder_cache::lock::{CacheKeyLockImpl, CacheLock};
use larder_cache::predictor::{CacheablePredictor, Predictor};
use larder_cache::range::DEFAULT_MAX_RANGES;
use larder_cache::{CacheMetaDefaults, MemCache, SetCookiePolicy, Storage};

use crate::config::EvictionPolicy;

/// Settings of a [`CacheLayer`](crate::CacheLayer).
///
/// The storage, eviction manager, predictor and lock are `'static` because every request
/// shares them (as in pingora-cache); [`CacheConfig::in_memory`] makes a bounded in-memory set
/// by leaking them once.
#[derive(Clone)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Where responses are stored; `None` turns caching off (the layer only proxies).
    pub storage: Option<&'static (dyn Storage + Sync)>,
    /// Keeps the storage within its size: entries are admitted on write and victims purged.
    pub eviction: Option<&'static (dyn EvictionManager + Sync)>,
    /// Remembers uncacheable keys so later requests skip the cache lock.
    pub predictor: Option<&'static (dyn CacheablePredictor + Sync)>,
    /// One upstream fetch per key at a time; other requests wait or stream the partial write.
    pub cache_lock: Option<&'static CacheKeyLockImpl>,
    /// The longest a request waits on another request's fill before going upstream itself.
    pub lock_wait_timeout: Option<Duration>,
    /// Responses with larger bodies are not stored.
    pub max_file_size: Option<usize>,
    /// Freshness for responses without explicit freshness, and default stale windows.
    pub defaults: CacheMetaDefaults,
    /// Targeted cache-control fields that take precedence over `Cache-Control` (RFC 9213);
    /// `CDN-Cache-Control` by default.
    pub targeted_cache_control: Vec<HeaderName>,
    /// What to do with a response that sets a cookie (`Set-Cookie`, `Set-Cookie2`), read by
    /// [`CacheHooks::set_cookie_policy`](crate::CacheHooks::set_cookie_policy)'s default: by default
    /// [`SetCookiePolicy::OptIn`] (stored only when the origin says `public`, `s-maxage` or
    /// sends a targeted field; the stored copy never carries the cookie).
    pub set_cookie: SetCookiePolicy,
    /// Serve a stale response when the upstream cannot be reached or drops the connection
    /// before answering, unless the response forbids it (`must-revalidate`, `proxy-revalidate`,
    /// `s-maxage`, `no-cache`) or the request asks for validation. RFC 9111 §4.2.4 allows a
    /// disconnected cache to do so; on by default.
    pub serve_stale_on_disconnect: bool,
    /// The most ranges honoured in one `Range` request (more are answered with the whole body).
    pub max_ranges: usize,
    /// The cache name in `Cache-Status` (RFC 9211 §2); `larder` by default.
    pub cache_status_name: String,
    /// The pseudonym in `Via` (RFC 9110 §7.6.3); `larder` by default.
    pub via_pseudonym: String,
    /// The bearer token PURGE needs; PURGE is refused with 405 when `None`.
    pub purge_token: Option<String>,
}

impl Default for CacheConfig {
    /// No storage (caching off), never inventing freshness, `Cache-Status` name `larder`.
    fn default() -> Self {
        Self {
            storage: None,
            eviction: None,
            predictor: None,
            cache_lock: None,
            lock_wait_timeout: None,
            max_file_size: None,
            defaults: CacheMetaDefaults::STRICT,
            targeted_cache_control: vec![HeaderName::from_static("cdn-cache-control")],
            set_cookie: SetCookiePolicy::OptIn,
            serve_stale_on_disconnect: true,
            max_ranges: DEFAULT_MAX_RANGES,
            cache_status_name: "larder".to_owned(),
            via_pseudonym: "larder".to_owned(),
            purge_token: None,
        }
    }
}

impl std::fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheConfig")
            .field("storage", &self.storage.is_some())
            .field("eviction", &self.eviction.is_some())
            .field("predictor", &self.predictor.is_some())
            .field("cache_lock", &self.cache_lock.is_some())
            .field("lock_wait_timeout", &self.lock_wait_timeout)
            .field("max_file_size", &self.max_file_size)
            .field("defaults", &self.defaults)
            .field("set_cookie", &self.set_cookie)
            .field("cache_status_name", &self.cache_status_name)
            .field("purge_token", &self.purge_token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// How long a fill may hold the cache lock before waiting requests stop waiting for it.
const DEFAULT_LOCK_AGE: Duration = Duration::from_secs(5);

impl CacheConfig {
    /// A bounded in-memory cache of `size` bytes: a [`MemCache`], an eviction manager of
    /// `policy` sized to `size` (victims are purged from the storage), a cache lock with a 5 s
    /// age timeout and wait timeout, and a predictor.
    ///
    /// The parts are leaked so they are `'static`; make one per process (or per test).
    pub fn in_memory(size: usize, policy: EvictionPolicy) -> Self {
        let storage: &'static MemCache = Box::leak(Box::new(MemCache::new()));
        let eviction: &'static (dyn EvictionManager + Sync) = match policy {
            EvictionPolicy::Lru => {
                Box::leak(Box::new(lru::Manager::<16>::with_capacity(size, 1024)))
            }
            EvictionPolicy::Tinyufo => {
                // Assume 4 KiB per entry for the admission sketch's size.
                Box::leak(Box::new(tinyufo::Manager::new(size, (size / 4096).max(64))))
            }
        };
        let predictor: &'static Predictor<16> = Box::leak(Box::new(Predictor::new(256, None)));
        let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(DEFAULT_LOCK_AGE));
        Self {
            storage: Some(storage),
            eviction: Some(eviction),
            predictor: Some(predictor),
            cache_lock: Some(lock),
            lock_wait_timeout: Some(DEFAULT_LOCK_AGE),
            max_file_size: Some(size),
            ..Self::default()
        }
    }

    /// Replaces the cache lock with one whose age timeout is `age`, and sets the wait timeout.
    #[must_use]
    pub fn with_lock_timeouts(mut self, age: Duration, wait: Duration) -> Self {
        let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(age));
        self.cache_lock = Some(lock);
        self.lock_wait_timeout = Some(wait);
        self
    }
}
