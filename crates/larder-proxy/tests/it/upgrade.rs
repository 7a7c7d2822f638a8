//! Upgrades through the proxy: WebSocket over HTTP/1.1 (`Connection: upgrade`) and over HTTP/2
//! extended CONNECT (RFC 8441), against a WebSocket echo origin on 127.0.0.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use larder_proxy::CacheConfig;
use larder_testkit::{Proxy, cache_config, get, raw};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

/// What the origin saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    method: Method,
    path: String,
    headers: http::HeaderMap,
}

/// A WebSocket echo origin: `/ws` switches to WebSocket when asked (and echoes every message,
/// closing when told `bye`), or answers a cacheable `200 plain`; `/refuse` answers `400`;
/// anything else a cacheable `200 page`.
struct WsOrigin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl WsOrigin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = Arc::clone(&log);
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let log = Arc::clone(&log);
                    async move { Ok::<_, Infallible>(answer(req, &log)) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades(),
                );
            }
        });
        Self { addr, seen }
    }

    /// The same origin over TLS with `cert`, offering `h2` and `http/1.1` in ALPN (so an
    /// upgrade works only on the connections that pick HTTP/1.1).
    async fn start_tls(cert: &larder_testkit::tls::TestCert) -> Self {
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, log) = (acceptor.clone(), Arc::clone(&log));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let log = Arc::clone(&log);
                        async move { Ok::<_, Infallible>(answer(req, &log)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

fn answer(mut req: Request<Incoming>, log: &Mutex<Vec<Seen>>) -> Response<Full<Bytes>> {
    log.lock().push(Seen {
        version: req.version(),
        method: req.method().clone(),
        path: req.uri().path().to_owned(),
        headers: req.headers().clone(),
    });
    let page = |status: u16, body: &'static str| {
        Response::builder()
            .status(status)
            .header(header::CACHE_CONTROL, "max-age=60")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    match req.uri().path() {
        "/ws" => {
            let asked = req
                .headers()
                .get(header::UPGRADE)
                .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
            let Some(key) = req.headers().get("sec-websocket-key").filter(|_| asked) else {
                return page(200, "plain");
            };
            let accept = derive_accept_key(key.as_bytes());
            let upgraded = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgraded.await else { return };
                echo(
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await,
                )
                .await;
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::UPGRADE, "websocket")
                .header(header::CONNECTION, "Upgrade")
                .header("sec-websocket-accept", accept)
                .body(Full::default())
                .unwrap()
        }
        "/refuse" => page(400, "no upgrade here"),
        _ => page(200, "page"),
    }
}

/// Echoes every message with a prefix; `bye` makes the origin close.
async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) if t.as_str() == "bye" => {
                let _ = ws.close(None).await;
            }
            Message::Text(t) => {
                let _ = ws.send(Message::text(format!("echo {}", t.as_str()))).await;
            }
            Message::Binary(b) => {
                let _ = ws.send(Message::Binary(b)).await;
            }
            _ => {}
        }
    }
}

/// Sends `n` messages and checks each echo.
async fn chat<S>(ws: &mut WebSocketStream<S>, n: usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for i in 0..n {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an echo within 5 s")
            .unwrap()
            .unwrap();
        assert_eq!(got, Message::text(format!("echo hello {i}")));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let got = ws.next().await.unwrap().unwrap();
    assert_eq!(got, Message::binary(vec![0u8, 1, 2, 255]));
}

/// The client's side of the closing handshake, then its connection closed.
async fn close<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.close(None).await.unwrap();
    let mut closed = false;
    while let Some(msg) = ws.next().await {
        closed |= matches!(msg, Ok(Message::Close(_)));
        if msg.is_err() {
            break;
        }
    }
    assert!(closed, "the origin answered the close");
}

