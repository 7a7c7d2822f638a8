//! A pingora-cache program ported to larder: a caching proxy's cache callbacks and wiring, as a
//! pingora-proxy `ProxyHttp` implementation writes them (`request_cache_filter` enabling the
//! cache with a storage, an eviction manager, a predictor and a cache lock; a max file size;
//! `cache_key_callback`; `cache_hit_filter`; `cache_vary_filter` over allowed headers;
//! `response_cache_filter` with `CacheControl::from_resp_headers` and `resp_cacheable`;
//! `should_serve_stale`; `is_purge`), run in front of an in-process origin, then checked
//! request by request.
//!
//! Only what the porting table of `docs/guide.md` lists changed from the pingora version:
//!
//! - `pingora_cache::` paths became `larder::cache::`;
//! - `impl ProxyHttp` became `impl CacheHooks` (no `Session`, no `CTX`: each callback gets
//!   the request head, `http::request::Parts`; `Result`s carry a `BoxError`);
//! - what `request_cache_filter` passed to `session.cache.enable(..)` and
//!   `set_max_file_size_bytes`, and `CacheOptionOverrides::wait_timeout`, moved into
//!   `CacheConfig`, and `request_cache_filter` returns whether to cache;
//! - `upstream_peer` became the inner tower service (the origin);
//! - the `x-cache-status` header of `response_filter` is the `Cache-Status` field larder
//!   sends (RFC 9211);
//! - `should_serve_stale`'s `Option<&Error>` became `Option<&StaleCause>`;
//! - PURGE needs the configured bearer token (`CacheConfig::purge_token`).
//!
//! Run with `cargo run -p larder --example port_cache_filter --features proxy`.

// The callbacks keep the code of the pingora program line for line; the workspace's pedantic
// style lints it trips are allowed here rather than rewritten, so the port shows only the
// changes the porting table lists.
#![allow(
    clippy::flat_map_option,
    clippy::map_unwrap_or,
    clippy::needless_for_each,
    clippy::redundant_closure_for_method_calls
)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::VARY;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use larder::cache::age::ResponseTimes;
use larder::cache::cache_control::CacheControl;
use larder::cache::eviction::{EvictionManager, simple_lru::Manager};
use larder::cache::filters::resp_cacheable;
use larder::cache::key::HashBinary;
use larder::cache::lock::{CacheKeyLockImpl, CacheLock};
use larder::cache::predictor::Predictor;
use larder::cache::{
    CacheKey, CacheMeta, CacheMetaDefaults, ForcedFreshness, MemCache, RespCacheable,
    ResponseHeader, VarianceBuilder,
};
use larder::proxy::{BoxError, CacheConfig, CacheHooks, CacheLayer, ProxyBody, StaleCause};
use tower::{Layer, ServiceExt, service_fn};

static CACHE_BACKEND: LazyLock<MemCache> = LazyLock::new(MemCache::new);
const CACHE_DEFAULT: CacheMetaDefaults =
    CacheMetaDefaults::new(|_| Some(Duration::from_secs(1)), 1, 1);
static CACHE_PREDICTOR: LazyLock<Predictor<32>> = LazyLock::new(|| Predictor::new(5, None));
static EVICTION_MANAGER: LazyLock<Manager> = LazyLock::new(|| Manager::new(8192)); // 8192 bytes
static CACHE_LOCK: LazyLock<Box<CacheKeyLockImpl>> =
    LazyLock::new(|| CacheLock::new_boxed(std::time::Duration::from_secs(2)));
// Which fields responses may vary on.
static CACHE_VARY_ALLOWED_HEADERS: LazyLock<Option<HashSet<&str>>> =
    LazyLock::new(|| Some(vec!["accept", "accept-encoding"].into_iter().collect()));
const MAX_FILE_SIZE: usize = 1024;
const PURGE_TOKEN: &str = "purge-secret";

/// The cache callbacks of the proxy.
pub struct ExampleProxyCache {}

impl CacheHooks for ExampleProxyCache {
    fn request_cache_filter(&self, req: &Parts) -> bool {
        if req.headers.get("x-bypass-cache").is_some() {
            return false;
        }
        // The storage, eviction manager, predictor, lock and max file size are in `config()`.
        true
    }

