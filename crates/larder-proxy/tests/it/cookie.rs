//! Responses that set a cookie, and fields withheld by `private="…"` / `no-cache="…"`, through
//! the real proxy: the stored copy never carries them, the client that caused the fill does.

use bytes::Bytes;
use http::Method;
use larder_proxy::{CacheConfig, SetCookiePolicy};

use larder_testkit::{Got, Origin, Proxy, cache_config, get, respond, send};

/// An origin whose `n`-th answer (from 0) is a 200 with `cache_control` (and
/// `CDN-Cache-Control: cdn` unless empty), `Set-Cookie: session=<n>`, `Set-Cookie2: v=<n>` and
/// the body `page <n>`.
async fn cookie_origin(cache_control: &'static str, cdn: &'static str) -> Origin {
    Origin::start(move |_, n| async move {
        let cookie = format!("session={n}; HttpOnly");
        let cookie2 = format!("v={n}");
        let mut headers = vec![
            ("cache-control", cache_control),
            ("set-cookie", cookie.as_str()),
            ("set-cookie2", cookie2.as_str()),
        ];
        if !cdn.is_empty() {
            headers.push(("cdn-cache-control", cdn));
        }
        respond(200, &headers, format!("page {n}"))
    })
    .await
}

fn assert_no_cookie(got: &Got, what: &str) {
    assert_eq!(
        got.header("set-cookie"),
        None,
        "{what}: {}",
        got.cache_status()
    );
    assert_eq!(
        got.header("set-cookie2"),
        None,
        "{what}: {}",
        got.cache_status()
    );
}

/// Two clients in turn; returns their answers.
async fn two_clients(proxy: &Proxy, path: &str) -> (Got, Got) {
    let first = get(&proxy.url(path)).await;
    let second = get(&proxy.url(path)).await;
    (first, second)
}

fn not_stored_metric(proxy: &Proxy, reason: &str) -> String {
    let metrics = proxy.layer.render_metrics();
    metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "larder_cache_not_stored_total{{reason=\"{reason}\"}}"
            ))
        })
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn set_cookie_without_shared_opt_in_is_not_stored_and_says_why() {
    for cache_control in ["max-age=60", "max-age=60, must-revalidate"] {
        let origin = cookie_origin(cache_control, "").await;
        let proxy = Proxy::cached(&origin).await;
        let (first, second) = two_clients(&proxy, "/login").await;
        for (got, n) in [(&first, 0), (&second, 1)] {
            assert_eq!(got.text(), format!("page {n}"), "{cache_control}");
            assert_eq!(
                got.header("set-cookie"),
                Some(format!("session={n}; HttpOnly").as_str()),
                "each client gets its own cookie"
            );
            assert!(
                got.ours().is_not_stored() && got.ours().has_detail("SetCookie"),
                "{cache_control}: {}",
                got.cache_status()
            );
        }
        assert_eq!(origin.hits(), 2, "{cache_control} was stored");
        assert_eq!(proxy.layer.metrics().not_stored_count("SetCookie"), 2);
        assert_eq!(
            not_stored_metric(&proxy, "SetCookie"),
            "larder_cache_not_stored_total{reason=\"SetCookie\"} 2"
        );
    }
}

#[tokio::test]
async fn opted_in_set_cookie_response_is_stored_without_the_cookie() {
    for (cache_control, cdn) in [
        ("public, max-age=60", ""),
        ("s-maxage=60", ""),
        ("max-age=60", "max-age=60"),
        // The targeted field alone governs a shared cache (RFC 9213).
        ("private, no-store", "max-age=60"),
        ("max-age=60, private=\"set-cookie, set-cookie2\"", ""),
        ("max-age=60, no-cache=\"Set-Cookie, Set-Cookie2\"", ""),
    ] {
        let what = format!("{cache_control} / {cdn}");
        let origin = cookie_origin(cache_control, cdn).await;
        let proxy = Proxy::cached(&origin).await;
        let (first, second) = two_clients(&proxy, "/home").await;
        assert_eq!(
            first.header("set-cookie"),
            Some("session=0; HttpOnly"),
            "{what}: the filling client keeps its cookie"
        );
        assert_eq!(first.header("set-cookie2"), Some("v=0"), "{what}");
        assert!(first.ours().is_stored(), "{what}");
        assert!(second.ours().hit, "{what}: {}", second.cache_status());
        assert_eq!(second.text(), "page 0", "{what}");
        assert_no_cookie(&second, &what);
        assert_eq!(origin.hits(), 1, "{what}");
        // HEAD and conditional hits come from the same stored copy.
        let head = send(Method::HEAD, &proxy.url("/home"), &[]).await;
        assert_no_cookie(&head, &what);
    }
}

