//! Request-target forms (RFC 9112 §3.2) over real sockets: what is refused before the origin
//! sees it, what is forwarded, and what the odd targets and `Location` values of the answers
//! invalidate.

use http::Method;

use larder_testkit::{Origin, Proxy, get, raw, respond, send};

/// An origin answering every request with 201 and a relative `Location`, as a POST handler
/// does: the shape that panicked the invalidation of an authority-form request.
async fn origin_with_relative_location() -> Origin {
    Origin::start(|_, _| async {
        respond(
            201,
            &[
                ("location", "c"),
                ("content-location", "?q"),
                ("cache-control", "max-age=60"),
            ],
            "made",
        )
    })
    .await
}

#[tokio::test]
async fn connect_is_refused_with_405_and_never_forwarded() {
    let origin = origin_with_relative_location().await;
    let proxy = Proxy::cached(&origin).await;
    for target in ["a.test:443", "/a", "http://a.test/a", "*"] {
        let text = raw::until_close(
            proxy.addr,
            &format!("CONNECT {target} HTTP/1.1\r\nHost: a.test:443\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 405"), "{target}: {text}");
        let allow = raw::head_field(&text, "allow").unwrap_or_default();
        assert!(
            allow.contains("get") && !allow.contains("connect"),
            "{text}"
        );
        assert_eq!(
            raw::head_field(&text, "cache-control").as_deref(),
            Some("private, no-store")
        );
        assert_eq!(
            raw::head_field(&text, "content-length").as_deref(),
            Some("0")
        );
        let status = raw::head_field(&text, "cache-status").unwrap_or_default();
        assert!(status.contains("detail=connect-not-supported"), "{text}");
    }
    assert_eq!(origin.hits(), 0);
    // Counted as responses served, and as nothing else: no lookup, no bypass, no fetch.
    let metrics = proxy.layer.metrics();
    assert_eq!(metrics.requests.get(), 4);
    assert_eq!(metrics.bypass.get() + metrics.misses.get(), 0);
    // The proxy keeps serving.
    assert_eq!(get(&proxy.url("/x")).await.text(), "made");
}

/// `POST host:port` answered 2xx with a relative `Location` panicked the connection in the
/// invalidation code (a relative reference against an empty path).
#[tokio::test]
async fn authority_form_post_is_refused_with_400() {
    let origin = origin_with_relative_location().await;
    let proxy = Proxy::cached(&origin).await;
    for method in ["POST", "GET", "PUT", "DELETE", "OPTIONS", "PURGE", "FOO"] {
        let text = raw::until_close(
            proxy.addr,
            &format!(
                "{method} a.test:80 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 400"), "{method}: {text}");
        let status = raw::head_field(&text, "cache-status").unwrap_or_default();
        assert!(status.contains("detail=authority-form"), "{text}");
        assert_eq!(
            raw::head_field(&text, "cache-control").as_deref(),
            Some("private, no-store")
        );
    }
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn asterisk_form_is_forwarded_for_options_only() {
    let origin =
        Origin::start(|_, _| async { respond(200, &[("cache-control", "max-age=60")], "opts") })
            .await;
    let proxy = Proxy::cached(&origin).await;
    for _ in 0..2 {
        let text = raw::until_close(
            proxy.addr,
            "OPTIONS * HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("opts"), "{text}");
    }
    // Forwarded as `OPTIONS *` both times: never cached.
    assert_eq!(origin.hits(), 2);
    let seen = origin.request(0);
    assert_eq!(
        (seen.method, seen.uri.to_string()),
        (Method::OPTIONS, "*".to_owned())
    );
    for method in ["GET", "HEAD", "POST", "DELETE", "PURGE"] {
        let text = raw::until_close(
            proxy.addr,
            &format!("{method} * HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 400"), "{method}: {text}");
        let status = raw::head_field(&text, "cache-status").unwrap_or_default();
        assert!(status.contains("detail=asterisk-form"), "{text}");
    }
    assert_eq!(origin.hits(), 2);
}

/// An absolute-form target is keyed like its origin-form twin with that `Host`, and sent to
/// the origin in origin-form, `/` included when the target has no path.
#[tokio::test]
async fn absolute_form_shares_the_origin_form_entry() {
    let origin = Origin::start(|parts, n| async move {
        respond(
            200,
            &[("cache-control", "max-age=60")],
            if parts.uri.query().is_some() {
                ["q0", "q1"][n.min(1)]
            } else {
                "p"
            },
        )
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let text = raw::until_close(
        proxy.addr,
        "GET http://a.test?q=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("q0"),
        "{text}"
    );
    assert_eq!(origin.request(0).uri.to_string(), "/?q=1");
    // The origin-form twin is a hit.
    let got = send(Method::GET, &proxy.url("/?q=1"), &[("host", "a.test")]).await;
    assert_eq!(got.text(), "q0");
    assert!(got.ours().hit, "{}", got.cache_status());
    assert_eq!(origin.hits(), 1);
    // Userinfo in the target is an error (RFC 9110 §4.2.4), and so is a scheme not http(s).
    for target in ["http://u@a.test/p", "ftp://a.test/p"] {
        let text = raw::until_close(
            proxy.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 400"), "{target}: {text}");
    }
    assert_eq!(origin.hits(), 1);
}

/// Relative `Location` / `Content-Location` values are resolved as RFC 3986 §5.2 says before
/// they invalidate: `../c` from `/a/b` is `/c` (it was `/a/../c`, which named no entry), and
/// `?q` is `/a/b?q` (it was `/a/?q`).
#[tokio::test]
async fn relative_locations_invalidate_what_they_name() {
    let origin = Origin::start(|parts, n| async move {
        if parts.method == Method::POST {
            respond(
                201,
                &[("location", "../c#top"), ("content-location", "?q")],
                "made",
            )
        } else {
            respond(
                200,
                &[("cache-control", "max-age=60")],
                ["v0", "v1", "v2", "v3", "v4"][n.min(4)],
            )
        }
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let c = get(&proxy.url("/c")).await.text();
    let q = get(&proxy.url("/a/b?q")).await.text();
    assert_eq!(get(&proxy.url("/c")).await.text(), c);
    assert_eq!(get(&proxy.url("/a/b?q")).await.text(), q);
    assert_eq!(origin.hits(), 2);
    let post = send(Method::POST, &proxy.url("/a/b"), &[]).await;
    assert_eq!(post.status, 201);
    assert_ne!(
        get(&proxy.url("/c")).await.text(),
        c,
        "/c was not invalidated"
    );
    assert_ne!(
        get(&proxy.url("/a/b?q")).await.text(),
        q,
        "/a/b?q was not invalidated"
    );
}
