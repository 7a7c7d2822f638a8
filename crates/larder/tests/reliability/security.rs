//! Scenario 5: responses never leak across clients or hosts, and hostile requests are refused.

use std::fmt::Write as _;
use std::time::Duration;

use http::Method;

use larder_testkit::{Origin, Proxy, get, raw, respond, send};

use crate::config;

/// An origin answering every path with `cache_control` and a body naming the request's
/// `Authorization` and `Host`.
async fn echo_origin(cache_control: &'static str) -> Origin {
    Origin::per_path(move |parts, n| async move {
        let field = |name: &str| larder_testkit::field(&parts, name);
        let body = format!(
            "auth={} host={} xfh={} n={n}",
            field("authorization"),
            field("host"),
            field("x-forwarded-host")
        );
        respond(200, &[("cache-control", cache_control)], body)
    })
    .await
}

/// Whether a response to a request with `Authorization` is served to a client without it.
async fn shared_after_authorized(cache_control: &'static str) -> bool {
    let origin = echo_origin(cache_control).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/account");
    let with = send(Method::GET, &url, &[("authorization", "Bearer alice")]).await;
    assert!(with.text().starts_with("auth=Bearer alice"));
    let without = get(&url).await;
    let shared = without.text().contains("alice");
    assert_eq!(shared, origin.hits() == 1);
    shared
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_responses_are_shared_only_when_the_origin_allows() {
    // RFC 9111 §3.5.
    assert!(!shared_after_authorized("max-age=60").await);
    assert!(shared_after_authorized("public, max-age=60").await);
    assert!(shared_after_authorized("s-maxage=60").await);
    assert!(shared_after_authorized("max-age=60, must-revalidate").await);
    assert!(!shared_after_authorized("private, max-age=60").await);
    assert!(!shared_after_authorized("no-store, public, max-age=60").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_responses_are_never_stored() {
    let origin = echo_origin("private, max-age=60").await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    for _ in 0..3 {
        let r = get(&proxy.url("/me")).await;
        assert!(!r.ours().hit, "{}", r.cache_status());
    }
    assert_eq!(origin.hits(), 3);
}

/// What the second of two clients gets for a response that sets `session=<n>` with
/// `cache_control`: its `Set-Cookie`, `Cache-Status` and the origin's fetch count. With
/// `at_once` both requests are in flight together while the origin takes 200 ms to answer the
/// first (the second waits on the cache lock or reads the fill in progress).
async fn second_client(
    cache_control: &'static str,
    at_once: bool,
) -> (Option<String>, String, usize) {
    let origin = Origin::per_path(move |_, n| async move {
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        respond(
            200,
            &[
                ("cache-control", cache_control),
                ("set-cookie", &format!("session={n}; HttpOnly")),
            ],
            format!("page {n}"),
        )
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/login");
    let (first, second) = if at_once {
        let first = tokio::spawn({
            let url = url.clone();
            async move { get(&url).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = get(&url).await;
        (first.await.unwrap(), second)
    } else {
        let first = get(&url).await;
        (first, get(&url).await)
    };
    assert_eq!(
        first.header("set-cookie"),
        Some("session=0; HttpOnly"),
        "the client that caused the fetch gets its cookie"
    );
    let cookie = second.header("set-cookie").map(str::to_owned);
    (cookie, second.cache_status().to_owned(), origin.hits())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookies_are_never_handed_to_the_next_client() {
    for at_once in [false, true] {
        // No shared-cache opt-in: not stored, each client gets its own session.
        for cc in ["max-age=60", "max-age=60, must-revalidate"] {
            let (cookie, status, hits) = second_client(cc, at_once).await;
            println!("set-cookie {cc:?} at_once={at_once}: {cookie:?}, {status}, {hits} fetches");
            assert_eq!(
                cookie.as_deref(),
                Some("session=1; HttpOnly"),
                "{cc}: {status}"
            );
            // A waiter on the cache lock is told the fill was not stored and goes upstream.
            let reason = if at_once {
                "CacheLockGiveUp"
            } else {
                "SetCookie"
            };
            assert!(
                status.contains(&format!("detail={reason}")),
                "{cc}: {status}"
            );
            assert_eq!(hits, 2, "{cc}");
        }
        // The origin opts in: stored and shared, without the cookie.
        for cc in ["public, max-age=60", "s-maxage=60"] {
            let (cookie, status, hits) = second_client(cc, at_once).await;
            println!("set-cookie {cc:?} at_once={at_once}: {cookie:?}, {status}, {hits} fetches");
            assert_eq!(
                cookie, None,
                "{cc}: another client's session was replayed ({status})"
            );
            assert_eq!(hits, 1, "{cc}: {status}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_and_private_named_fields_are_not_replayed() {
    // `no-cache="set-cookie"` (RFC 9111 §5.2.2.4) and `private="set-cookie"` (§5.2.2.7): the
    // named field is withheld from stored responses and the rest is shared.
    for cc in [
        "max-age=60, no-cache=\"set-cookie\"",
        "max-age=60, private=\"set-cookie\"",
    ] {
        let (cookie, status, hits) = second_client(cc, false).await;
        println!("{cc}: {cookie:?}, {status}, {hits} fetches");
        assert!(status.contains("hit"), "{cc}: {status}");
        assert_eq!(cookie, None, "{cc}: a withheld field was served");
        assert_eq!(hits, 1, "{cc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_part_of_the_key() {
    let origin = echo_origin("public, max-age=60").await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/same");
    let a = send(Method::GET, &url, &[("host", "a.example")]).await;
    let b = send(Method::GET, &url, &[("host", "b.example")]).await;
    assert!(a.text().contains("host=a.example"), "{}", a.text());
    assert!(b.text().contains("host=b.example"), "{}", b.text());
    let a2 = send(Method::GET, &url, &[("host", "A.EXAMPLE")]).await;
    assert_eq!(a2.text(), a.text(), "host names are case-insensitive");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unkeyed_headers_cannot_change_a_cached_body() {
    let origin = echo_origin("public, max-age=60").await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/page");
    let clean = send(Method::GET, &url, &[("host", "site.example")]).await;
    for (name, value) in [
        ("x-forwarded-host", "evil.example"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-forwarded-proto", "gopher"),
        ("x-forwarded-scheme", "http"),
        ("x-forwarded-port", "1"),
        ("x-http-method-override", "DELETE"),
        ("forwarded", "host=evil.example"),
    ] {
        let r = send(
            Method::GET,
            &url,
            &[("host", "site.example"), (name, value)],
        )
        .await;
        assert_eq!(r.text(), clean.text(), "{name} changed the cached body");
        assert!(r.ours().hit);
    }
    assert_eq!(origin.hits(), 1);
    // On a miss the proxy forwards end-to-end request fields as they are (the origin must not
    // reflect unkeyed fields into cacheable responses).
    let r = send(
        Method::GET,
        &proxy.url("/other"),
        &[("x-forwarded-host", "evil.example")],
    )
    .await;
    assert!(r.text().contains("xfh=evil.example"));
    assert!(
        origin
            .last_request()
            .headers
            .contains_key("x-forwarded-host")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_fields_are_stripped() {
    let origin = Origin::per_path(|_, _| async {
        respond(
            200,
            &[
                ("cache-control", "no-store"),
                ("connection", "x-origin-secret"),
                ("x-origin-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authenticate", "Basic"),
                ("x-end-to-end", "1"),
            ],
            "ok",
        )
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let r = send(
        Method::GET,
        &proxy.url("/h"),
        &[
            ("connection", "x-client-secret"),
            ("x-client-secret", "1"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("te", "trailers"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "websocket"),
            ("x-end-to-end", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = origin.last_request().headers;
    for name in [
        "x-client-secret",
        "proxy-authorization",
        "te",
        "keep-alive",
        "upgrade",
    ] {
        assert!(!seen.contains_key(name), "{name} was forwarded upstream");
    }
    assert!(seen.contains_key("x-end-to-end"));
    for name in ["x-origin-secret", "keep-alive", "proxy-authenticate"] {
        assert!(
            !r.headers.contains_key(name),
            "{name} was forwarded downstream"
        );
    }
    assert!(r.headers.contains_key("x-end-to-end"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_needs_the_token() {
    let origin = echo_origin("public, max-age=60").await;
    let mut cfg = config(Duration::from_secs(2));
    cfg.purge_token = Some("s3cret".to_owned());
    let proxy = Proxy::start(&origin, cfg).await;
    let url = proxy.url("/p");
    let _ = get(&url).await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    for (auth, expect) in [
        (None, 401),
        (Some("Bearer wrong"), 401),
        (Some("Basic s3cret"), 401),
        (Some("Bearer s3cret "), 200),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = send(purge.clone(), &url, &headers).await;
        assert_eq!(r.status, expect, "{auth:?}");
        if expect == 401 {
            assert!(get(&url).await.ours().hit, "still cached");
        }
    }
    assert_eq!(origin.hits(), 1);
    assert!(!get(&url).await.ours().hit);

    // Without a configured token PURGE is refused outright.
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let r = send(
        purge,
        &proxy.url("/p"),
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests_are_refused() {
    let origin = echo_origin("public, max-age=60").await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let addr = proxy.addr;
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        write!(many, "X-H{i}: v\r\n").unwrap();
    }
    many.push_str("\r\n");
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("100 KiB header", huge.into_bytes(), &[431]),
        ("200 header fields", many.into_bytes(), &[431]),
        (
            "garbage request line",
            b"\x00\x01\x02 nonsense\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "bad header name",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "bad version",
            b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            &[400, 505],
        ),
        (
            "DEL in a value",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "two content-lengths",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
            &[400],
        ),
    ];
    for (what, bytes, expect) in cases {
        let code = raw::first_status(&raw::exchange(addr, &bytes).await);
        println!("raw {what}: {code}");
        assert!(
            expect.contains(&code),
            "{what}: got {code}, expected {expect:?}"
        );
    }
    // The proxy still serves after all of that.
    assert_eq!(get(&proxy.url("/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_or_no_store_in_any_cache_control_line_is_honoured() {
    // An origin (or a framework adding its own line) may send Cache-Control twice; a `private`
    // or `no-store` in either line keeps a per-user answer out of the shared cache.
    for (first, second) in [
        ("public, max-age=60", "private"),
        ("private", "public, max-age=60"),
        ("public, max-age=60", "no-store"),
        ("max-age=60", "PRIVATE"),
    ] {
        let origin = Origin::per_path(move |_, n| async move {
            let mut resp = respond(200, &[("cache-control", first)], format!("user {n}"));
            resp.headers_mut()
                .append("cache-control", http::HeaderValue::from_static(second));
            resp
        })
        .await;
        let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
        let _ = get(&proxy.url("/me")).await;
        let other = get(&proxy.url("/me")).await;
        assert_eq!(other.text(), "user 1", "{first:?} + {second:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_responses_with_a_targeted_field_follow_the_same_rule() {
    // RFC 9213: CDN-Cache-Control replaces Cache-Control for this cache, RFC 9111 §3.5 still
    // asks for public, s-maxage or must-revalidate before an answer to an authorized request
    // is shared.
    for (cdn, cc, shared) in [
        ("max-age=60", "no-store", false),
        ("max-age=60", "public, max-age=60", false),
        ("public, max-age=60", "private", true),
        ("s-maxage=60", "no-store", true),
        ("private", "public, max-age=60", false),
    ] {
        let origin = Origin::per_path(move |parts, _| async move {
            let auth = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            respond(
                200,
                &[("cdn-cache-control", cdn), ("cache-control", cc)],
                format!("auth={auth}"),
            )
        })
        .await;
        let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
        let url = proxy.url("/account");
        let _ = send(Method::GET, &url, &[("authorization", "Bearer alice")]).await;
        let without = get(&url).await;
        println!("cdn {cdn:?} cc {cc:?}: {}", without.text());
        assert_eq!(without.text().contains("alice"), shared, "{cdn:?} / {cc:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapsed_requests_never_get_another_clients_answer() {
    // Request collapsing: concurrent requests for one cold key wait on the first one's fill
    // (the cache lock). A waiter must not be handed an answer that was not for it: not another
    // Vary variant, and not an answer that may not be shared at all.
    for cc in ["public, max-age=60", "private, max-age=60", "no-store"] {
        let origin = Origin::per_path(move |parts, _| async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let user = parts
                .headers
                .get("cookie")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            // The shareable answer varies on Cookie; the others name a field no request has,
            // so all requests are one variant and only the answer's own rule keeps it apart.
            let vary = if cc.starts_with("public") {
                "cookie"
            } else {
                "x-none"
            };
            respond(
                200,
                &[("cache-control", cc), ("vary", vary)],
                format!("for {user}"),
            )
        })
        .await;
        let proxy = Proxy::start(&origin, config(Duration::from_secs(5))).await;
        let url = proxy.url("/collapsed");
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let url = url.clone();
                tokio::spawn(async move {
                    let cookie = format!("user={i}");
                    let r = send(Method::GET, &url, &[("cookie", &cookie)]).await;
                    (cookie, r.text(), r.cache_status().to_owned())
                })
            })
            .collect();
        for t in tasks {
            let (cookie, text, status) = t.await.unwrap();
            assert_eq!(text, format!("for {cookie}"), "{cc}: {status}");
        }
        println!("{cc}: 10 concurrent clients, {} fetches", origin.hits());
        assert_eq!(origin.hits(), 10, "{cc}");
    }
}
