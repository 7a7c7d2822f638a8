//! The `CacheHooks` callbacks of pingora's `ProxyHttp` that shape the flow: each overridden,
//! on the path where it runs, with the effect it has.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};
use larder_cache::range::RangeSpec;
use larder_cache::{HttpCache, ResponseHeader};
use larder_proxy::purge::PurgeStatus;
use larder_proxy::{BoxError, CacheConfig, CacheHooks, ProxyBody, Upstream, body};

use larder_testkit::{Got, Origin, Proxy, cache_config, get, respond, send};

/// A proxy with `hooks` in front of `upstream` (an `http://` URI).
pub(crate) async fn start<H: CacheHooks>(
    upstream: &str,
    config: CacheConfig,
    hooks: H,
) -> SocketAddr {
    Proxy::with_hooks(Upstream::new(upstream).unwrap(), config, hooks)
        .await
        .addr
}

/// An origin answering every request with a cacheable `hello`.
async fn cacheable_origin() -> Origin {
    Origin::start(|_, _| async { respond(200, &[("cache-control", "max-age=60")], "hello") }).await
}

pub(crate) fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

pub(crate) fn is_hit(got: &Got) -> bool {
    got.ours().hit
}

// ------------------------------------------------------------------------- cache_miss

/// Counts `cache_miss` calls; under `/skip/` does not start the miss.
#[derive(Default)]
struct CountMisses {
    misses: Arc<AtomicUsize>,
}

impl CacheHooks for CountMisses {
    fn cache_miss(&self, req: &Parts, cache: &mut HttpCache) {
        self.misses.fetch_add(1, Ordering::SeqCst);
        if !req.uri.path().starts_with("/skip/") {
            cache.cache_miss();
        }
    }
}

