//! The `CacheHooks` callbacks that may fail as pingora's do: each error leads to pingora's
//! outcome (a miss, `500`, nothing stored, or failing open).

use http::request::Parts;
use http::{Method, StatusCode, response};
use larder_cache::ResponseHeader;
use larder_proxy::{BoxError, CacheConfig, CacheHooks};

use crate::hooks::{is_hit, start, url};
use larder_testkit::{Origin, cache_config, get, respond, send};

/// Fails the callback the path names.
struct Failing;

fn fails(req: &Parts, what: &str) -> Result<(), BoxError> {
    if req.uri.path() == format!("/{what}") {
        Err(format!("{what} failed").into())
    } else {
        Ok(())
    }
}

impl CacheHooks for Failing {
    fn cache_hit_filter(
        &self,
        req: &Parts,
        _meta: &larder_cache::CacheMeta,
        _is_fresh: bool,
    ) -> Result<Option<larder_cache::ForcedFreshness>, BoxError> {
        fails(req, "hit-filter").map(|()| None)
    }

    fn upstream_request_filter(&self, req: &Parts, _upstream: &mut Parts) -> Result<(), BoxError> {
        fails(req, "request-filter")
    }

    fn upstream_response_filter(
        &self,
        req: &Parts,
        resp: &mut response::Parts,
    ) -> Result<(), BoxError> {
        if resp.status == StatusCode::NOT_MODIFIED {
            return fails(req, "revalidated");
        }
        fails(req, "response-filter")
    }

    fn response_cache_filter(
        &self,
        req: &Parts,
        resp: &ResponseHeader,
        config: &CacheConfig,
        times: larder_cache::age::ResponseTimes,
    ) -> Result<larder_cache::RespCacheable, BoxError> {
        fails(req, "cache-filter")?;
        larder_proxy::DefaultHooks.response_cache_filter(req, resp, config, times)
    }

    fn cache_not_modified_filter(
        &self,
        req: &Parts,
        resp: &ResponseHeader,
    ) -> Result<larder_cache::conditional::Precondition, BoxError> {
        fails(req, "not-modified")?;
        larder_proxy::DefaultHooks.cache_not_modified_filter(req, resp)
    }
}

/// An origin whose responses are cacheable with an `ETag`; stale at once under `/revalidated`,
/// where a conditional request gets `304`.
async fn etag_origin() -> Origin {
    Origin::start(|parts, n| async move {
        let stale = parts.uri.path() == "/revalidated";
        if stale && parts.headers.contains_key("if-none-match") {
            return respond(
                304,
                &[("etag", "\"v\""), ("cache-control", "max-age=0")],
                "",
            );
        }
        let cc = if stale { "max-age=0" } else { "max-age=60" };
        respond(
            200,
            &[("etag", "\"v\""), ("cache-control", cc)],
            format!("body {n}"),
        )
    })
    .await
}

#[tokio::test]
async fn failed_hit_filter_treats_the_entry_as_absent() {
    let origin = etag_origin().await;
    let addr = start(&origin.uri(), cache_config(), Failing).await;
    let _ = get(&url(addr, "/hit-filter")).await;
    let again = get(&url(addr, "/hit-filter")).await;
    assert!(!is_hit(&again), "{}", again.cache_status());
    assert_eq!(again.text(), "body 1");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn failed_upstream_request_filter_is_500_and_sends_nothing() {
    let origin = etag_origin().await;
    let addr = start(&origin.uri(), cache_config(), Failing).await;
    for method in [Method::GET, Method::POST] {
        let got = send(method.clone(), &url(addr, "/request-filter"), &[]).await;
        assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR, "{method}");
        assert!(
            got.ours().has_detail("InternalError"),
            "{method}: {}",
            got.cache_status()
        );
    }
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn failed_upstream_response_filter_is_500_and_stores_nothing() {
    let origin = etag_origin().await;
    let addr = start(&origin.uri(), cache_config(), Failing).await;
    for _ in 0..2 {
        let got = get(&url(addr, "/response-filter")).await;
        assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            got.ours().has_detail("InternalError"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn failed_upstream_response_filter_on_a_304_still_serves_the_stored_response() {
    let origin = etag_origin().await;
    let addr = start(&origin.uri(), cache_config(), Failing).await;
    let first = get(&url(addr, "/revalidated")).await;
    assert_eq!(first.text(), "body 0");
    let revalidated = get(&url(addr, "/revalidated")).await;
    assert_eq!(revalidated.status, 200);
    assert_eq!(revalidated.text(), "body 0");
    assert!(
        revalidated.ours().fwd_status == Some(304),
        "{}",
        revalidated.cache_status()
    );
    assert!(
        revalidated.ours().has_detail("InternalError"),
        "{}",
        revalidated.cache_status()
    );
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn failed_response_cache_filter_stores_nothing() {
    let origin = etag_origin().await;
    let addr = start(&origin.uri(), cache_config(), Failing).await;
    let got = get(&url(addr, "/cache-filter")).await;
    assert_eq!(got.status, 200);
    assert!(
        got.ours().has_detail("InternalError"),
        "{}",
        got.cache_status()
    );
    assert_eq!(get(&url(addr, "/cache-filter")).await.text(), "body 1");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn failed_not_modified_filter_fails_open() {
    let origin = etag_origin().await;
    let addr = start(&origin.uri(), cache_config(), Failing).await;
    let conditional = [("if-none-match", "\"v\"")];
    for (path, status) in [("/plain", 304), ("/not-modified", 200)] {
        let _ = get(&url(addr, path)).await;
        let hit = send(Method::GET, &url(addr, path), &conditional).await;
        assert!(is_hit(&hit), "{path}: {}", hit.cache_status());
        assert_eq!(hit.status, status, "{path}");
    }
}
