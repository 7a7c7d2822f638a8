//! An HTTPS origin behind the caching layer: certificate checks, SNI, ALPN (h2 or HTTP/1.1),
//! connect and response-head timeouts.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use larder_proxy::{Upstream, UpstreamOptions};
use larder_testkit::tls::{TestCa, TestCert};
use larder_testkit::{Proxy, cache_config, get, send_body};
use parking_lot::Mutex;
use tokio::net::TcpListener;

/// What the origin saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    uri: Uri,
    headers: HeaderMap,
    /// The SNI name of the connection it came on.
    sni: Option<String>,
}

type Handler =
    Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>> + Send + Sync>;

/// An HTTPS origin on a 127.0.0.1 port, offering `h2` and `http/1.1` in ALPN, answering the
/// n-th request (from 0) with `handler(n)`.
struct TlsOrigin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// How many TLS connections are open.
    open: Arc<AtomicUsize>,
}

impl TlsOrigin {
    async fn start<F, Fut>(cert: &TestCert, handler: F) -> Self
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |n| Box::pin(handler(n)));
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let open = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&open);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, handler, log, count) = (
                    acceptor.clone(),
                    Arc::clone(&handler),
                    Arc::clone(&log),
                    Arc::clone(&count),
                );
                tokio::spawn(async move {
                    // A refused handshake (the client did not trust us) just ends here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_owned);
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (parts, _) = req.into_parts();
                        let n = record(&log, &parts, sni.clone());
                        let answer = handler(n);
                        async move { Ok::<_, std::convert::Infallible>(answer.await) }
                    });
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                    count.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { addr, seen, open }
    }

    /// `https://127.0.0.1:port`.
    fn uri(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

fn record(log: &Mutex<Vec<Seen>>, parts: &Parts, sni: Option<String>) -> usize {
    let mut log = log.lock();
    log.push(Seen {
        version: parts.version,
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
        sni,
    });
    log.len() - 1
}

/// `200` with `cache-control` and `body`.
fn ok(cache_control: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .header("cache-control", cache_control)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// An origin answering every request `max-age=60`, `hello`, with a certificate for `names`.
async fn cacheable_origin(ca: &TestCa, names: &[&str]) -> TlsOrigin {
    TlsOrigin::start(&ca.leaf(names), |_| async { ok("max-age=60", "hello") }).await
}

/// Options trusting `ca` alone.
fn trusting(ca: &TestCa) -> UpstreamOptions {
    let mut options = UpstreamOptions::default();
    options.ca_file = Some(ca.cert_file());
    options
}

async fn proxy_to(uri: &str, options: &UpstreamOptions) -> Proxy {
    Proxy::with_inner(
        Upstream::with_options(uri, options).unwrap(),
        cache_config(),
    )
    .await
}

#[tokio::test]
async fn https_origin_miss_then_hit_with_a_private_ca() {
    let ca = TestCa::new("larder test CA");
    let origin = cacheable_origin(&ca, &["127.0.0.1"]).await;
    let proxy = proxy_to(&origin.uri(), &trusting(&ca)).await;
    let miss = get(&proxy.url("/a")).await;
    assert_eq!((miss.status.as_u16(), miss.text().as_str()), (200, "hello"));
    assert!(miss.ours().is_fwd("uri-miss"), "{}", miss.cache());
    let hit = get(&proxy.url("/a")).await;
    assert_eq!(hit.text(), "hello");
    assert!(hit.ours().hit, "{}", hit.cache());
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    // The client's name reaches the origin (as `:authority` over h2), not the origin's address.
    assert_eq!(seen[0].uri.path(), "/a");
    let asked = proxy.addr.to_string();
    assert_eq!(
        seen[0].uri.authority().map(http::uri::Authority::as_str),
        Some(&*asked)
    );
    // An IP address is never sent as SNI (RFC 6066 §3).
    assert_eq!(seen[0].sni, None);
}

#[tokio::test]
async fn default_verifier_refuses_an_unknown_ca_unless_told_to_skip() {
    let ca = TestCa::new("larder test CA");
    let origin = cacheable_origin(&ca, &["127.0.0.1"]).await;
    let proxy = proxy_to(&origin.uri(), &UpstreamOptions::default()).await;
    for _ in 0..2 {
        let refused = get(&proxy.url("/a")).await;
        assert_eq!(refused.status.as_u16(), 502);
        let ours = refused.ours();
        assert!(
            !ours.hit && ours.has_detail("UpstreamError"),
            "{}",
            refused.cache()
        );
    }
    assert!(origin.seen().is_empty());

    let mut options = UpstreamOptions::default();
    options.insecure_skip_verify = true;
    let proxy = proxy_to(&origin.uri(), &options).await;
    let got = get(&proxy.url("/a")).await;
    assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "hello"));
    assert_eq!(origin.seen().len(), 1);
}