/// Waits until no tunnel and no background task is left (at most 5 s).
async fn tunnels_closed(proxy: &Proxy) {
    let m = proxy.layer.metrics();
    for _ in 0..500 {
        if m.tunnels.get() == 0 && m.background_tasks.get() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "tunnels still open: {} tunnels, {} tasks",
        m.tunnels.get(),
        m.background_tasks.get()
    );
}

async fn ws_connect(
    proxy: SocketAddr,
    path: &str,
) -> Result<
    (
        WebSocketStream<TcpStream>,
        tungstenite::handshake::client::Response,
    ),
    tungstenite::Error,
> {
    let tcp = TcpStream::connect(proxy).await.unwrap();
    client_async(format!("ws://{proxy}{path}"), tcp).await
}

fn cache_status(headers: &http::HeaderMap) -> String {
    headers
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn websocket_is_tunnelled_and_never_stored() {
    let origin = WsOrigin::start().await;
    let proxy = Proxy::to(&origin.uri(), cache_config()).await;

    let (mut ws, resp) = ws_connect(proxy.addr, "/ws").await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(resp.headers()[header::UPGRADE], "websocket");
    assert!(
        resp.headers()[header::CONNECTION]
            .to_str()
            .unwrap()
            .eq_ignore_ascii_case("upgrade")
    );
    let status = cache_status(resp.headers());
    assert!(status.contains("fwd=bypass"), "{status}");
    assert!(status.contains("detail=Upgrade"), "{status}");
    assert_eq!(proxy.layer.metrics().tunnels.get(), 1);

    chat(&mut ws, 5).await;

    // The origin saw the upgrade request, Upgrade and Connection: upgrade kept.
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers[header::UPGRADE], "websocket");
    assert_eq!(seen[0].headers[header::CONNECTION], "upgrade");
    assert_eq!(seen[0].headers["via"], "1.1 larder");

    // The client closes: the tunnel ends.
    close(ws).await;
    tunnels_closed(&proxy).await;
    assert_eq!(proxy.layer.metrics().upgrades.get(), 1);
    let text = proxy.layer.render_metrics();
    assert!(text.contains("larder_upgrades_total 1\n"), "{text}");
    assert!(text.contains("larder_tunnels 0\n"), "{text}");

    // Nothing was stored: the same URL without an upgrade is a miss, then a hit.
    let url = format!("http://{}/ws", proxy.addr);
    let first = get(&url).await;
    assert_eq!(first.text(), "plain");
    assert!(
        first.cache().last().unwrap().fwd.is_some(),
        "{}",
        first.cache_status()
    );
    assert!(
        !first.cache_status().contains("hit"),
        "{}",
        first.cache_status()
    );
    let second = get(&url).await;
    assert!(
        second.cache().last().unwrap().hit,
        "{}",
        second.cache_status()
    );
    assert_eq!(origin.seen().len(), 2);
}

#[tokio::test]
async fn origin_closing_ends_the_tunnel() {
    let origin = WsOrigin::start().await;
    let proxy = Proxy::to(&origin.uri(), CacheConfig::default()).await;
    let (mut ws, _) = ws_connect(proxy.addr, "/ws").await.unwrap();
    chat(&mut ws, 3).await;
    ws.send(Message::text("bye")).await.unwrap();
    // The origin's close frame, then the end of the stream.
    let mut closed = false;
    while let Some(msg) = ws.next().await {
        if matches!(msg, Ok(Message::Close(_))) {
            closed = true;
        }
        if msg.is_err() {
            break;
        }
    }
    assert!(closed);
    // The client closes its connection once the origin closed (RFC 6455 §7.1.1).
    drop(ws);
    tunnels_closed(&proxy).await;
}

#[tokio::test]
async fn a_dropped_client_ends_the_tunnel() {
    let origin = WsOrigin::start().await;
    let proxy = Proxy::to(&origin.uri(), CacheConfig::default()).await;
    let (mut ws, _) = ws_connect(proxy.addr, "/ws").await.unwrap();
    chat(&mut ws, 2).await;
    assert_eq!(proxy.layer.metrics().tunnels.get(), 1);
    drop(ws);
    tunnels_closed(&proxy).await;
}

