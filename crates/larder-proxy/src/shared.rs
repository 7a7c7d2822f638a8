//! What every part of the request flow shares: the layer's settings ([`CacheConfig`]), its
//! state ([`Shared`]), the inner service ([`Inner`]), one request's flow state ([`Ctx`]) and the
//! small helpers every outcome uses. It imports nothing of the flow above it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::request::Parts;
use http::{HeaderName, Request, Response};
use larder_cache::cache_status::{CacheStatus, ForwardReason};
use larder_cache::eviction::{EvictionManager, lru, tinyufo};
use larder_cache::lock::{CacheKeyLockImpl, CacheLock};
use larder_cache::predictor::{CacheablePredictor, Predictor};
use larder_cache::range::DEFAULT_MAX_RANGES;
use larder_cache::request::RequestDirectives;
use larder_cache::{
    CacheMetaDefaults, CacheOptionOverrides, HttpCache, MemCache, SetCookiePolicy, Storage,
};
use larder_storage::key::PrimaryHashMemo;
use tower::ServiceExt;

use crate::body::{self, ProxyBody};
use crate::config::EvictionPolicy;
use crate::error::BoxError;
use crate::headers::Via;
use crate::metrics::Metrics;
use crate::tasks::Tasks;

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
    /// [`CacheHooks::set_cookie_policy`](crate::CacheHooks::set_cookie_policy)'s default: by
    /// default [`SetCookiePolicy::OptIn`] (stored only when the origin says `public`,
    /// `s-maxage` or sends a targeted field; the stored copy never carries the cookie).
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

/// How many keys' primary hashes a layer remembers.
pub(crate) const KEY_HASH_MEMO: usize = 4096;

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

/// The state every request of a layer shares.
pub(crate) struct Shared<H> {
    /// `Via` for every HTTP version, from `config.via_pseudonym`.
    pub(crate) via: Via,
    /// `config.cache_status_name`, shared by every request's `Cache-Status`.
    pub(crate) status_name: Arc<str>,
    /// The primary hashes of recently requested keys (see `flow::run`).
    pub(crate) key_hashes: PrimaryHashMemo,
    pub(crate) config: CacheConfig,
    /// Shared with the bodies that [`CacheHooks::response_body_filter`](crate::CacheHooks::response_body_filter) filters.
    pub(crate) hooks: Arc<H>,
    pub(crate) metrics: Arc<Metrics>,
    /// The background tasks (fills, refreshes, body streams) and their spawner.
    pub(crate) tasks: Tasks,
}

/// A boxed future, as the inner service is called through [`Inner`].
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The inner service, with its body and error types erased.
pub(crate) trait Inner: Clone + Send + Sync + 'static {
    /// Sends one request.
    fn send(&self, req: Request<ProxyBody>) -> BoxFuture<Result<Response<ProxyBody>, BoxError>>;
}

impl<S, ResB> Inner for Arc<S>
where
    S: tower_service::Service<Request<ProxyBody>, Response = Response<ResB>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    fn send(&self, req: Request<ProxyBody>) -> BoxFuture<Result<Response<ProxyBody>, BoxError>> {
        let svc = S::clone(self);
        Box::pin(async move {
            let resp = svc.oneshot(req).await.map_err(Into::into)?;
            Ok(resp.map(body::boxed))
        })
    }
}

/// A response and its `Cache-Status`.
pub(crate) type Answer = (Response<ProxyBody>, CacheStatus);

/// One request's state in the cache flow, lent to each outcome.
pub(crate) struct Ctx<'a, H> {
    pub(crate) shared: &'a Arc<Shared<H>>,
    /// The client's request head (hop-by-hop fields removed).
    pub(crate) req: &'a Parts,
    pub(crate) directives: RequestDirectives,
    /// Why the request went (or goes) upstream, for `Cache-Status`.
    pub(crate) fwd: ForwardReason,
    /// The request waited on another request's cache lock.
    pub(crate) collapsed: bool,
    /// The request demands validation: nothing stale is served.
    pub(crate) must_revalidate: bool,
}

impl<H> Ctx<'_, H> {
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }
}

/// A `Cache-Status` member with the layer's cache name.
pub(crate) fn new_status<H>(shared: &Shared<H>) -> CacheStatus {
    CacheStatus::with_shared_name(Arc::clone(&shared.status_name))
}

/// Enables `cache` with the layer's storage (and, `with_lock`, its cache lock, predictor and
/// object size limit: what a request filling the cache uses, unlike a purge).
pub(crate) fn enable<H>(shared: &Shared<H>, cache: &mut HttpCache, with_lock: bool) {
    let c = &shared.config;
    let Some(storage) = c.storage else {
        return;
    };
    let overrides = CacheOptionOverrides::default().with_wait_timeout(c.lock_wait_timeout);
    let lock = if with_lock { c.cache_lock } else { None };
    let predictor = if with_lock { c.predictor } else { None };
    cache.enable(storage, c.eviction, predictor, lock, Some(overrides));
    if with_lock && let Some(max) = c.max_file_size {
        cache.set_max_file_size_bytes(max);
    }
}

/// `000` to `999`, three digits each: the text of small `Age` values.
static AGE_DIGITS: [u8; 3000] = {
    let mut digits = [0u8; 3000];
    let mut n = 0;
    while n < 1000 {
        // Each is a single decimal digit: the casts cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        {
            digits[3 * n] = b'0' + (n / 100) as u8;
            digits[3 * n + 1] = b'0' + (n / 10 % 10) as u8;
            digits[3 * n + 2] = b'0' + (n % 10) as u8;
        }
        n += 1;
    }
    digits
};

/// The `Age` value for `secs`: below 1000 a slice of [`AGE_DIGITS`] (no allocation, as a hit of
/// a young entry sends one on every response), otherwise formatted.
pub(crate) fn age_value(secs: u64) -> HeaderValue {
    let Ok(n) = usize::try_from(secs) else {
        return HeaderValue::from(secs);
    };
    let skip = match n {
        0..=9 => 2,
        10..=99 => 1,
        100..=999 => 0,
        _ => return HeaderValue::from(secs),
    };
    match std::str::from_utf8(&AGE_DIGITS[3 * n + skip..3 * n + 3]) {
        Ok(text) => HeaderValue::from_static(text),
        Err(_) => HeaderValue::from(secs),
    }
}

/// Logs a failed storage call: a warning, or only a debug line when the error says the
/// storage backend is unreachable, which the backend reports once per outage itself, so an
/// outage does not log one warning per request.
pub(crate) fn storage_failed(e: &larder_cache::Error, what: &'static str) {
    if e.is_unavailable() {
        tracing::debug!(error = %e, "{what}");
    } else {
        tracing::warn!(error = %e, "{what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_values_match_formatting() {
        for secs in (0..1100).chain([u64::from(u32::MAX), u64::MAX]) {
            assert_eq!(age_value(secs), HeaderValue::from(secs), "{secs}");
        }
    }
}