#[tokio::test]
async fn sni_overrides_the_name_sent_and_verified() {
    let ca = TestCa::new("larder test CA");
    let origin = cacheable_origin(&ca, &["origin.example"]).await;
    // The certificate does not name 127.0.0.1.
    let proxy = proxy_to(&origin.uri(), &trusting(&ca)).await;
    assert_eq!(get(&proxy.url("/a")).await.status.as_u16(), 502);
    assert!(origin.seen().is_empty());

    let mut options = trusting(&ca);
    options.sni = Some("origin.example".into());
    let proxy = proxy_to(&origin.uri(), &options).await;
    let got = get(&proxy.url("/a")).await;
    assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "hello"));
    assert_eq!(origin.seen()[0].sni.as_deref(), Some("origin.example"));
}

#[tokio::test]
async fn h2_when_offered_and_http1_when_not() {
    let ca = TestCa::new("larder test CA");
    let origin = cacheable_origin(&ca, &["127.0.0.1"]).await;
    let proxy = proxy_to(&origin.uri(), &trusting(&ca)).await;
    get(&proxy.url("/h2")).await;
    let mut options = trusting(&ca);
    options.http2 = false;
    let proxy1 = proxy_to(&origin.uri(), &options).await;
    get(&proxy1.url("/h1")).await;
    let versions: Vec<_> = origin
        .seen()
        .iter()
        .map(|s| (s.uri.path().to_owned(), s.version))
        .collect();
    assert_eq!(
        versions,
        [
            ("/h2".to_owned(), Version::HTTP_2),
            ("/h1".to_owned(), Version::HTTP_11)
        ]
    );
    let h1 = &origin.seen()[1];
    assert_eq!(h1.headers["host"], proxy1.addr.to_string());
}

#[tokio::test]
async fn no_connection_field_reaches_an_h2_origin() {
    let ca = TestCa::new("larder test CA");
    let origin = cacheable_origin(&ca, &["127.0.0.1"]).await;
    let proxy = proxy_to(&origin.uri(), &trusting(&ca)).await;
    // A GET with a body is passed through with `Connection: close`, which HTTP/2 forbids.
    let got = send_body(
        Method::GET,
        &proxy.url("/body"),
        &[],
        Bytes::from_static(b"data"),
    )
    .await;
    assert_eq!(got.status.as_u16(), 200);
    let seen = &origin.seen()[0];
    assert_eq!(seen.version, Version::HTTP_2);
    assert!(seen.headers.get("connection").is_none(), "{seen:?}");
}

#[tokio::test]
async fn host_option_replaces_the_name_the_origin_gets_not_the_key() {
    let ca = TestCa::new("larder test CA");
    let origin = cacheable_origin(&ca, &["127.0.0.1"]).await;
    for http2 in [true, false] {
        let mut options = trusting(&ca);
        options.http2 = http2;
        options.host = Some("backend.example".into());
        let proxy = proxy_to(&origin.uri(), &options).await;
        let before = origin.seen().len();
        get(&proxy.url("/h")).await;
        let hit = get(&proxy.url("/h")).await;
        assert!(hit.ours().hit, "{}", hit.cache());
        let seen = origin.seen();
        assert_eq!(seen.len(), before + 1);
        let last = &seen[before];
        let name = last
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| last.headers.get("host").map(|h| h.to_str().unwrap().into()));
        assert_eq!(name.as_deref(), Some("backend.example"), "http2 {http2}");
    }
}

#[tokio::test]
async fn response_timeout_is_504_with_cache_status() {
    let ca = TestCa::new("larder test CA");
    let origin = TlsOrigin::start(&ca.leaf(&["127.0.0.1"]), |_| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        ok("max-age=60", "late")
    })
    .await;
    let mut options = trusting(&ca);
    options.response_timeout = Duration::from_millis(300);
    let proxy = proxy_to(&origin.uri(), &options).await;
    let started = std::time::Instant::now();
    let got = get(&proxy.url("/slow")).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(got.status.as_u16(), 504);
    let ours = got.ours();
    assert!(
        ours.has_detail("UpstreamResponseTimeout") && !ours.hit,
        "{}",
        got.cache()
    );
    assert_eq!(origin.seen().len(), 1);
}

/// The second answer for a path whose first answer (`cache_control`, 30 s old) is stale at
/// once, when the origin then answers too late.
async fn stale_then_timeout(cache_control: &'static str) -> (larder_testkit::Got, TlsOrigin) {
    let ca = TestCa::new("larder test CA");
    let origin = TlsOrigin::start(&ca.leaf(&["127.0.0.1"]), move |n| async move {
        if n == 0 {
            let mut resp = ok(cache_control, "stale");
            resp.headers_mut()
                .insert("age", http::HeaderValue::from_static("30"));
            resp
        } else {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ok("max-age=60", "late")
        }
    })
    .await;
    let mut options = trusting(&ca);
    options.response_timeout = Duration::from_millis(300);
    let proxy = proxy_to(&origin.uri(), &options).await;
    assert_eq!(get(&proxy.url("/s")).await.text(), "stale");
    (get(&proxy.url("/s")).await, origin)
}