#[tokio::test]
async fn drain_cancels_an_open_tunnel() {
    let origin = WsOrigin::start().await;
    let proxy = Proxy::to(&origin.uri(), CacheConfig::default()).await;
    let (mut ws, _) = ws_connect(proxy.addr, "/ws").await.unwrap();
    chat(&mut ws, 1).await;
    let report = proxy.layer.drain(Duration::from_millis(100)).await;
    assert_eq!(report.in_flight, 1);
    assert_eq!(report.cancelled, 1);
    assert_eq!(proxy.layer.metrics().tunnels.get(), 0);
    // The client's connection is gone with the tunnel.
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the tunnel's end reaches the client");
    assert!(!matches!(next, Some(Ok(Message::Text(_)))), "{next:?}");
}

#[tokio::test]
async fn upgrade_without_connection_upgrade_is_not_forwarded() {
    let origin = WsOrigin::start().await;
    let proxy = Proxy::to(&origin.uri(), CacheConfig::default()).await;
    let ws_fields = "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                     Sec-WebSocket-Version: 13\r\n";
    // HTTP/1.1 without `Connection: upgrade`.
    let text = raw::until_close(
        proxy.addr,
        format!("GET /ws HTTP/1.1\r\nHost: a.test\r\n{ws_fields}Connection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(raw::first_status(&text), 200, "{text}");
    assert!(text.ends_with("plain"), "{text}");
    // HTTP/1.0, even with it.
    let text = raw::until_close(
        proxy.addr,
        format!("GET /ws HTTP/1.0\r\nHost: a.test\r\n{ws_fields}Connection: upgrade\r\n\r\n"),
    )
    .await;
    assert_eq!(raw::first_status(&text), 200, "{text}");
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    for s in seen {
        assert!(s.headers.get(header::UPGRADE).is_none(), "{s:?}");
        assert!(s.headers.get(header::CONNECTION).is_none(), "{s:?}");
    }
    assert_eq!(proxy.layer.metrics().upgrades.get(), 0);
}

#[tokio::test]
async fn refused_upgrades_are_passed_through_uncached() {
    let origin = WsOrigin::start().await;
    let proxy = Proxy::to(&origin.uri(), cache_config()).await;

    // A WebSocket client gets the origin's 400.
    match ws_connect(proxy.addr, "/refuse").await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            assert_eq!(resp.body().as_deref(), Some(&b"no upgrade here"[..]));
            let status = cache_status(resp.headers());
            assert!(status.contains("fwd=bypass"), "{status}");
        }
        other => panic!("expected the origin's 400, got {other:?}"),
    }

    // An origin answering 200 (a page, cacheable) instead of switching: passed through, and
    // not stored, so the next plain GET is a miss.
    let text = raw::until_close(
        proxy.addr,
        "GET /page HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n\
         Connection: Upgrade, close\r\n\r\n",
    )
    .await;
    assert_eq!(raw::first_status(&text), 200, "{text}");
    assert!(text.ends_with("page"), "{text}");
    let head = raw::head_field(&text, "cache-status").unwrap();
    assert!(
        head.contains("fwd=bypass") && head.contains("detail=upgrade"),
        "{head}"
    );
    assert!(raw::head_field(&text, "upgrade").is_none(), "{text}");
    let plain = get(&format!("http://{}/page", proxy.addr)).await;
    assert!(
        !plain.cache().last().unwrap().hit,
        "{}",
        plain.cache_status()
    );
    assert_eq!(origin.seen().len(), 3);
    assert_eq!(origin.seen()[1].headers[header::UPGRADE], "websocket");
    assert_eq!(proxy.layer.metrics().upgrades.get(), 0);
    tunnels_closed(&proxy).await;
}

/// An HTTP/2 client (cleartext, prior knowledge) to the proxy.
async fn h2_client(proxy: SocketAddr) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(proxy).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

