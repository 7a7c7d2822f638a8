//! The behaviours every transport and storage must show alike.

use std::time::{Duration, Instant};

use http::Method;
use larder_testkit::{Origin, cache_config, respond};

use crate::case::ours;
use crate::matrix;

const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

/// An origin answering every request with `max-age=60`, validators and a ten-byte body.
async fn fresh_origin() -> Origin {
    Origin::start(|_, _| async {
        respond(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("last-modified", LAST_MODIFIED),
                ("content-type", "text/plain"),
            ],
            "0123456789",
        )
    })
    .await
}

matrix! {
    /// A miss goes forward and is stored; the next request is a hit with the same body.
    async fn miss_then_hit(case: &Case) {
        let origin = fresh_origin().await;
        let proxy = case.proxy(&origin, cache_config()).await;
        let miss = case.get(&proxy.url("/a")).await;
        assert_eq!(miss.text(), "0123456789", "{case}");
        let m = ours(&miss);
        assert_eq!(m.name, "larder", "{case}: {}", miss.cache());
        assert!(m.is_fwd("uri-miss") && !m.hit, "{case}: {}", miss.cache());
        assert_eq!(m.stored, Some(true), "{case}: {}", miss.cache());
        case.settled(&proxy, 1).await;

        let hit = case.get(&proxy.url("/a")).await;
        assert_eq!(hit.text(), "0123456789", "{case}");
        let h = ours(&hit);
        assert!(h.hit && h.fwd.is_none(), "{case}: {}", hit.cache());
        assert!(h.ttl.is_some_and(|ttl| ttl > 0), "{case}: {}", hit.cache());
        assert_eq!(origin.hits(), 1, "{case}");
    }

    /// A stored response answers the client's own conditions with 304, without the origin.
    async fn conditional_304_from_a_hit(case: &Case) {
        let origin = fresh_origin().await;
        let proxy = case.proxy(&origin, cache_config()).await;
        case.get(&proxy.url("/c")).await;
        case.settled(&proxy, 1).await;

        let inm = case
            .send(Method::GET, &proxy.url("/c"), &[("if-none-match", "W/\"v1\"")])
            .await;
        assert_eq!(inm.status, 304, "{case}");
        assert_eq!(inm.bytes().as_ref(), b"", "{case}");
        assert_eq!(inm.header("etag"), Some("\"v1\""), "{case}");
        assert!(ours(&inm).hit, "{case}: {}", inm.cache());
        let ims = case
            .send(Method::GET, &proxy.url("/c"), &[("if-modified-since", LAST_MODIFIED)])
            .await;
        assert_eq!(ims.status, 304, "{case}");
        assert!(ours(&ims).hit, "{case}: {}", ims.cache());
        let other = case
            .send(Method::GET, &proxy.url("/c"), &[("if-none-match", "\"v2\"")])
            .await;
        assert_eq!((other.status.as_u16(), other.text().as_str()), (200, "0123456789"));
        assert_eq!(origin.hits(), 1, "{case}");
    }

    /// A stored response answers a range request with 206 and the range, without the origin.
    async fn range_206_from_a_hit(case: &Case) {
        let origin = fresh_origin().await;
        let proxy = case.proxy(&origin, cache_config()).await;
        case.get(&proxy.url("/r")).await;
        case.settled(&proxy, 1).await;

        let range = case
            .send(Method::GET, &proxy.url("/r"), &[("range", "bytes=2-4")])
            .await;
        assert_eq!((range.status.as_u16(), range.text().as_str()), (206, "234"), "{case}");
        assert_eq!(range.header("content-range"), Some("bytes 2-4/10"), "{case}");
        assert!(ours(&range).hit, "{case}: {}", range.cache());
        let suffix = case
            .send(Method::GET, &proxy.url("/r"), &[("range", "bytes=-3")])
            .await;
        assert_eq!((suffix.status.as_u16(), suffix.text().as_str()), (206, "789"), "{case}");
        assert_eq!(origin.hits(), 1, "{case}");
    }

    /// Inside `stale-while-revalidate`, stale answers come at once and one background refresh
    /// replaces the entry.
    async fn stale_while_revalidate(case: &Case) {
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
        let proxy = case.proxy(&origin, cache_config()).await;
        assert_eq!(case.get(&proxy.url("/swr")).await.text(), "old", "{case}");
        case.settled(&proxy, 1).await;

        let start = Instant::now();
        for _ in 0..3 {
            let stale = case.get(&proxy.url("/swr")).await;
            assert_eq!(stale.text(), "old", "{case}");
            let s = ours(&stale);
            assert!(s.hit, "{case}: {}", stale.cache());
            assert_eq!(s.detail.as_deref(), Some("stale-while-revalidate"), "{case}");
        }
        assert!(start.elapsed() < Duration::from_millis(300), "{case}: stale answers do not wait");
        // The refresh lands without another request asking for it.
        case.settled(&proxy, 2).await;
        let fresh = case.get(&proxy.url("/swr")).await;
        assert_eq!(fresh.text(), "new", "{case}");
        let f = ours(&fresh);
        assert!(f.hit && f.detail.is_none(), "{case}: {}", fresh.cache());
        assert_eq!(origin.hits(), 2, "{case}");
        assert_eq!(proxy.layer.metrics().background_refreshes.get(), 1, "{case}");
    }

    /// Inside `stale-if-error`, a stale entry replaces the origin's error; the origin was asked.
    async fn stale_if_error(case: &Case) {
        let origin = Origin::start(|_, n| async move {
            if n == 0 {
                // Already 30 s old, fresh for 1 s: stale on arrival, inside the SIE window.
                respond(
                    200,
                    &[("cache-control", "max-age=1, stale-if-error=60"), ("age", "30")],
                    "stale",
                )
            } else {
                respond(503, &[], "down")
            }
        })
        .await;
        let proxy = case.proxy(&origin, cache_config()).await;
        assert_eq!(case.get(&proxy.url("/sie")).await.text(), "stale", "{case}");
        case.settled(&proxy, 1).await;

        let got = case.get(&proxy.url("/sie")).await;
        assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "stale"), "{case}");
        let s = ours(&got);
        assert!(
            s.has_detail("stale-if-error") && s.fwd_status == Some(503),
            "{case}: {}",
            got.cache()
        );
        assert_eq!(origin.hits(), 2, "{case}");
    }

    /// PURGE with the configured token removes the entry; a wrong token is refused.
    async fn purge_with_token(case: &Case) {
        let origin = fresh_origin().await;
        let mut config = cache_config();
        config.purge_token = Some("s3cret".into());
        let proxy = case.proxy(&origin, config).await;
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let auth = [("authorization", "Bearer s3cret")];
        case.get(&proxy.url("/p")).await;
        case.settled(&proxy, 1).await;
        assert!(ours(&case.get(&proxy.url("/p")).await).hit, "{case}");

        let wrong = [("authorization", "Bearer bad")];
        let bad = case.send(purge.clone(), &proxy.url("/p"), &wrong).await;
        assert_eq!(bad.status, 401, "{case}");
        assert_eq!(case.send(purge.clone(), &proxy.url("/p"), &auth).await.status, 200, "{case}");
        assert_eq!(case.send(purge, &proxy.url("/p"), &auth).await.status, 404, "{case}");
        let after = case.get(&proxy.url("/p")).await;
        let a = ours(&after);
        assert!(!a.hit && a.is_fwd("uri-miss"), "{case}: {}", after.cache());
        assert_eq!(origin.hits(), 2, "{case}");
    }

    /// `Vary` keeps one entry per variant: a new variant is a vary-miss, each then hits.
    async fn vary_keeps_variants_apart(case: &Case) {
        let origin = Origin::start(|parts, _| async move {
            let lang = parts
                .headers
                .get("accept-language")
                .map_or("none", |v| v.to_str().unwrap())
                .to_owned();
            respond(200, &[("cache-control", "max-age=60"), ("vary", "Accept-Language")], lang)
        })
        .await;
        let proxy = case.proxy(&origin, cache_config()).await;
        let url = proxy.url("/v");
        let lang = |l: Option<&'static str>| {
            let headers: Vec<(&str, &str)> =
                l.map(|l| ("accept-language", l)).into_iter().collect();
            let url = url.clone();
            async move { case.send(Method::GET, &url, &headers).await }
        };
        assert_eq!(lang(Some("en")).await.text(), "en", "{case}");
        case.settled(&proxy, 1).await;
        let fr = lang(Some("fr")).await;
        assert_eq!(fr.text(), "fr", "{case}");
        assert!(ours(&fr).is_fwd("vary-miss"), "{case}: {}", fr.cache());
        case.settled(&proxy, 2).await;
        assert_eq!(lang(None).await.text(), "none", "{case}");
        case.settled(&proxy, 3).await;
        for (l, body) in [(Some("en"), "en"), (Some("fr"), "fr"), (None, "none")] {
            let got = lang(l).await;
            assert_eq!(got.text(), body, "{case}");
            assert!(ours(&got).hit, "{case}: {}", got.cache());
        }
        assert_eq!(origin.hits(), 3, "{case}");
    }
}