#[tokio::test]
async fn response_timeout_serves_stale_inside_stale_if_error() {
    let (got, origin) = stale_then_timeout("max-age=1, stale-if-error=60").await;
    assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "stale"));
    let ours = got.ours();
    assert!(
        ours.is_fwd("stale") && ours.has_detail("stale-if-error"),
        "{}",
        got.cache()
    );
    assert_eq!(origin.seen().len(), 2);
}

#[tokio::test]
async fn response_timeout_serves_stale_as_a_disconnect_unless_forbidden() {
    let (got, _origin) = stale_then_timeout("max-age=1").await;
    assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "stale"));
    assert!(
        got.ours().has_detail("stale-on-disconnect"),
        "{}",
        got.cache()
    );
    let (refused, _origin) = stale_then_timeout("max-age=1, must-revalidate").await;
    assert_eq!(refused.status.as_u16(), 504);
    assert!(
        refused.ours().has_detail("UpstreamResponseTimeout"),
        "{}",
        refused.cache()
    );
}

#[tokio::test]
async fn connect_timeout_covers_a_handshake_that_never_ends() {
    // Accepts TCP, never says a word of TLS.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            keep.lock().push(tcp);
        }
    });
    let mut options = UpstreamOptions::default();
    options.connect_timeout = Duration::from_millis(300);
    let proxy = proxy_to(&format!("https://{addr}"), &options).await;
    let started = std::time::Instant::now();
    let got = get(&proxy.url("/a")).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(got.status.as_u16(), 502);
    assert!(
        got.ours().has_detail("UpstreamConnectTimeout"),
        "{}",
        got.cache()
    );
    assert!(!held.lock().is_empty());
}

/// Waits up to 2 s for `origin` to have `n` connections open; how many it has then.
async fn open_becomes(origin: &TlsOrigin, n: usize) -> usize {
    for _ in 0..200 {
        if origin.open.load(Ordering::SeqCst) == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    origin.open.load(Ordering::SeqCst)
}

#[tokio::test]
async fn idle_connections_are_kept_as_configured() {
    let ca = TestCa::new("larder test CA");
    let origin = cacheable_origin(&ca, &["127.0.0.1"]).await;
    // Kept (the default minute): one connection serves both requests and stays open.
    let proxy = proxy_to(&origin.uri(), &trusting(&ca)).await;
    get(&proxy.url("/k1")).await;
    get(&proxy.url("/k2")).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(open_becomes(&origin, 1).await, 1);
    drop(proxy);

    // Closed once idle for 200 ms.
    let origin = cacheable_origin(&ca, &["127.0.0.1"]).await;
    let mut options = trusting(&ca);
    options.pool_idle_timeout = Duration::from_millis(200);
    let proxy = proxy_to(&origin.uri(), &options).await;
    get(&proxy.url("/t")).await;
    assert_eq!(open_becomes(&origin, 0).await, 0);

    // Not kept at all.
    let origin = cacheable_origin(&ca, &["127.0.0.1"]).await;
    let mut options = trusting(&ca);
    options.pool_max_idle = 0;
    let proxy = proxy_to(&origin.uri(), &options).await;
    get(&proxy.url("/n")).await;
    assert_eq!(open_becomes(&origin, 0).await, 0);
}

/// An h2 connection carries one name, so each `Host` a client invents would be a connection of
/// its own to the origin: past the first `MAX_H2_NAMES` names, requests share HTTP/1.1
/// connections (the name in `Host`), and the origin's connections stay bounded.
#[tokio::test]
async fn invented_names_cannot_multiply_origin_connections() {
    let ca = TestCa::new("larder test CA");
    let origin = cacheable_origin(&ca, &["127.0.0.1"]).await;
    let proxy = proxy_to(&origin.uri(), &trusting(&ca)).await;
    let names = larder_proxy::upstream::MAX_H2_NAMES + 16;
    for i in 0..names {
        let host = format!("n{i}.example:{}", 1000 + i);
        let got = larder_testkit::send(Method::GET, &proxy.url("/x"), &[("host", &host)]).await;
        assert_eq!(got.status, 200, "{host}");
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), names);
    for (i, s) in seen.iter().enumerate() {
        let host = format!("n{i}.example:{}", 1000 + i);
        if i < larder_proxy::upstream::MAX_H2_NAMES {
            assert_eq!(
                (
                    s.version,
                    s.uri.authority().map(http::uri::Authority::as_str)
                ),
                (Version::HTTP_2, Some(host.as_str()))
            );
        } else {
            assert_eq!(s.version, Version::HTTP_11, "request {i}");
            assert_eq!(
                s.headers["host"],
                host.as_str(),
                "the name still reaches the origin"
            );
        }
    }
    let open = origin.open.load(Ordering::SeqCst);
    assert!(
        open <= larder_proxy::upstream::MAX_H2_NAMES + 1,
        "{open} connections for {names} names"
    );
}
