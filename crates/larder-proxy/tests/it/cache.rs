//! Cache behaviour through the real proxy: each test is one behaviour of the issue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::BodyExt;
use larder_proxy::ProxyBody;

use larder_testkit::{
    Got, Origin, Proxy, cache_config, client, get, respond, send, send_body, slow_body,
};

const PURGE: &str = "PURGE";

fn with_body(resp: Response<ProxyBody>, body: ProxyBody) -> Response<ProxyBody> {
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, body)
}

#[tokio::test]
async fn hit_is_served_with_age_and_cache_status() {
    let origin = Origin::start(|_, _| async {
        respond(
            200,
            &[("cache-control", "max-age=60"), ("age", "10")],
            "hello",
        )
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let miss = get(&proxy.url("/a")).await;
    assert_eq!(miss.text(), "hello");
    let age: u64 = miss.header("age").unwrap().parse().unwrap();
    assert!(
        (10..=12).contains(&age),
        "a stored miss carries the computed age, {age}"
    );
    assert!(miss.ours().is_fwd("uri-miss"), "{}", miss.cache_status());
    assert!(miss.ours().is_stored(), "{}", miss.cache_status());

    let hit = get(&proxy.url("/a")).await;
    assert_eq!(hit.text(), "hello");
    assert!(hit.ours().hit, "{}", hit.cache_status());
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!(
        (10..=12).contains(&age),
        "age {age} counts the upstream Age"
    );
    assert_eq!(origin.hits(), 1);
    assert_eq!(proxy.layer.metrics().hits.get(), 1);
}

#[tokio::test]
async fn head_is_served_from_a_cached_get_and_a_head_miss_fills_with_get() {
    let origin = Origin::start(|_, _| async {
        respond(
            200,
            &[("cache-control", "max-age=60"), ("content-length", "5")],
            "hello",
        )
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let head = send(Method::HEAD, &proxy.url("/h"), &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.body.as_deref().unwrap(), b"");
    assert_eq!(
        origin.request(0).method,
        Method::GET,
        "a HEAD miss fetches GET"
    );

    let full = get(&proxy.url("/h")).await;
    assert_eq!(full.text(), "hello");
    assert!(full.ours().hit, "{}", full.cache_status());
    let head = send(Method::HEAD, &proxy.url("/h"), &[]).await;
    assert_eq!(head.header("content-length"), Some("5"));
    assert!(head.ours().hit);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn downstream_conditionals_are_answered_304_from_cache() {
    let lm = "Wed, 21 Oct 2015 07:28:00 GMT";
    let origin = Origin::start(move |_, _| async move {
        respond(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("last-modified", lm),
            ],
            "body",
        )
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    // On a miss, the client's condition is not sent upstream but still answered.
    let first = send(
        Method::GET,
        &proxy.url("/c"),
        &[("if-none-match", "\"v1\"")],
    )
    .await;
    assert_eq!(first.status, 304);
    assert!(origin.request(0).headers.get("if-none-match").is_none());

    let inm = send(
        Method::GET,
        &proxy.url("/c"),
        &[("if-none-match", "W/\"v1\"")],
    )
    .await;
    assert_eq!(inm.status, 304);
    assert_eq!(inm.body.as_deref().unwrap(), b"");
    assert_eq!(inm.header("etag"), Some("\"v1\""));
    assert!(inm.ours().hit);
    let ims = send(Method::GET, &proxy.url("/c"), &[("if-modified-since", lm)]).await;
    assert_eq!(ims.status, 304);
    let other = send(
        Method::GET,
        &proxy.url("/c"),
        &[("if-none-match", "\"v2\"")],
    )
    .await;
    assert_eq!(
        (other.status.as_u16(), other.text().as_str()),
        (200, "body")
    );
    let failed = send(Method::GET, &proxy.url("/c"), &[("if-match", "\"v2\"")]).await;
    assert_eq!(failed.status, 412);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn single_and_multiple_ranges_are_answered_206_from_cache() {
    let origin = Origin::start(|_, _| async {
        respond(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("content-type", "text/plain"),
            ],
            "0123456789",
        )
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    // A range on a miss: the whole body is fetched and stored, the client gets its range.
    let first = send(Method::GET, &proxy.url("/r"), &[("range", "bytes=0-2")]).await;
    assert_eq!((first.status.as_u16(), first.text().as_str()), (206, "012"));
    assert!(origin.request(0).headers.get("range").is_none());

    let single = send(Method::GET, &proxy.url("/r"), &[("range", "bytes=2-4")]).await;
    assert_eq!(
        (single.status.as_u16(), single.text().as_str()),
        (206, "234")
    );
    assert_eq!(single.header("content-range"), Some("bytes 2-4/10"));
    assert!(single.ours().hit);

    let multi = send(Method::GET, &proxy.url("/r"), &[("range", "bytes=0-1,-2")]).await;
    assert_eq!(multi.status, 206);
    let ct = multi.header("content-type").unwrap().to_owned();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let text = multi.text();
    assert!(
        text.contains("Content-Range: bytes 0-1/10\r\n\r\n01"),
        "{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 8-9/10\r\n\r\n89"),
        "{text}"
    );
    assert_eq!(
        multi.header("content-length").unwrap(),
        text.len().to_string()
    );

    let invalid = send(Method::GET, &proxy.url("/r"), &[("range", "bytes=20-30")]).await;
    assert_eq!(invalid.status, 416);
    assert_eq!(invalid.header("content-range"), Some("bytes */10"));
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_upstream_fetch() {
    let origin = Origin::start(|_, _| async {
        let resp = respond(200, &[("cache-control", "max-age=60")], "");
        with_body(
            resp,
            slow_body(vec!["part1-", "part2"], Duration::from_millis(100), false),
        )
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let url = proxy.url("/lock");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(
            got.text(),
            "part1-part2",
            "waiters stream the partial write"
        );
    }
    assert_eq!(origin.hits(), 1);
}

/// Checks that a response is passed through but not stored, with `reason` in Cache-Status.
async fn check_not_stored(
    headers: &'static [(&'static str, &'static str)],
    req: &[(&str, &str)],
    status: u16,
    reason: &str,
) {
    let origin =
        Origin::start(move |_, _| async move { respond(status, headers, "0123456789") }).await;
    let mut config = cache_config();
    config.max_file_size = Some(5);
    let proxy = Proxy::start(&origin, config).await;
    for _ in 0..2 {
        let got = send(Method::GET, &proxy.url("/n"), req).await;
        assert_eq!(got.status.as_u16(), status);
        assert_eq!(got.text(), "0123456789");
        assert!(
            got.ours().has_detail(reason),
            "{headers:?}: {}",
            got.cache_status()
        );
    }
    assert_eq!(origin.hits(), 2, "{headers:?} was stored");
    let metrics = proxy.layer.render_metrics();
    assert!(
        metrics.contains(&format!(
            "larder_cache_not_stored_total{{reason=\"{reason}\"}} 2"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn responses_that_must_not_be_stored_are_not() {
    check_not_stored(
        &[("cache-control", "max-age=60"), ("content-length", "10")],
        &[],
        200,
        "ResponseTooLarge",
    )
    .await;
    check_not_stored(
        &[("cache-control", "max-age=60, no-store")],
        &[],
        200,
        "NoStore",
    )
    .await;
    check_not_stored(
        &[("cache-control", "max-age=60, private")],
        &[],
        200,
        "Private",
    )
    .await;
    check_not_stored(
        &[("cache-control", "max-age=60")],
        &[("authorization", "Bearer x")],
        200,
        "Authorization",
    )
    .await;
    // A redirect with only Last-Modified is not heuristically cacheable (RFC 9110 §15.1).
    check_not_stored(
        &[("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT")],
        &[],
        302,
        "NoFreshness",
    )
    .await;
    check_not_stored(
        &[("cache-control", "max-age=60"), ("vary", "*")],
        &[],
        200,
        "VaryAny",
    )
    .await;
    // No freshness at all: none is invented.
    check_not_stored(&[], &[], 200, "NoFreshness").await;
    check_not_stored(
        &[("cache-control", "max-age=60")],
        &[("cache-control", "no-store")],
        200,
        "RequestNoStore",
    )
    .await;
}

#[tokio::test]
async fn each_refusal_rule_counts_under_its_own_reason() {
    let origin = Origin::start(|parts, _| async move {
        if parts.uri.path() == "/private" {
            respond(200, &[("cache-control", "max-age=60, private")], "p")
        } else {
            respond(200, &[("cache-control", "max-age=60"), ("vary", "*")], "v")
        }
    })
    .await;
    let proxy = Proxy::start(&origin, cache_config()).await;
    for (path, reason) in [("/private", "Private"), ("/vary", "VaryAny")] {
        let got = get(&proxy.url(path)).await;
        assert!(
            got.ours().has_detail(reason),
            "{path}: {}",
            got.cache_status()
        );
    }
    let metrics = proxy.layer.render_metrics();
    for reason in ["Private", "VaryAny"] {
        assert!(
            metrics.contains(&format!(
                "larder_cache_not_stored_total{{reason=\"{reason}\"}} 1\n"
            )),
            "{metrics}"
        );
    }
    assert!(!metrics.contains("reason=\"OriginNotCache\""), "{metrics}");
}

#[tokio::test]
async fn chunked_response_over_the_size_limit_is_not_stored() {
    let origin = Origin::start(|_, _| async {
        let resp = respond(200, &[("cache-control", "max-age=60")], "");
        with_body(
            resp,
            slow_body(vec!["01234", "56789"], Duration::ZERO, false),
        )
    })
    .await;
    let mut config = cache_config();
    config.max_file_size = Some(7);
    let proxy = Proxy::start(&origin, config).await;
    assert_eq!(get(&proxy.url("/big")).await.text(), "0123456789");
    assert_eq!(get(&proxy.url("/big")).await.text(), "0123456789");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn authorization_with_public_is_stored() {
    let origin = Origin::start(|_, _| async {
        respond(200, &[("cache-control", "public, max-age=60")], "x")
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    send(
        Method::GET,
        &proxy.url("/auth"),
        &[("authorization", "Bearer x")],
    )
    .await;
    let hit = send(
        Method::GET,
        &proxy.url("/auth"),
        &[("authorization", "Bearer x")],
    )
    .await;
    assert!(hit.ours().hit);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn stale_entry_is_revalidated_with_etag_and_the_304_merged() {
    let origin = Origin::start(|parts, _| async move {
        if parts
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            respond(
                304,
                &[
                    ("cache-control", "max-age=60"),
                    ("etag", "\"v1\""),
                    ("x-new", "1"),
                ],
                "",
            )
        } else {
            respond(
                200,
                &[
                    ("cache-control", "max-age=0"),
                    ("etag", "\"v1\""),
                    ("x-old", "1"),
                ],
                "cached",
            )
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    assert_eq!(get(&proxy.url("/e")).await.text(), "cached");
    let revalidated = get(&proxy.url("/e")).await;
    assert_eq!(
        (revalidated.status.as_u16(), revalidated.text().as_str()),
        (200, "cached")
    );
    assert_eq!(origin.request(1).headers["if-none-match"], "\"v1\"");
    let cs = revalidated.ours();
    assert!(
        cs.is_fwd("stale") && cs.fwd_status == Some(304),
        "{}",
        revalidated.cache()
    );
    assert_eq!(revalidated.header("x-new"), Some("1"));
    assert_eq!(revalidated.header("x-old"), Some("1"));
    assert_eq!(revalidated.header("age"), Some("0"));
    // The merged max-age=60 made the entry fresh again.
    let hit = get(&proxy.url("/e")).await;
    assert!(hit.ours().hit, "{}", hit.cache_status());
    assert_eq!(hit.header("x-new"), Some("1"));
    assert_eq!(origin.hits(), 2);
    assert_eq!(proxy.layer.metrics().revalidated.get(), 1);
}

#[tokio::test]
async fn stale_entry_is_revalidated_with_last_modified() {
    let lm = "Wed, 21 Oct 2015 07:28:00 GMT";
    let origin = Origin::start(move |parts, _| async move {
        if parts
            .headers
            .get("if-modified-since")
            .is_some_and(|v| v == lm)
        {
            respond(304, &[("cache-control", "max-age=60")], "")
        } else {
            respond(
                200,
                &[("cache-control", "max-age=0"), ("last-modified", lm)],
                "lm-body",
            )
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    get(&proxy.url("/lm")).await;
    let revalidated = get(&proxy.url("/lm")).await;
    assert_eq!(revalidated.text(), "lm-body");
    assert!(revalidated.ours().fwd_status == Some(304));
    assert_eq!(origin.request(1).headers["if-modified-since"], lm);
    assert!(get(&proxy.url("/lm")).await.ours().hit);
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let origin = Origin::start(|_, n| async move {
        if n == 0 {
            // Already 100 s old, fresh for 1 s: stale on arrival, inside the SWR window.
            respond(
                200,
                &[
                    ("cache-control", "max-age=1, stale-while-revalidate=1000"),
                    ("age", "100"),
                ],
                "old",
            )
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            respond(200, &[("cache-control", "max-age=60")], "new")
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    assert_eq!(get(&proxy.url("/swr")).await.text(), "old");
    let start = std::time::Instant::now();
    for _ in 0..5 {
        let stale = get(&proxy.url("/swr")).await;
        assert_eq!(stale.text(), "old");
        let cs = stale.ours();
        assert!(
            cs.hit && cs.has_detail("stale-while-revalidate"),
            "{}",
            stale.cache()
        );
    }
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "stale answers do not wait"
    );
    // Wait for the background refresh; exactly one ran.
    for _ in 0..50 {
        if get(&proxy.url("/swr")).await.text() == "new" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fresh = get(&proxy.url("/swr")).await;
    assert_eq!(fresh.text(), "new");
    assert!(fresh.ours().hit);
    assert_eq!(origin.hits(), 2);
    assert_eq!(proxy.layer.metrics().background_refreshes.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_request_refreshes_nothing() {
    // RFC 9111 §5.2.1.5: nothing fetched for a request with no-store is stored, not even by
    // the stale-while-revalidate refresh or the 304 merge it causes.
    let origin = Origin::start(|req, n| async move {
        let path = req.uri.path().to_owned();
        if n < 2 {
            // Stale on arrival: /swr inside its stale-while-revalidate window, /etag not.
            let cc = if path == "/swr" {
                "max-age=1, stale-while-revalidate=1000"
            } else {
                "max-age=1"
            };
            respond(
                200,
                &[("cache-control", cc), ("age", "100"), ("etag", "\"v1\"")],
                "old",
            )
        } else if req.headers.contains_key("if-none-match") {
            respond(
                304,
                &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
                "",
            )
        } else {
            respond(200, &[("cache-control", "max-age=60")], "new")
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let no_store = [("cache-control", "no-store")];
    assert_eq!(get(&proxy.url("/swr")).await.text(), "old");
    assert_eq!(get(&proxy.url("/etag")).await.text(), "old");
    assert_eq!(origin.hits(), 2);

    // Stale within the window: answered stale, and no refresh starts for it.
    let stale = send(Method::GET, &proxy.url("/swr"), &no_store).await;
    assert_eq!(stale.text(), "old");
    assert!(stale.ours().has_detail("stale-while-revalidate"));
    assert_eq!(proxy.layer.metrics().background_refreshes.get(), 0);
    assert_eq!(origin.hits(), 2);

    // Stale without a window: revalidated upstream, the 304 refreshes nothing.
    let revalidated = send(Method::GET, &proxy.url("/etag"), &no_store).await;
    assert_eq!(revalidated.text(), "old");
    assert!(revalidated.ours().fwd_status == Some(304));
    assert_eq!(origin.hits(), 3);
    let again = get(&proxy.url("/etag")).await;
    assert!(again.ours().is_fwd("stale"), "{}", again.cache_status());
    assert_eq!(origin.hits(), 4, "the entry was still stale");

    // A request without no-store starts the refresh as usual.
    assert_eq!(get(&proxy.url("/swr")).await.text(), "old");
    assert_eq!(proxy.layer.metrics().background_refreshes.get(), 1);
}

async fn stale_if_error_case(age: &'static str) -> (Got, Origin) {
    let origin = Origin::start(move |_, n| async move {
        if n == 0 {
            respond(
                200,
                &[
                    ("cache-control", "max-age=1, stale-if-error=60"),
                    ("age", age),
                ],
                "stale",
            )
        } else {
            respond(503, &[], "down")
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    get(&proxy.url("/sie")).await;
    (get(&proxy.url("/sie")).await, origin)
}

#[tokio::test]
async fn stale_if_error_serves_stale_inside_the_window_and_the_error_after_it() {
    // 30 s old, fresh for 1 s: 29 s stale, inside the 60 s window.
    let (inside, origin) = stale_if_error_case("30").await;
    assert_eq!(
        (inside.status.as_u16(), inside.text().as_str()),
        (200, "stale")
    );
    let cs = inside.ours();
    assert!(
        cs.has_detail("stale-if-error") && cs.fwd_status == Some(503),
        "{}",
        inside.cache()
    );
    assert_eq!(origin.hits(), 2);
    // 100 s old: 99 s stale, past the window.
    let (after, _) = stale_if_error_case("100").await;
    assert_eq!(
        (after.status.as_u16(), after.text().as_str()),
        (503, "down")
    );
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_uri_and_same_host_locations() {
    let origin = Origin::start(|parts, _| async move {
        match (parts.method.as_str(), parts.uri.path()) {
            ("POST", "/other") => respond(
                201,
                &[
                    ("location", "/x"),
                    ("content-location", "http://elsewhere/y"),
                ],
                "",
            ),
            ("DELETE", _) => respond(500, &[], ""),
            ("GET" | "HEAD", _) => respond(200, &[("cache-control", "max-age=60")], "v"),
            _ => respond(204, &[], ""),
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let is_hit = |p: &'static str| {
        let url = proxy.url(p);
        async move { get(&url).await.ours().hit }
    };
    get(&proxy.url("/x")).await;
    assert!(is_hit("/x").await);
    send(Method::PUT, &proxy.url("/x"), &[]).await;
    assert!(!is_hit("/x").await, "PUT invalidated /x");
    assert!(is_hit("/x").await);
    send_body(
        Method::POST,
        &proxy.url("/other"),
        &[],
        Bytes::from_static(b"data"),
    )
    .await;
    assert!(!is_hit("/x").await, "Location: /x was invalidated");
    send(Method::DELETE, &proxy.url("/x"), &[]).await;
    assert!(is_hit("/x").await, "an error response invalidates nothing");
    assert_eq!(proxy.layer.metrics().invalidations.get(), 2);
}

#[tokio::test]
async fn upstream_failing_mid_body_errors_the_client_and_stores_nothing() {
    for content_length in [Some("20"), None] {
        let origin = Origin::start(move |_, n| async move {
            let mut headers = vec![("cache-control", "max-age=60")];
            if let Some(cl) = content_length {
                headers.push(("content-length", cl));
            }
            let resp = respond(200, &headers, "");
            with_body(resp, slow_body(vec!["0123456789"], Duration::ZERO, n == 0))
        })
        .await;
        let proxy = Proxy::cached(&origin).await;
        let broken = get(&proxy.url("/broken")).await;
        assert!(
            broken.body.is_err(),
            "{content_length:?}: the client saw a clean body"
        );
        let again = get(&proxy.url("/broken")).await;
        assert!(!again.ours().hit, "a truncated entry was served");
        assert_eq!(origin.hits(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_continues_when_the_client_disconnects() {
    let origin = Origin::start(|_, _| async {
        let resp = respond(200, &[("cache-control", "max-age=60")], "");
        with_body(
            resp,
            slow_body(vec!["a", "b", "c", "d"], Duration::from_millis(50), false),
        )
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let req = http::Request::get(proxy.url("/bail"))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let _ = body.frame().await;
    drop(body);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let hit = get(&proxy.url("/bail")).await;
    assert_eq!(hit.text(), "abcd");
    assert!(hit.ours().hit, "{}", hit.cache_status());
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn purge_removes_entries_with_the_right_token() {
    let origin =
        Origin::start(|_, _| async { respond(200, &[("cache-control", "max-age=60")], "p") }).await;
    let mut config = cache_config();
    config.purge_token = Some("s3cret".into());
    let proxy = Proxy::start(&origin, config).await;
    let purge = Method::from_bytes(PURGE.as_bytes()).unwrap();
    let auth = [("authorization", "Bearer s3cret")];
    get(&proxy.url("/p")).await;
    assert_eq!(
        send(
            purge.clone(),
            &proxy.url("/p"),
            &[("authorization", "Bearer bad")]
        )
        .await
        .status,
        401
    );
    assert_eq!(
        send(purge.clone(), &proxy.url("/p"), &auth).await.status,
        200
    );
    assert_eq!(
        send(purge.clone(), &proxy.url("/p"), &auth).await.status,
        404
    );
    assert!(!get(&proxy.url("/p")).await.ours().hit);
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let origin = Origin::start(|parts, _| async move {
        let lang = parts
            .headers
            .get("accept-language")
            .map_or("none", |v| v.to_str().unwrap())
            .to_owned();
        let mut resp = respond(
            200,
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
            "",
        );
        *resp.body_mut() = larder_proxy::body::full(lang);
        resp
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let lang = |l: Option<&'static str>| {
        let url = proxy.url("/v");
        async move {
            let headers: Vec<(&str, &str)> =
                l.map(|l| ("accept-language", l)).into_iter().collect();
            send(Method::GET, &url, &headers).await
        }
    };
    assert_eq!(lang(Some("en")).await.text(), "en");
    let fr = lang(Some("fr")).await;
    assert_eq!(fr.text(), "fr");
    assert!(fr.ours().is_fwd("vary-miss"), "{}", fr.cache_status());
    assert_eq!(lang(None).await.text(), "none");
    for (l, body) in [(Some("en"), "en"), (Some("fr"), "fr"), (None, "none")] {
        let got = lang(l).await;
        assert_eq!(got.text(), body);
        assert!(got.ours().hit);
    }
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn request_no_cache_revalidates_and_only_if_cached_gets_504() {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&seen);
    let origin = Origin::start(move |_, _| {
        s.fetch_add(1, Ordering::SeqCst);
        async {
            respond(
                200,
                &[("cache-control", "max-age=60"), ("etag", "\"a\"")],
                "x",
            )
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let miss = send(
        Method::GET,
        &proxy.url("/oic"),
        &[("cache-control", "only-if-cached")],
    )
    .await;
    assert_eq!(miss.status, 504);
    get(&proxy.url("/oic")).await;
    let no_cache = send(
        Method::GET,
        &proxy.url("/oic"),
        &[("cache-control", "no-cache")],
    )
    .await;
    assert!(
        no_cache.ours().is_fwd("request"),
        "{}",
        no_cache.cache_status()
    );
    assert_eq!(origin.request(1).headers["if-none-match"], "\"a\"");
    let cached = send(
        Method::GET,
        &proxy.url("/oic"),
        &[("cache-control", "only-if-cached")],
    )
    .await;
    assert!(cached.ours().hit);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

/// An origin that answers its first request with `first` (a raw HTTP/1.1 response) and then
/// closes every connection without answering, as a crashed origin would.
async fn closing_origin(first: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut answered = false;
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            if !answered {
                answered = true;
                let _ = stream.write_all(first.as_bytes()).await;
            }
        }
    });
    format!("http://{addr}")
}

async fn stale_after_disconnect(cache_control: &'static str) -> Got {
    let first: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncache-control: {cache_control}\r\nage: 100\r\n\
             content-length: 5\r\nconnection: close\r\n\r\nstale"
        )
        .into_boxed_str(),
    );
    let uri = closing_origin(first).await;
    let proxy = Proxy::to(&uri, cache_config()).await;
    assert_eq!(get(&proxy.url("/d")).await.text(), "stale");
    get(&proxy.url("/d")).await
}

#[tokio::test]
async fn stale_is_served_when_the_origin_drops_the_connection_unless_forbidden() {
    let served = stale_after_disconnect("max-age=1").await;
    assert_eq!(
        (served.status.as_u16(), served.text().as_str()),
        (200, "stale")
    );
    assert!(served.ours().is_fwd("stale"), "{}", served.cache_status());
    for forbidden in [
        "max-age=1, must-revalidate",
        "max-age=1, proxy-revalidate",
        "s-maxage=1",
    ] {
        let refused = stale_after_disconnect(forbidden).await;
        assert_eq!(refused.status, 502, "{forbidden}");
    }
}

#[tokio::test]
async fn post_response_naming_its_uri_answers_later_gets() {
    let origin = Origin::start(|parts, _| async move {
        if parts.method == Method::POST {
            let path = parts.uri.path().to_owned();
            let cl = if path == "/post" {
                "/post"
            } else {
                "/elsewhere"
            };
            respond(
                200,
                &[("cache-control", "max-age=60"), ("content-location", cl)],
                "posted",
            )
        } else {
            respond(200, &[], "fetched")
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let post = send_body(
        Method::POST,
        &proxy.url("/post"),
        &[],
        Bytes::from_static(b"f=1"),
    )
    .await;
    assert_eq!(post.text(), "posted");
    let hit = get(&proxy.url("/post")).await;
    assert_eq!(hit.text(), "posted");
    assert!(hit.ours().hit, "{}", hit.cache_status());
    // Content-Location naming another URI: not stored.
    send_body(
        Method::POST,
        &proxy.url("/other"),
        &[],
        Bytes::from_static(b"f=1"),
    )
    .await;
    assert_eq!(get(&proxy.url("/other")).await.text(), "fetched");
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn memory_storage_stays_within_its_size() {
    static KIB: &str = include_str!("kib.txt");
    let origin =
        Origin::start(|_, _| async { respond(200, &[("cache-control", "max-age=60")], KIB) }).await;
    for policy in [
        larder_proxy::config::EvictionPolicy::Lru,
        larder_proxy::config::EvictionPolicy::Tinyufo,
    ] {
        let config = larder_proxy::CacheConfig::in_memory(4 * 1024, policy);
        let proxy = Proxy::start(&origin, config).await;
        for i in 0..20 {
            assert_eq!(get(&proxy.url(&format!("/e{i}"))).await.text().len(), 1024);
        }
        // Victims are purged in a spawned task.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let metrics = proxy.layer.render_metrics();
        let value = |name: &str| -> u64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing in {metrics}"))
        };
        assert!(
            value("larder_cache_bytes") <= 4 * 1024 + 1024,
            "{policy:?}: {metrics}"
        );
        assert!(
            value("larder_cache_evictions_total") > 0,
            "{policy:?}: {metrics}"
        );
        let hits = (0..20).map(|i| proxy.url(&format!("/e{i}")));
        let mut served_from_cache = 0;
        for url in hits {
            if get(&url).await.ours().hit {
                served_from_cache += 1;
            }
        }
        assert!(
            served_from_cache <= 5,
            "{policy:?}: {served_from_cache} of 20 still cached"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_waiters_give_up_after_the_wait_timeout() {
    let origin = Origin::start(|_, n| async move {
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        respond(200, &[("cache-control", "max-age=60")], "slow")
    })
    .await;
    let config =
        cache_config().with_lock_timeouts(Duration::from_secs(5), Duration::from_millis(150));
    let proxy = Proxy::start(&origin, config).await;
    let writer = {
        let url = proxy.url("/wait");
        tokio::spawn(async move { get(&url).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiter = get(&proxy.url("/wait")).await;
    assert_eq!(waiter.text(), "slow");
    assert!(
        waiter.ours().has_detail("CacheLockTimeout"),
        "{}",
        waiter.cache_status()
    );
    assert_eq!(writer.await.unwrap().text(), "slow");
    assert_eq!(proxy.layer.metrics().lock_timeouts.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_lock_holder_does_not_leave_waiters_stuck() {
    let origin = Origin::start(|_, n| async move {
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            respond(502, &[], "bad")
        } else {
            respond(200, &[("cache-control", "max-age=60")], "good")
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let writer = {
        let url = proxy.url("/fail");
        tokio::spawn(async move { get(&url).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = std::time::Instant::now();
    let waiter = get(&proxy.url("/fail")).await;
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "the waiter was released early"
    );
    assert_eq!(writer.await.unwrap().status, 502);
    assert_eq!(waiter.text(), "good");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn predicted_uncacheable_key_fills_only_from_a_plain_get() {
    let origin = Origin::start(|_, n| async move {
        if n == 0 {
            respond(200, &[("cache-control", "no-store")], "a")
        } else {
            respond(
                200,
                &[("cache-control", "max-age=60"), ("content-length", "1")],
                "b",
            )
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    assert_eq!(get(&proxy.url("/pred")).await.text(), "a");
    // Predicted uncacheable: the HEAD goes upstream as a HEAD and its empty answer is not stored.
    let head = send(Method::HEAD, &proxy.url("/pred"), &[]).await;
    assert!(head.ours().is_fwd("bypass"), "{}", head.cache_status());
    assert_eq!(origin.request(1).method, Method::HEAD);
    let fill = get(&proxy.url("/pred")).await;
    assert_eq!(fill.text(), "b");
    assert!(fill.ours().is_stored(), "{}", fill.cache_status());
    let hit = get(&proxy.url("/pred")).await;
    assert_eq!(hit.text(), "b");
    assert!(hit.ours().hit);
    assert_eq!(origin.hits(), 3);
}
