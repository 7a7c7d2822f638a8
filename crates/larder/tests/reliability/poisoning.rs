//! Web cache poisoning, deception and key confusion (docs/security.md): what the key is made
//! of, what reaches the origin, and what a second client gets.

use std::time::Duration;

use bytes::Bytes;
use http::Method;

use crate::harness::{Origin, Proxy, config, raw_exchange, respond, responses, send, statuses};

/// An origin answering every request with `headers` and a body naming what it received: the
/// `Host`, the target, a few unkeyed fields, the body, and how many requests for the path came
/// before.
async fn reflecting_origin(headers: &'static [(&'static str, &'static str)]) -> Origin {
    Origin::start_with_body(move |parts, body: Bytes, n| async move {
        let field = |name: &str| crate::harness::field(&parts, name);
        let text = format!(
            "host={} target={} xfh={} xfp={} body={} n={n}",
            field("host"),
            parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            field("x-forwarded-host"),
            field("x-forwarded-proto"),
            String::from_utf8_lossy(&body),
        );
        respond(200, headers, text)
    })
    .await
}

const PUBLIC: &[(&str, &str)] = &[("cache-control", "public, max-age=60")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_byte_is_part_of_the_key() {
    let origin = reflecting_origin(PUBLIC).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    // No parameter is unkeyed: each distinct query is its own entry, so a parameter the origin
    // reads (even one a client calls "cosmetic" or hides behind `;`) is always in the key.
    let targets = [
        "/q?a=1",
        "/q?a=1&utm_source=x",
        "/q?a=1;callback=evil",
        "/q?A=1",
        "/q?a=%31",
        "/q?a=1&a=2",
        "/q",
        "/q?",
    ];
    for t in targets {
        let r = send(Method::GET, &proxy.url(t), &[]).await;
        assert!(
            r.text().contains(&format!("target={t} ")),
            "{t}: {}",
            r.text()
        );
    }
    assert_eq!(origin.hits(), targets.len());
    for t in targets {
        let r = send(Method::GET, &proxy.url(t), &[]).await;
        assert!(
            r.cache_status().contains("hit"),
            "{t}: {}",
            r.cache_status()
        );
        assert!(
            r.text().contains(&format!("target={t} ")),
            "{t}: {}",
            r.text()
        );
    }
    assert_eq!(origin.hits(), targets.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fat_get_bodies_bypass_the_cache() {
    let origin = reflecting_origin(PUBLIC).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let fat = b"GET /fat HTTP/1.1\r\nHost: site.example\r\nContent-Length: 8\r\n\
                Connection: close\r\n\r\nx=poison";
    let first = raw_exchange(proxy.addr, fat).await;
    assert_eq!(statuses(&first), [200], "{first}");
    assert_eq!(origin.last_body(), "x=poison");
    let victim = send(Method::GET, &proxy.url("/fat"), &[("host", "site.example")]).await;
    println!(
        "fat GET: victim got {:?} ({})",
        victim.text(),
        victim.cache_status()
    );
    // The body reached the origin, but the answer to a GET with a body is neither stored nor
    // served from the cache: the key does not cover the body.
    assert!(
        first.to_ascii_lowercase().contains("detail=requestbody"),
        "{first}"
    );
    assert!(
        !victim.cache_status().contains("hit"),
        "{}",
        victim.cache_status()
    );
    assert!(!victim.text().contains("poison"), "{}", victim.text());
    assert!(
        victim.cache_status().contains("stored"),
        "{}",
        victim.cache_status()
    );
    // And a GET with a body is not answered from the entry the victim's request stored.
    let again = raw_exchange(proxy.addr, fat).await;
    assert!(again.contains("body=x=poison"), "{again}");
    assert_eq!(origin.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflected_unkeyed_fields_poison_only_without_vary() {
    // Without Vary, an origin that reflects X-Forwarded-Host into a cacheable answer poisons
    // its own entry on a miss: larder forwards the field and does not key on it (documented).
    let origin = reflecting_origin(PUBLIC).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/reflect");
    let evil = send(Method::GET, &url, &[("x-forwarded-host", "evil.example")]).await;
    assert!(evil.text().contains("xfh=evil.example"));
    let victim = send(Method::GET, &url, &[]).await;
    assert!(
        victim.text().contains("xfh=evil.example"),
        "{}",
        victim.text()
    );

    // With `Vary: X-Forwarded-Host` each value (and its absence) is a variant of its own.
    let origin = reflecting_origin(&[
        ("cache-control", "public, max-age=60"),
        ("vary", "X-Forwarded-Host"),
    ])
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/reflect");
    let evil = send(Method::GET, &url, &[("x-forwarded-host", "evil.example")]).await;
    assert!(evil.text().contains("xfh=evil.example"));
    let victim = send(Method::GET, &url, &[]).await;
    assert!(victim.text().contains("xfh=- "), "{}", victim.text());
    let evil_again = send(Method::GET, &url, &[("x-forwarded-host", "evil.example")]).await;
    assert!(evil_again.cache_status().contains("hit"));
    let victim_again = send(Method::GET, &url, &[]).await;
    assert!(victim_again.cache_status().contains("hit"));
    assert!(victim_again.text().contains("xfh=- "));
    assert_eq!(origin.hits(), 2);

    // `Vary: *` is never served from the cache.
    let origin = reflecting_origin(&[("cache-control", "public, max-age=60"), ("vary", "*")]).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    for _ in 0..2 {
        let r = send(Method::GET, &proxy.url("/star"), &[]).await;
        assert!(!r.cache_status().contains("hit"), "{}", r.cache_status());
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_target_decides_the_host_sent_upstream() {
    let origin = reflecting_origin(PUBLIC).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    // The key takes the authority of an absolute-form target (RFC 9112 §3.2.2), so the origin
    // must be asked for that host too, whatever Host says.
    let req = b"GET http://victim.example/abs HTTP/1.1\r\nHost: evil.example\r\n\
                Connection: close\r\n\r\n";
    let first = raw_exchange(proxy.addr, req).await;
    assert_eq!(statuses(&first), [200], "{first}");
    let upstream_host = origin.last_request().headers.get("host").cloned();
    println!("absolute-form: origin saw Host {upstream_host:?}");
    assert_eq!(
        upstream_host.as_ref().and_then(|h| h.to_str().ok()),
        Some("victim.example")
    );
    let victim = send(
        Method::GET,
        &proxy.url("/abs"),
        &[("host", "victim.example")],
    )
    .await;
    assert!(victim.cache_status().contains("hit"));
    assert!(
        victim.text().contains("host=victim.example "),
        "{}",
        victim.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_host_fields_cannot_split_key_and_origin() {
    let origin = reflecting_origin(PUBLIC).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let req = b"GET /dup HTTP/1.1\r\nHost: victim.example\r\nHost: evil.example\r\n\
                Connection: close\r\n\r\n";
    let first = raw_exchange(proxy.addr, req).await;
    let codes = statuses(&first);
    println!(
        "two Host fields: {codes:?}, origin fetches {}, body {:?}",
        origin.hits(),
        responses(&first).first().map(|r| r.body.clone())
    );
    // RFC 9112 §3.2: two Host fields are refused before anything is keyed or forwarded.
    assert_eq!(codes, [400], "{first}");
    assert!(first.contains("detail=duplicate-host"), "{first}");
    assert_eq!(origin.hits(), 0);
    let victim = send(
        Method::GET,
        &proxy.url("/dup"),
        &[("host", "victim.example")],
    )
    .await;
    assert!(!victim.text().contains("evil"), "{}", victim.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_variants_never_share_another_hosts_entry() {
    let origin = reflecting_origin(PUBLIC).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/h");
    // Case folds into one entry; a port, a trailing dot or another name is its own entry, and
    // each entry holds the answer to exactly the Host it is keyed on.
    let hosts = [
        ("a.example", 1),
        ("A.Example", 1),
        ("a.example:80", 2),
        ("a.example.", 3),
        ("xn--a-example", 4),
        ("a.example:8080", 5),
    ];
    for (host, fetches) in hosts {
        let r = send(Method::GET, &url, &[("host", host)]).await;
        let stored = r
            .text()
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_start_matches("host=")
            .to_owned();
        assert!(stored.eq_ignore_ascii_case(host), "{host}: {}", r.text());
        assert_eq!(origin.hits(), fetches, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_keyed_and_forwarded_verbatim() {
    let origin = reflecting_origin(PUBLIC).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    // No normalisation: each spelling is its own key, and the origin gets exactly the bytes
    // the key was made of (so the origin's reading of `..`, `%2f` or `;` is the only one).
    let paths = [
        "/a/b",
        "/a%2Fb",
        "/a%2fb",
        "/a/./b",
        "/a/../a/b",
        "/a;x/b",
        "/a/b.",
        "/A/b",
        "/a//b",
    ];
    for p in paths {
        let r = send(Method::GET, &proxy.url(p), &[]).await;
        assert!(
            r.text().contains(&format!("target={p} ")),
            "{p}: {}",
            r.text()
        );
    }
    assert_eq!(origin.targets(), paths);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cacheability_never_comes_from_the_extension() {
    // A dynamic page as many frameworks send it: no Cache-Control, no Last-Modified, a body
    // naming the user (from Cookie). Static-looking paths that the origin routes to the page
    // (web cache deception) must not be stored, whatever their extension.
    let origin = Origin::start(|parts, n| async move {
        let user = parts
            .headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("anonymous")
            .to_owned();
        respond(
            200,
            &[("content-type", "text/html")],
            format!("account of {user} ({n})"),
        )
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let paths = [
        "/account/profile.css",
        "/account/x.js",
        "/account;x.css",
        "/account%2fx.png",
        "/account/..%2fstatic.css",
        "/static/../account/x.css",
        "/account/x.css.",
        "/account/x.ico?v=1",
    ];
    for p in paths {
        let a = send(Method::GET, &proxy.url(p), &[("cookie", "user=alice")]).await;
        assert!(a.text().starts_with("account of user=alice"), "{p}");
        assert!(
            a.cache_status().contains("stored=?0"),
            "{p}: {}",
            a.cache_status()
        );
        let b = send(Method::GET, &proxy.url(p), &[]).await;
        assert!(!b.text().contains("alice"), "{p} leaked: {}", b.text());
    }
    assert_eq!(origin.hits(), 2 * paths.len());
    // An extension-less page the origin marks cacheable is stored: freshness comes from the
    // response's fields only.
    let origin = reflecting_origin(PUBLIC).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let _ = send(Method::GET, &proxy.url("/no-extension"), &[]).await;
    let r = send(Method::GET, &proxy.url("/no-extension"), &[]).await;
    assert!(r.cache_status().contains("hit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_named_fields_are_gone_before_the_key_and_vary() {
    // Hop-by-hop abuse: a client lists end-to-end fields in Connection. They are removed
    // before anything is decided, so the key, the variance and the upstream request agree.
    let origin = Origin::start(|parts, _| async move {
        let v = parts
            .headers
            .get("x-v")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let auth = parts.headers.contains_key("authorization");
        respond(
            200,
            &[("cache-control", "public, max-age=60"), ("vary", "x-v")],
            format!("x-v={v} auth={auth}"),
        )
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/v");
    let a = send(Method::GET, &url, &[("x-v", "a")]).await;
    assert_eq!(a.text(), "x-v=a auth=false");
    let stripped = send(
        Method::GET,
        &url,
        &[
            ("x-v", "a"),
            ("authorization", "Bearer alice"),
            ("connection", "x-v, authorization"),
        ],
    )
    .await;
    // Both fields were removed: a different variant (x-v absent), fetched without them.
    assert_eq!(stripped.text(), "x-v=- auth=false");
    assert!(!origin.last_request().headers.contains_key("authorization"));
    let a2 = send(Method::GET, &url, &[("x-v", "a")]).await;
    assert!(a2.cache_status().contains("hit"));
    assert_eq!(a2.text(), "x-v=a auth=false");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_to_unkeyed_fields_are_stored_only_with_a_default_ttl() {
    // Cache-poisoned denial of service: an unkeyed field (here X-HTTP-Method-Override) makes
    // the origin answer an error without freshness on a cold key. By default nothing without
    // explicit freshness is stored, so the next client gets the page; with a default TTL the
    // error is heuristically cacheable (RFC 9110 §15.1: 404, 405, 414, 501, ...) and is.
    let origin = || {
        Origin::start(|parts, _| async move {
            if parts.headers.contains_key("x-http-method-override") {
                respond(405, &[], "method not allowed")
            } else {
                respond(200, &[], "page")
            }
        })
    };
    for default_ttl in [None, Some(60)] {
        let origin = origin().await;
        let mut cfg = config(Duration::from_secs(2));
        cfg.defaults = larder::proxy::config::meta_defaults(default_ttl, 0, 0);
        let proxy = Proxy::start(&origin, cfg).await;
        let url = proxy.url("/cpdos");
        let evil = send(Method::GET, &url, &[("x-http-method-override", "POST")]).await;
        assert_eq!(evil.status, 405);
        let victim = send(Method::GET, &url, &[]).await;
        println!(
            "default ttl {default_ttl:?}: victim {} ({})",
            victim.status,
            victim.cache_status()
        );
        let expect = if default_ttl.is_some() { 405 } else { 200 };
        assert_eq!(victim.status, expect, "{default_ttl:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncacheable_answer_does_not_keep_a_key_out_of_the_cache() {
    // A client can make one answer uncacheable (Authorization, request no-store) and so mark
    // the key in the predictor; the next plain request still stores and later ones hit.
    let origin = reflecting_origin(&[("cache-control", "max-age=60")]).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/denied");
    for _ in 0..3 {
        let r = send(Method::GET, &url, &[("authorization", "Bearer x")]).await;
        assert!(
            r.cache_status().contains("stored=?0"),
            "{}",
            r.cache_status()
        );
    }
    let plain = send(Method::GET, &url, &[]).await;
    println!("after uncacheable answers: {}", plain.cache_status());
    assert!(
        plain.cache_status().ends_with("; stored"),
        "{}",
        plain.cache_status()
    );
    let again = send(Method::GET, &url, &[]).await;
    assert!(
        again.cache_status().contains("hit"),
        "{}",
        again.cache_status()
    );
    assert_eq!(origin.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_authority_decides_the_host_sent_upstream() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let origin = reflecting_origin(PUBLIC).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    // Cleartext HTTP/2 with prior knowledge; `:authority` and a `host` field disagree.
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://victim.example/h2")
        .header("host", "evil.example")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    println!("h2: {body:?}");
    assert!(body.starts_with(b"host=victim.example "), "{body:?}");
    let victim = send(
        Method::GET,
        &proxy.url("/h2"),
        &[("host", "victim.example")],
    )
    .await;
    assert!(victim.cache_status().contains("hit"));
    assert!(victim.text().starts_with("host=victim.example "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_usable_host_are_refused() {
    let origin = reflecting_origin(PUBLIC).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let cases: [(&str, &[u8]); 3] = [
        (
            "no Host",
            b"GET /nohost HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
        (
            "empty Host",
            b"GET /nohost HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
        ),
        (
            "non-ASCII Host",
            b"GET /nohost HTTP/1.1\r\nHost: b\xc3\xbccher.example\r\nConnection: close\r\n\r\n",
        ),
    ];
    for (what, req) in cases {
        for _ in 0..2 {
            let out = raw_exchange(proxy.addr, req).await;
            let got = responses(&out);
            println!("{what}: {:?}", statuses(&out));
            // RFC 9112 §3.2: an HTTP/1.1 request without a usable Host is a 400.
            assert!(got.len() == 1 && got[0].status == 400, "{what}: {out}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_methods_evict_only_on_success_and_only_on_their_host() {
    // Any client may send POST; RFC 9111 §4.4 has a non-error answer invalidate the target
    // and same-host Location / Content-Location, so eviction needs the origin's consent.
    let origin = Origin::start(|parts, _| async move {
        match (parts.method.as_str(), parts.uri.path()) {
            ("GET", _) => respond(200, PUBLIC, "page"),
            ("POST", "/refused") => respond(405, &[], ""),
            _ => respond(200, &[("location", "http://other.example/kept")], "posted"),
        }
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let host = [("host", "site.example")];
    let other = [("host", "other.example")];
    for p in ["/refused", "/accepted"] {
        let _ = send(Method::GET, &proxy.url(p), &host).await;
    }
    let _ = send(Method::GET, &proxy.url("/kept"), &other).await;
    for p in ["/refused", "/accepted"] {
        let _ = send(Method::POST, &proxy.url(p), &host).await;
    }
    let refused = send(Method::GET, &proxy.url("/refused"), &host).await;
    assert!(refused.cache_status().contains("hit"), "a 405 evicted");
    let accepted = send(Method::GET, &proxy.url("/accepted"), &host).await;
    assert!(
        !accepted.cache_status().contains("hit"),
        "a 200 did not evict"
    );
    let kept = send(Method::GET, &proxy.url("/kept"), &other).await;
    assert!(
        kept.cache_status().contains("hit"),
        "another host's entry was evicted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_preconditions_cannot_store_a_partial_answer() {
    // The first client of a cold key asks for a slice, or sends a validator; the fill goes
    // upstream without them, so the entry is the whole body and the next client gets it.
    let origin = Origin::start(|parts, _| async move {
        let partial = parts.headers.contains_key("range")
            || parts.headers.contains_key("if-none-match")
            || parts.headers.contains_key("if-modified-since");
        respond(
            200,
            &[("cache-control", "public, max-age=60"), ("etag", "\"v1\"")],
            if partial { "partial" } else { "0123456789" },
        )
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    for (path, name, value, status) in [
        ("/range", "range", "bytes=0-0", 206),
        ("/inm", "if-none-match", "\"v1\"", 304),
        (
            "/ims",
            "if-modified-since",
            "Sun, 06 Nov 2094 08:49:37 GMT",
            200,
        ),
    ] {
        let first = send(Method::GET, &proxy.url(path), &[(name, value)]).await;
        assert_eq!(first.status, status, "{path}");
        let victim = send(Method::GET, &proxy.url(path), &[]).await;
        assert!(victim.cache_status().contains("hit"), "{path}");
        assert_eq!(victim.text(), "0123456789", "{path}");
    }
    assert_eq!(origin.hits(), 3);
}