#[tokio::test]
async fn cache_miss_runs_once_per_miss_and_not_on_hits() {
    let origin = cacheable_origin().await;
    let hooks = CountMisses::default();
    let misses = Arc::clone(&hooks.misses);
    let addr = start(&origin.uri(), cache_config(), hooks).await;

    let first = get(&url(addr, "/a")).await;
    assert!(first.ours().is_fwd("uri-miss"), "{}", first.cache_status());
    assert_eq!(misses.load(Ordering::SeqCst), 1);
    let hit = get(&url(addr, "/a")).await;
    assert!(is_hit(&hit), "{}", hit.cache_status());
    assert_eq!(misses.load(Ordering::SeqCst), 1, "a hit is no miss");
    let _ = get(&url(addr, "/b")).await;
    assert_eq!(misses.load(Ordering::SeqCst), 2);
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn cache_miss_that_skips_the_miss_leaves_the_request_uncached() {
    let origin = cacheable_origin().await;
    let addr = start(&origin.uri(), cache_config(), CountMisses::default()).await;
    for _ in 0..2 {
        let got = get(&url(addr, "/skip/a")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "hello");
        assert!(
            got.ours().has_detail("CacheMissSkipped"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(origin.hits(), 2, "nothing was stored");
}

// ------------------------------------------------------------------------- proxy_upstream_filter

/// Declines `/declined`, fails on `/broken`, and declines the first request to `/slow` after a
/// pause (letting another request wait on its lock).
#[derive(Default)]
struct Gate {
    slow_calls: AtomicUsize,
}

impl CacheHooks for Gate {
    async fn proxy_upstream_filter(&self, req: &Parts) -> Result<bool, BoxError> {
        match req.uri.path() {
            "/declined" => Ok(false),
            "/broken" => Err("upstream gate broken".into()),
            "/slow" if self.slow_calls.fetch_add(1, Ordering::SeqCst) == 0 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(false)
            }
            _ => Ok(true),
        }
    }
}

#[tokio::test]
async fn declining_upstream_gives_502_and_sends_nothing() {
    let origin = cacheable_origin().await;
    let addr = start(&origin.uri(), cache_config(), Gate::default()).await;
    // A cacheable request, and one the cache does not handle.
    for method in [Method::GET, Method::POST] {
        let got = send(method.clone(), &url(addr, "/declined"), &[]).await;
        assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{method}");
        assert!(
            got.ours().has_detail("DeclinedToUpstream"),
            "{method}: {}",
            got.cache_status()
        );
    }
    assert_eq!(origin.hits(), 0);
    // Other paths go upstream as usual.
    assert_eq!(get(&url(addr, "/open")).await.text(), "hello");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn proxy_upstream_filter_error_is_500_and_sends_nothing() {
    let origin = cacheable_origin().await;
    let addr = start(&origin.uri(), cache_config(), Gate::default()).await;
    let got = get(&url(addr, "/broken")).await;
    assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        got.ours().has_detail("InternalError"),
        "{}",
        got.cache_status()
    );
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn declining_upstream_releases_the_lock_for_waiters() {
    let origin = cacheable_origin().await;
    // Waiters would give up only after 1 s.
    let addr = start(&origin.uri(), cache_config(), Gate::default()).await;
    let started = Instant::now();
    let declined = tokio::spawn(get(url(addr, "/slow").leak()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiter = get(&url(addr, "/slow")).await;
    let declined = declined.await.unwrap();
    assert_eq!(declined.status, StatusCode::BAD_GATEWAY);
    // The waiter looked again when the lock was released, became the writer and filled.
    assert_eq!(waiter.status, 200);
    assert_eq!(waiter.text(), "hello");
    assert!(waiter.ours().is_stored(), "{}", waiter.cache_status());
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(origin.hits(), 1);
    assert!(is_hit(&get(&url(addr, "/slow")).await));
}

// ------------------------------------------------------------------------- response filters

/// Marks every response with the `Cache-Status` it saw; under `/upper/` upper-cases the body
/// and appends `!`; under `/fail/` fails the response filter, under `/fail-body/` the body
/// filter.
struct Filters;

impl CacheHooks for Filters {
    async fn response_filter(
        &self,
        req: &Parts,
        resp: &mut Response<ProxyBody>,
    ) -> Result<(), BoxError> {
        let path = req.uri.path();
        if path.starts_with("/fail/") {
            return Err("response filter failed".into());
        }
        let headers = resp.headers_mut();
        let seen = headers.get("cache-status").cloned();
        headers.insert(
            "x-filtered",
            seen.unwrap_or(HeaderValue::from_static("none")),
        );
        if path.starts_with("/upper/") {
            // The body filter changes the length.
            headers.remove(http::header::CONTENT_LENGTH);
        }
        Ok(())
    }

    fn wants_response_body(&self, req: &Parts, _resp: &Response<ProxyBody>) -> bool {
        let path = req.uri.path();
        path.starts_with("/upper/") || path.starts_with("/fail-body/")
    }

    fn response_body_filter(
        &self,
        req: &Parts,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<(), BoxError> {
        if req.uri.path().starts_with("/fail-body/") {
            return Err("body filter failed".into());
        }
        if let Some(chunk) = body {
            *chunk = Bytes::from(chunk.to_ascii_uppercase());
        }
        if end_of_stream {
            *body = Some(Bytes::from_static(b"!"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn response_filter_runs_on_misses_and_hits_after_cache_status() {
    let origin = cacheable_origin().await;
    let addr = start(&origin.uri(), cache_config(), Filters).await;
    let miss = get(&url(addr, "/a")).await;
    let hit = get(&url(addr, "/a")).await;
    assert!(is_hit(&hit));
    for got in [&miss, &hit] {
        assert_eq!(got.header("x-filtered"), Some(got.cache_status()));
        assert_eq!(got.text(), "hello");
    }
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn response_filter_error_is_500() {
    let origin = cacheable_origin().await;
    let addr = start(&origin.uri(), cache_config(), Filters).await;
    let miss = get(&url(addr, "/fail/a")).await;
    let hit = get(&url(addr, "/fail/a")).await;
    for got in [&miss, &hit] {
        assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(got.ours().name == "larder");
        assert_eq!(got.text(), "");
    }
    // The fill went on: the second request was answered from the cache, then failed.
    assert!(is_hit(&hit), "{}", hit.cache_status());
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn response_body_filter_transforms_miss_and_hit_bodies() {
    let origin = cacheable_origin().await;
    let addr = start(&origin.uri(), cache_config(), Filters).await;
    let miss = get(&url(addr, "/upper/a")).await;
    let hit = get(&url(addr, "/upper/a")).await;
    assert!(is_hit(&hit));
    // The stored copy is the origin's: a filtered copy would gain a second `!`.
    for got in [&miss, &hit] {
        assert_eq!(got.text(), "HELLO!");
        assert_eq!(got.header("content-length"), None);
    }
    // Bodies the filter does not want pass untouched.
    assert_eq!(get(&url(addr, "/plain")).await.text(), "hello");
}

#[tokio::test]
async fn response_body_filter_error_ends_the_body_in_an_error() {
    let origin = cacheable_origin().await;
    let addr = start(&origin.uri(), cache_config(), Filters).await;
    let got = get(&url(addr, "/fail-body/a")).await;
    assert_eq!(got.status, 200);
    assert!(
        got.body.is_err(),
        "a failed body filter must not look like a whole body"
    );
}

// ------------------------------------------------------------------------- range_header_filter

/// Refuses ranges under `/whole/` (the full `200`) and answers them with `416` under `/never/`.
struct Ranges;

impl CacheHooks for Ranges {
    fn range_header_filter(
        &self,
        req: &Parts,
        resp: &mut ResponseHeader,
        config: &CacheConfig,
    ) -> RangeSpec {
        let path = req.uri.path();
        if path.starts_with("/whole/") {
            RangeSpec::None
        } else if path.starts_with("/never/") {
            RangeSpec::Invalid
        } else {
            larder_cache::range::range_for_request(
                &req.method,
                &req.headers,
                resp.status,
                &resp.headers,
                config.max_ranges,
            )
        }
    }
}

#[tokio::test]
async fn range_header_filter_can_refuse_a_range_on_misses_and_hits() {
    let origin = Origin::start(|_, _| async {
        respond(200, &[("cache-control", "max-age=60")], "0123456789")
    })
    .await;
    let addr = start(&origin.uri(), cache_config(), Ranges).await;
    let range = [("range", "bytes=0-3")];
    for (path, status, body) in [
        ("/ranged", 206, "0123"),
        ("/whole/a", 200, "0123456789"),
        ("/never/a", 416, ""),
    ] {
        let miss = send(Method::GET, &url(addr, path), &range).await;
        let hit = send(Method::GET, &url(addr, path), &range).await;
        assert!(is_hit(&hit), "{path}: {}", hit.cache_status());
        for got in [miss, hit] {
            assert_eq!(got.status, status, "{path}");
            assert_eq!(got.text(), body, "{path}");
        }
    }
    assert_eq!(origin.hits(), 3);
}

// ------------------------------------------------------------------------- purge_response_filter

/// Names the outcome in `x-purge`; answers a purge of an absent entry `200` with a body; fails
/// on an unauthorised purge.
struct PurgeAnswers;

impl CacheHooks for PurgeAnswers {
    fn purge_response_filter(
        &self,
        _req: &Parts,
        outcome: &PurgeStatus<'_>,
        resp: &mut Response<ProxyBody>,
    ) -> Result<(), BoxError> {
        let name = match outcome {
            PurgeStatus::Found => "found",
            PurgeStatus::NotFound => "not-found",
            PurgeStatus::Unauthorized => return Err("unauthorised purge".into()),
            _ => "other",
        };
        resp.headers_mut()
            .insert("x-purge", HeaderValue::from_static(name));
        if matches!(outcome, PurgeStatus::NotFound) {
            *resp.status_mut() = StatusCode::OK;
            resp.headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("9"));
            *resp.body_mut() = body::full("not found");
        }
        Ok(())
    }
}

#[tokio::test]
async fn purge_response_filter_rewrites_the_purge_answer() {
    let origin = cacheable_origin().await;
    let mut config = cache_config();
    config.purge_token = Some("s3cret".into());
    let addr = start(&origin.uri(), config, PurgeAnswers).await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let token = [("authorization", "Bearer s3cret")];
    let _ = get(&url(addr, "/p")).await;

    let found = send(purge.clone(), &url(addr, "/p"), &token).await;
    assert_eq!(found.status, 200);
    assert_eq!(found.header("x-purge"), Some("found"));
    let absent = send(purge.clone(), &url(addr, "/p"), &token).await;
    assert_eq!(absent.status, 200);
    assert_eq!(absent.header("x-purge"), Some("not-found"));
    assert_eq!(absent.text(), "not found");
    let refused = send(purge, &url(addr, "/p"), &[]).await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(refused.header("x-purge"), None);
    assert!(refused.ours().has_detail("purge"));
}

// ------------------------------------------------------------------------- fail_to_proxy

/// A `503` page naming the path.
struct ErrorPage;

impl CacheHooks for ErrorPage {
    async fn fail_to_proxy(&self, req: &Parts, _error: &BoxError) -> Response<ProxyBody> {
        let text = format!("{} is unavailable", req.uri.path());
        let mut resp = Response::new(body::full(text));
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("5"));
        resp
    }
}

#[tokio::test]
async fn fail_to_proxy_shapes_the_error_page() {
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let addr = start(&upstream, cache_config(), ErrorPage).await;
    for method in [Method::GET, Method::POST] {
        let got = send(method.clone(), &url(addr, "/down"), &[]).await;
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{method}");
        assert_eq!(got.header("retry-after"), Some("5"));
        assert_eq!(got.text(), "/down is unavailable");
        assert!(got.ours().name == "larder", "{method}");
    }
    let cached = get(&url(addr, "/down")).await;
    assert!(
        cached.ours().has_detail("UpstreamError"),
        "{}",
        cached.cache_status()
    );

    // The default keeps the plain 502.
    let default = start(&upstream, cache_config(), larder_proxy::DefaultHooks).await;
    let got = get(&url(default, "/down")).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(got.text(), "");
}
