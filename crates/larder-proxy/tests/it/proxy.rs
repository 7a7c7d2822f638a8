//! Proxy behaviour that does not depend on stored responses.

use http::Method;
use larder_proxy::CacheConfig;

use larder_testkit::{Origin, Proxy, Transport, get, raw, respond, send, send_with};

#[tokio::test]
async fn hop_by_hop_fields_are_stripped_and_via_added() {
    let origin = Origin::start(|_, _| async {
        respond(
            200,
            &[
                ("connection", "x-secret"),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("x-kept", "1"),
            ],
            "ok",
        )
    })
    .await;
    let proxy = Proxy::start(&origin, CacheConfig::default()).await;
    let got = send(
        Method::GET,
        &proxy.url("/a"),
        &[
            ("connection", "x-client-hop"),
            ("x-client-hop", "1"),
            ("te", "trailers"),
            ("x-end", "1"),
        ],
    )
    .await;
    assert_eq!(got.text(), "ok");
    assert_eq!(got.header("x-kept"), Some("1"));
    assert_eq!(got.header("x-secret"), None);
    assert_eq!(got.header("keep-alive"), None);
    assert_eq!(got.header("via"), Some("1.1 larder"));
    assert!(got.ours().name == "larder", "{}", got.cache_status());

    let seen = origin.request(0);
    assert_eq!(seen.headers.get("x-end").unwrap(), "1");
    assert!(seen.headers.get("x-client-hop").is_none());
    assert!(seen.headers.get("te").is_none());
    assert_eq!(seen.headers.get("via").unwrap(), "1.1 larder");
    assert_eq!(proxy.layer.metrics().requests.get(), 1);
}

#[tokio::test]
async fn every_method_is_forwarded() {
    let origin = Origin::start(|parts, _| async move {
        let m = parts.method.to_string();
        respond(200, &[("x-method", &m)], "")
    })
    .await;
    let proxy = Proxy::start(&origin, CacheConfig::default()).await;
    for m in ["PUT", "DELETE", "PATCH", "OPTIONS", "POST", "FOO"] {
        let got = send(
            Method::from_bytes(m.as_bytes()).unwrap(),
            &proxy.url("/m"),
            &[],
        )
        .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-method"), Some(m));
    }
    assert_eq!(origin.hits(), 6);
}

#[tokio::test]
async fn purge_without_token_configured_is_405_and_bad_token_401() {
    let origin = Origin::start(|_, _| async { respond(200, &[], "") }).await;
    let proxy = Proxy::start(&origin, CacheConfig::default()).await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let got = send(
        purge.clone(),
        &proxy.url("/p"),
        &[("authorization", "Bearer x")],
    )
    .await;
    assert_eq!(got.status, 405);

    let mut config = CacheConfig::default();
    config.purge_token = Some("s3cret".into());
    let proxy = Proxy::start(&origin, config).await;
    assert_eq!(send(purge.clone(), &proxy.url("/p"), &[]).await.status, 401);
    let wrong = send(
        purge.clone(),
        &proxy.url("/p"),
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(origin.hits(), 0, "PURGE is never forwarded");
}

#[tokio::test]
async fn oversized_request_head_gets_431() {
    let origin = Origin::start(|_, _| async { respond(200, &[], "") }).await;
    let proxy = Proxy::start(&origin, CacheConfig::default()).await;
    let big = "x".repeat(100 * 1024);
    let got = send(Method::GET, &proxy.url("/"), &[("x-big", &big)]).await;
    assert_eq!(got.status, 431);
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn unreachable_upstream_is_502_with_cache_status() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let proxy = Proxy::to(&format!("http://{dead}"), CacheConfig::default()).await;
    let got = get(&proxy.url("/x")).await;
    assert_eq!(got.status, 502);
    assert!(got.ours().name == "larder");
    assert!(
        proxy
            .layer
            .render_metrics()
            .contains("larder_upstream_errors_total 1")
    );
}

#[tokio::test]
async fn h2c_clients_are_served_and_cached() {
    let origin =
        Origin::start(|_, _| async { respond(200, &[("cache-control", "max-age=60")], "h2") })
            .await;
    let proxy = Proxy::cached(&origin).await;
    let client = Transport::H2c.client();
    for expect_hit in [false, true] {
        let got = send_with(&client, Method::GET, &proxy.url("/h2"), &[]).await;
        assert_eq!(got.version, http::Version::HTTP_2);
        assert_eq!(
            got.cache().last().unwrap().hit,
            expect_hit,
            "{}",
            got.cache()
        );
        assert_eq!(got.text(), "h2");
    }
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn malformed_request_gets_400_and_the_proxy_keeps_serving() {
    let origin = Origin::start(|_, _| async { respond(200, &[], "ok") }).await;
    let proxy = Proxy::start(&origin, CacheConfig::default()).await;
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nbad header line\r\n\r\n"[..],
        b"\x00\x01\x02 nonsense\r\n\r\n",
    ] {
        let text = raw::exchange(proxy.addr, garbage).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{text:?}");
    }
    assert_eq!(get(&proxy.url("/")).await.text(), "ok");
    assert_eq!(origin.hits(), 1);
}

/// An HTTP/1.0 origin must not make the proxy answer its HTTP/1.1 client in HTTP/1.0.
#[tokio::test]
async fn http10_origin_is_answered_in_the_clients_version() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A raw origin speaking HTTP/1.0, as simple servers do.
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = origin.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = origin.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let addr = Proxy::to(&format!("http://{origin_addr}"), CacheConfig::default())
        .await
        .addr;

    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.ends_with(b"ok") {
        let n = client.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // `Via` names the version the proxy received from the origin (RFC 9110 §7.6.3).
    assert!(
        text.to_ascii_lowercase().contains("via: 1.0 larder"),
        "{text}"
    );
}