fn extended_connect(
    proxy: SocketAddr,
    path: &str,
    protocol: Option<&'static str>,
) -> Request<Empty<Bytes>> {
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{proxy}{path}"))
        .version(Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .body(Empty::new())
        .unwrap();
    if let Some(p) = protocol {
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static(p));
    }
    req
}

#[tokio::test]
async fn h2_extended_connect_is_tunnelled_to_an_http1_origin() {
    let origin = WsOrigin::start().await;
    let proxy = Proxy::to(&origin.uri(), cache_config()).await;
    let mut h2 = h2_client(proxy.addr).await;
    // A plain request first: the server's SETTINGS (which allow extended CONNECT) are in.
    let plain = Request::get(format!("http://{}/page", proxy.addr))
        .version(Version::HTTP_2)
        .body(Empty::new())
        .unwrap();
    let resp = h2.send_request(plain).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let mut resp = h2
        .send_request(extended_connect(proxy.addr, "/ws", Some("websocket")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let status = cache_status(resp.headers());
    assert!(
        status.contains("fwd=bypass") && status.contains("detail=Upgrade"),
        "{status}"
    );
    assert!(resp.headers().get("sec-websocket-accept").is_none());
    let upgraded = hyper::upgrade::on(&mut resp).await.unwrap();
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    chat(&mut ws, 4).await;

    // The origin was asked for an HTTP/1.1 WebSocket upgrade.
    let seen = origin.seen();
    let up = seen.iter().find(|s| s.path == "/ws").unwrap();
    assert_eq!(up.method, Method::GET);
    assert_eq!(up.headers[header::UPGRADE], "websocket");
    assert_eq!(up.headers[header::CONNECTION], "upgrade");
    assert_eq!(up.headers["sec-websocket-version"], "13");
    assert_eq!(up.headers["sec-websocket-key"].len(), 24);
    assert_eq!(up.headers["via"], "2 larder");

    close(ws).await;
    tunnels_closed(&proxy).await;
    assert_eq!(proxy.layer.metrics().upgrades.get(), 1);

    // Plain CONNECT keeps its 405; an origin that does not switch is a 502, not a tunnel.
    let resp = h2
        .send_request(extended_connect(proxy.addr, "/ws", None))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = h2
        .send_request(extended_connect(proxy.addr, "/page", Some("websocket")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let resp = h2
        .send_request(extended_connect(proxy.addr, "/refuse", Some("websocket")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "no upgrade here");
    assert_eq!(proxy.layer.metrics().upgrades.get(), 1);
}

/// An `https://` origin that offers `h2`: ordinary requests go over HTTP/2, and a WebSocket
/// still works, on an HTTP/1.1 connection of its own (HTTP/2 has no `Upgrade`).
#[tokio::test]
async fn websocket_reaches_an_https_origin_that_offers_h2() {
    let ca = larder_testkit::tls::TestCa::new("upgrade test CA");
    let origin = WsOrigin::start_tls(&ca.leaf(&["127.0.0.1"])).await;
    let mut options = larder_proxy::UpstreamOptions::default();
    options.ca_file = Some(ca.cert_file());
    let upstream =
        larder_proxy::Upstream::with_options(&format!("https://{}", origin.addr), &options)
            .unwrap();
    let proxy = Proxy::with_inner(upstream, cache_config()).await;

    let page = get(&format!("http://{}/page", proxy.addr)).await;
    assert_eq!(page.text(), "page");
    let (mut ws, resp) = ws_connect(proxy.addr, "/ws").await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    chat(&mut ws, 3).await;
    close(ws).await;
    tunnels_closed(&proxy).await;

    let seen = origin.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].version, Version::HTTP_2, "a plain GET picks h2");
    assert_eq!(
        seen[1].version,
        Version::HTTP_11,
        "the upgrade goes over HTTP/1.1"
    );
    assert_eq!(seen[1].headers[header::UPGRADE], "websocket");
}