    fn cache_key_callback(&self, req_header: &Parts) -> Option<CacheKey> {
        let host = req_header
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req_header.uri.authority().map(|a| a.as_str()))
            .unwrap_or("");
        let path_and_query = req_header
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        Some(CacheKey::new(
            String::new(),
            format!("{host}{path_and_query}"),
            String::new(),
        ))
    }

    fn cache_hit_filter(
        &self,
        req: &Parts,
        _meta: &CacheMeta,
        is_fresh: bool,
    ) -> Result<Option<ForcedFreshness>, BoxError> {
        if req.headers.get("x-force-miss").is_some() {
            return Ok(Some(ForcedFreshness::ForceMiss));
        }
        if !is_fresh {
            if req.headers.get("x-force-fresh").is_some() {
                return Ok(Some(ForcedFreshness::ForceFresh));
            }
            return Ok(None);
        }
        if req.headers.get("x-force-expire").is_some() {
            return Ok(Some(ForcedFreshness::ForceExpired));
        }
        Ok(None)
    }

    fn cache_vary_filter(&self, meta: &CacheMeta, req: &Parts) -> Option<HashBinary> {
        let mut key = VarianceBuilder::new();
        let vary_headers_lowercased: Vec<String> = meta
            .headers()
            .get_all(VARY)
            .iter()
            .flat_map(|vary_header| vary_header.to_str().ok())
            .flat_map(|vary_header| vary_header.split(','))
            .map(|s| s.trim().to_lowercase())
            .filter(|header_name| {
                CACHE_VARY_ALLOWED_HEADERS
                    .as_ref()
                    .map(|al| al.contains(header_name.as_str()))
                    .unwrap_or(true)
            })
            .collect();
        vary_headers_lowercased.iter().for_each(|header_name| {
            key.add_value(
                header_name,
                req.headers
                    .get(header_name)
                    .map(|v| v.as_bytes())
                    .unwrap_or(&[]),
            );
        });
        key.finalize()
    }

    fn response_cache_filter(
        &self,
        _req: &Parts,
        resp: &ResponseHeader,
        _config: &CacheConfig,
        _times: ResponseTimes,
    ) -> Result<RespCacheable, BoxError> {
        let cc = CacheControl::from_resp_headers(resp);
        Ok(resp_cacheable(
            cc.as_ref(),
            resp.clone(),
            false,
            &CACHE_DEFAULT,
        ))
    }

    fn should_serve_stale(&self, _req: &Parts, cause: Option<&StaleCause<'_>>) -> bool {
        // Serve stale while updating, and on upstream failures.
        cause.is_none_or(|c| matches!(c, StaleCause::UpstreamError(_)))
    }

    fn is_purge(&self, req: &Parts) -> bool {
        req.method == "PURGE"
    }
}

/// What `request_cache_filter` enabled the cache with in the pingora version.
fn config() -> CacheConfig {
    let mut config = CacheConfig::default();
    config.storage = Some(&*CACHE_BACKEND);
    config.eviction = Some(&*EVICTION_MANAGER);
    config.predictor = Some(&*CACHE_PREDICTOR);
    config.cache_lock = Some(CACHE_LOCK.as_ref());
    config.lock_wait_timeout = Some(Duration::from_secs(2));
    config.max_file_size = Some(MAX_FILE_SIZE);
    config.purge_token = Some(PURGE_TOKEN.to_owned());
    config
}

static ORIGIN_CALLS: AtomicUsize = AtomicUsize::new(0);

/// The origin (`upstream_peer` in the pingora version): answers by path.
async fn origin(req: Request<ProxyBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    ORIGIN_CALLS.fetch_add(1, Ordering::SeqCst);
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (cache_control, vary, body) = match req.uri().path() {
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            ("max-age=60", None, "slow".to_owned())
        }
        "/private" => ("private, max-age=60", None, "yours".to_owned()),
        "/big" => ("max-age=60", None, "x".repeat(2 * MAX_FILE_SIZE)),
        "/vary" => ("max-age=60", Some("Accept"), format!("as {accept}")),
        path => ("max-age=60", None, format!("page {path}")),
    };
    let mut resp = Response::builder().header("cache-control", cache_control);
    if let Some(vary) = vary {
        resp = resp.header(VARY, vary);
    }
    Ok(resp
        .body(Full::new(Bytes::from(body)))
        .expect("valid header values"))
}