#[tokio::test]
async fn configured_policy_never_and_strip() {
    let mut config = cache_config();
    config.set_cookie = SetCookiePolicy::Never;
    let origin = cookie_origin("public, max-age=60", "").await;
    let proxy = Proxy::start(&origin, config).await;
    let (first, second) = two_clients(&proxy, "/never").await;
    assert_eq!(first.header("set-cookie"), Some("session=0; HttpOnly"));
    assert_eq!(second.header("set-cookie"), Some("session=1; HttpOnly"));
    assert!(second.ours().has_detail("SetCookie"));
    assert_eq!(origin.hits(), 2, "never stored, even public");

    let mut config = cache_config();
    config.set_cookie = SetCookiePolicy::Strip;
    let origin = cookie_origin("max-age=60", "").await;
    let proxy = Proxy::start(&origin, config).await;
    let (first, second) = two_clients(&proxy, "/strip").await;
    assert_eq!(first.header("set-cookie"), Some("session=0; HttpOnly"));
    assert!(second.ours().hit);
    assert_no_cookie(&second, "strip");
    assert_eq!(origin.hits(), 1);
}

/// An origin answering its first request with `first_cc`, an `ETag` and cookie 0; later
/// conditional requests get a 304 with `later_cc` and cookie `n`, and unconditional ones a
/// 200 with `later_cc`, failing with 500 when `fail_later` is set.
async fn revalidating_origin(
    first_cc: &'static str,
    later_cc: &'static str,
    fail_later: bool,
) -> Origin {
    Origin::start(move |parts, n| async move {
        let cookie = format!("session={n}");
        if n == 0 {
            return respond(
                200,
                &[
                    ("cache-control", first_cc),
                    ("etag", "\"v1\""),
                    ("set-cookie", &cookie),
                ],
                "page 0",
            );
        }
        if fail_later {
            return respond(500, &[("set-cookie", &cookie)], "down");
        }
        let status = if parts.headers.contains_key("if-none-match") {
            304
        } else {
            200
        };
        respond(
            status,
            &[
                ("cache-control", later_cc),
                ("etag", "\"v1\""),
                ("set-cookie", &cookie),
            ],
            if status == 304 { "" } else { "page n" },
        )
    })
    .await
}