/// The `Cache-Status` parameters of one response (RFC 9211), after the cache name.
struct Status {
    hit: bool,
    stored: bool,
}

impl Status {
    fn of(resp: &Response<ProxyBody>) -> Self {
        let value = resp
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let params: Vec<&str> = value.split(';').skip(1).map(str::trim).collect();
        Status {
            hit: params.contains(&"hit"),
            stored: params.contains(&"stored"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let service = CacheLayer::new(config(), ExampleProxyCache {}).layer(service_fn(origin));
    let send = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "example.com");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Empty::<Bytes>::new()).expect("valid request");
        let service = service.clone();
        async move {
            let resp = service.oneshot(req).await.expect("infallible");
            let status = Status::of(&resp);
            let code = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((code, status, body))
        }
    };
    let calls = || ORIGIN_CALLS.load(Ordering::SeqCst);

    // A miss stores the page; the next request is a hit.
    let (_, first, body) = send("GET", "/page", &[]).await?;
    assert!(
        !first.hit && first.stored,
        "the first request fills the cache"
    );
    let (_, second, again) = send("GET", "/page", &[]).await?;
    assert!(second.hit && again == body && calls() == 1);
    println!("miss then hit: {:?}", String::from_utf8_lossy(&body));

    // cache_hit_filter: `x-force-miss` goes upstream; request_cache_filter: bypass.
    let (_, forced, _) = send("GET", "/page", &[("x-force-miss", "1")]).await?;
    assert!(!forced.hit && calls() == 2);
    let (_, bypassed, _) = send("GET", "/page", &[("x-bypass-cache", "1")]).await?;
    assert!(!bypassed.hit && calls() == 3);
    println!("x-force-miss and x-bypass-cache went upstream");

    // cache_vary_filter: one variant per Accept value.
    let (_, _, html) = send("GET", "/vary", &[("accept", "text/html")]).await?;
    let (_, _, json) = send("GET", "/vary", &[("accept", "application/json")]).await?;
    let (_, hit, html_again) = send("GET", "/vary", &[("accept", "text/html")]).await?;
    assert!(hit.hit && html_again == html && html != json && calls() == 5);
    println!(
        "vary: {:?} and {:?}",
        String::from_utf8_lossy(&html),
        String::from_utf8_lossy(&json)
    );

    // response_cache_filter: `private` is not stored, and the predictor remembers it.
    for _ in 0..2 {
        let (_, status, _) = send("GET", "/private", &[]).await?;
        assert!(!status.hit && !status.stored);
    }
    assert_eq!(calls(), 7);
    assert_eq!(CACHE_PREDICTOR.len(), 1, "the uncacheable key is predicted");
    // Max file size: a body over the limit is served but not stored.
    for _ in 0..2 {
        let (_, status, body) = send("GET", "/big", &[]).await?;
        assert!(!status.hit && body.len() == 2 * MAX_FILE_SIZE);
    }
    assert_eq!(calls(), 9);
    println!("private and too-large responses were not stored");

    // The cache lock: concurrent misses of one key make one origin request.
    let tasks: Vec<_> = (0..5)
        .map(|_| tokio::spawn(send("GET", "/slow", &[])))
        .collect();
    for task in tasks {
        let (code, _, body) = task.await??;
        assert!(code == StatusCode::OK && body == "slow");
    }
    assert_eq!(calls(), 10, "the lock collapsed five misses into one fetch");
    println!("five concurrent misses, one origin request");

    // The eviction manager tracks what was stored, within its limit.
    let size = EVICTION_MANAGER.total_size();
    assert!(size > 0 && size <= 8192 && EVICTION_MANAGER.total_items() == 4);
    println!(
        "eviction: {} entries, {size} bytes",
        EVICTION_MANAGER.total_items()
    );

    // is_purge: PURGE removes the page; the next GET misses.
    let auth = format!("Bearer {PURGE_TOKEN}");
    let (code, _, _) = send("PURGE", "/page", &[("authorization", &auth)]).await?;
    assert_eq!(code, StatusCode::OK);
    let (_, after, _) = send("GET", "/page", &[]).await?;
    assert!(!after.hit && calls() == 11);
    println!("purged: the next request went upstream");
    Ok(())
}