#[tokio::test]
async fn a_304_cookie_goes_to_its_client_and_never_into_the_stored_copy() {
    // The 304 opts in: the entry is refreshed, without the 304's cookie.
    let origin = revalidating_origin("public, max-age=0", "public, max-age=60", false).await;
    let proxy = Proxy::cached(&origin).await;
    let fill = get(&proxy.url("/r")).await;
    assert_eq!(fill.header("set-cookie"), Some("session=0"));
    let revalidated = get(&proxy.url("/r")).await;
    assert!(
        revalidated.ours().fwd_status == Some(304),
        "{}",
        revalidated.cache_status()
    );
    assert_eq!(revalidated.text(), "page 0");
    assert_eq!(
        revalidated.header("set-cookie"),
        Some("session=1"),
        "the client that revalidated gets the 304's cookie"
    );
    let hit = get(&proxy.url("/r")).await;
    assert!(hit.ours().hit, "{}", hit.cache_status());
    assert_eq!(hit.text(), "page 0");
    assert_no_cookie(&hit, "after a 304 with a cookie");
    assert_eq!(origin.hits(), 2);

    // The 304 does not opt in: nothing is refreshed, and the reason is given.
    let origin = revalidating_origin("public, max-age=0", "max-age=60", false).await;
    let proxy = Proxy::cached(&origin).await;
    let _ = get(&proxy.url("/r")).await;
    let revalidated = get(&proxy.url("/r")).await;
    assert_eq!(revalidated.text(), "page 0");
    assert_eq!(revalidated.header("set-cookie"), Some("session=1"));
    assert!(
        revalidated.ours().has_detail("SetCookie"),
        "{}",
        revalidated.cache_status()
    );
    let again = get(&proxy.url("/r")).await;
    assert_eq!(
        again.header("set-cookie"),
        Some("session=2"),
        "its own, from its 304"
    );
    assert_eq!(origin.hits(), 3, "the stale entry was not refreshed");
    assert_eq!(proxy.layer.metrics().not_stored_count("SetCookie"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_answers_come_from_the_stored_copy_without_the_cookie() {
    let origin = revalidating_origin(
        "public, max-age=0, stale-while-revalidate=60",
        "public, max-age=0, stale-while-revalidate=60",
        false,
    )
    .await;
    let proxy = Proxy::cached(&origin).await;
    let fill = get(&proxy.url("/swr")).await;
    assert_eq!(fill.header("set-cookie"), Some("session=0"));
    let stale = get(&proxy.url("/swr")).await;
    assert!(
        stale.ours().has_detail("stale-while-revalidate"),
        "{}",
        stale.cache_status()
    );
    assert_eq!(stale.text(), "page 0");
    assert_no_cookie(&stale, "stale-while-revalidate");

    let origin = revalidating_origin("public, max-age=0, stale-if-error=60", "", true).await;
    let proxy = Proxy::cached(&origin).await;
    let _ = get(&proxy.url("/sie")).await;
    let stale = get(&proxy.url("/sie")).await;
    assert!(
        stale.ours().has_detail("stale-if-error"),
        "{}",
        stale.cache_status()
    );
    assert_eq!(stale.text(), "page 0");
    assert_no_cookie(&stale, "stale-if-error");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn a_stored_post_answer_keeps_its_cookie_for_the_poster_only() {
    for (cache_control, stored) in [("public, max-age=60", true), ("max-age=60", false)] {
        let origin = Origin::start(move |parts, n| async move {
            let cookie = format!("session={n}");
            let body = format!("{} {n}", parts.method);
            respond(
                200,
                &[
                    ("cache-control", cache_control),
                    ("content-location", "/form"),
                    ("set-cookie", &cookie),
                ],
                body,
            )
        })
        .await;
        let proxy = Proxy::cached(&origin).await;
        let post = larder_testkit::send_body(
            Method::POST,
            &proxy.url("/form"),
            &[],
            Bytes::from_static(b"x=1"),
        )
        .await;
        assert_eq!(post.text(), "POST 0");
        assert_eq!(post.header("set-cookie"), Some("session=0"));
        let later = get(&proxy.url("/form")).await;
        if stored {
            assert_eq!(later.text(), "POST 0", "{cache_control}");
            assert_no_cookie(&later, cache_control);
        } else {
            assert_eq!(later.text(), "GET 1", "{cache_control} was stored");
            assert_eq!(later.header("set-cookie"), Some("session=1"));
        }
    }
}

#[tokio::test]
async fn qualified_private_and_no_cache_fields_reach_only_the_first_client() {
    let origin = Origin::start(|_, n| async move {
        let secret = format!("s{n}");
        respond(
            200,
            &[
                (
                    "cache-control",
                    "max-age=60, private=\"x-private\", no-cache=\"x-no-cache, x-other\"",
                ),
                ("x-private", &secret),
                ("x-no-cache", &secret),
                ("x-other", &secret),
                ("x-kept", "1"),
            ],
            format!("page {n}"),
        )
    })
    .await;
    let proxy = Proxy::cached(&origin).await;
    let (first, second) = two_clients(&proxy, "/q").await;
    for name in ["x-private", "x-no-cache", "x-other"] {
        assert_eq!(first.header(name), Some("s0"), "{name} to the first client");
        assert_eq!(second.header(name), None, "{name} was stored");
    }
    assert_eq!(second.header("x-kept"), Some("1"));
    assert!(second.ours().hit);
    assert_eq!(second.text(), "page 0");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn hooks_choose_the_policy_per_request() {
    use larder_proxy::{CacheHooks, Upstream};

    /// `never` under `/account/`, the configured policy elsewhere.
    struct AccountsNever;
    impl CacheHooks for AccountsNever {
        fn set_cookie_policy(
            &self,
            req: &http::request::Parts,
            _resp: &larder_cache::ResponseHeader,
            config: &CacheConfig,
        ) -> SetCookiePolicy {
            if req.uri.path().starts_with("/account/") {
                SetCookiePolicy::Never
            } else {
                config.set_cookie
            }
        }
    }

    let origin = cookie_origin("public, max-age=60", "").await;
    let upstream = Upstream::new(&origin.uri()).unwrap();
    let proxy = Proxy::with_hooks(upstream, cache_config(), AccountsNever).await;
    let url = |p: &str| proxy.url(p);
    let _ = get(&url("/account/me")).await;
    let again = get(&url("/account/me")).await;
    assert!(again.ours().has_detail("SetCookie"));
    let _ = get(&url("/news")).await;
    let hit = get(&url("/news")).await;
    assert!(hit.ours().hit);
    assert_no_cookie(&hit, "/news");
    assert_eq!(origin.hits(), 3);
}
