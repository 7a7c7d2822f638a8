//! The TLS listener of `server::serve_with`: certificates by SNI, ALPN, protocol versions,
//! broken clients, the connection's `ClientInfo`, per-connection services and configuration,
//! and the shutdown grace period.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use larder_proxy::server::{ClientInfo, TlsSource, serve_with};
use larder_proxy::tls::{CertPair, server_config};
use larder_testkit::tls::{TestCa, TestCert, client_config};
use parking_lot::Mutex;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A CA and two leaves, `a.example` and `b.example`.
struct Certs {
    ca: TestCa,
    a: TestCert,
    b: TestCert,
}

impl Certs {
    fn new() -> Self {
        let ca = TestCa::new("listener test CA");
        let a = ca.leaf(&["a.example"]);
        let b = ca.leaf(&["b.example"]);
        Self { ca, a, b }
    }

    /// The listener's configuration serving `leaves`, first one first.
    fn config(leaves: &[&TestCert]) -> Arc<rustls::ServerConfig> {
        let pairs: Vec<CertPair> = leaves
            .iter()
            .map(|leaf| CertPair {
                cert: leaf.cert_file.clone(),
                key: leaf.key_file.clone(),
            })
            .collect();
        server_config(&pairs).unwrap()
    }
}

fn der(leaf: &TestCert) -> Vec<u8> {
    CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A service answering with what it knows of the request's connection and protocol, and the
/// `generation` it was made in.
fn echo(
    generation: usize,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |req: Request<Incoming>| async move {
        let info = req.extensions().get::<ClientInfo>().copied();
        let text = match info {
            Some(i) => format!(
                "peer={} local={} tls={} version={:?} generation={generation}",
                i.peer,
                i.local,
                i.tls,
                req.version()
            ),
            None => "no client info".to_owned(),
        };
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
    })
}

/// Serves [`echo`] with `tls` on a fresh port until the runtime ends.
async fn serve_echo(tls: Option<TlsSource>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_with(
        listener,
        || echo(0),
        tls,
        Duration::from_secs(1),
        std::future::pending(),
    ));
    addr
}

fn fixed(config: Arc<rustls::ServerConfig>) -> TlsSource {
    Arc::new(move || Arc::clone(&config))
}

/// A TLS connection to `addr` with `name` (sent as SNI when `sni`) offering `alpn`.
async fn connect(
    addr: SocketAddr,
    ca: &TestCa,
    name: &str,
    sni: bool,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut config = client_config(&ca.cert_pem(), alpn);
    config.enable_sni = sni;
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

fn peer_leaf(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// Sends `GET /` over `stream` with HTTP/2 when ALPN chose `h2`, HTTP/1.1 otherwise; returns
/// the response's version and body.
async fn get_over(stream: TlsStream<TcpStream>) -> (Version, String) {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let resp = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get("https://a.example/")
            .body(Full::<Bytes>::default())
            .unwrap();
        sender.send_request(req).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get("/")
            .header("host", "a.example")
            .body(Full::<Bytes>::default())
            .unwrap();
        sender.send_request(req).await.unwrap()
    };
    let version = resp.version();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (version, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn sni_chooses_the_certificate_and_no_sni_gets_the_first() {
    let certs = Certs::new();
    let addr = serve_echo(Some(fixed(Certs::config(&[&certs.a, &certs.b])))).await;
    for (name, leaf) in [("a.example", &certs.a), ("b.example", &certs.b)] {
        let stream = connect(addr, &certs.ca, name, true, &[b"http/1.1"])
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            peer_leaf(&stream) == der(leaf),
            "{name} got another certificate"
        );
        let (_, body) = get_over(stream).await;
        assert!(body.contains("tls=true"), "{body}");
    }
    // No SNI: the first pair, whichever it is.
    let stream = connect(addr, &certs.ca, "a.example", false, &[])
        .await
        .unwrap();
    assert!(peer_leaf(&stream) == der(&certs.a));
    let swapped = serve_echo(Some(fixed(Certs::config(&[&certs.b, &certs.a])))).await;
    let stream = connect(swapped, &certs.ca, "b.example", false, &[])
        .await
        .unwrap();
    assert!(peer_leaf(&stream) == der(&certs.b));
    // A name no certificate covers gets the first, which the client then refuses.
    let err = connect(addr, &certs.ca, "c.example", true, &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn alpn_h2_and_http1_are_served_with_the_client_info() {
    let certs = Certs::new();
    let addr = serve_echo(Some(fixed(Certs::config(&[&certs.a])))).await;
    for (alpn, version) in [
        (&b"h2"[..], Version::HTTP_2),
        (&b"http/1.1"[..], Version::HTTP_11),
    ] {
        let stream = connect(addr, &certs.ca, "a.example", true, &[alpn])
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
        let client = stream.get_ref().0.local_addr().unwrap();
        let (got, body) = get_over(stream).await;
        assert_eq!(got, version);
        assert_eq!(
            body,
            format!("peer={client} local={addr} tls=true version={version:?} generation=0")
        );
    }
    // A client offering both gets h2, the server's preference.
    let stream = connect(addr, &certs.ca, "a.example", true, &[b"http/1.1", b"h2"])
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn plain_connections_carry_the_client_info_too() {
    let addr = serve_echo(None).await;
    let got = larder_testkit::get(&format!("http://{addr}/")).await;
    let body = got.text();
    assert!(body.starts_with("peer=127.0.0.1:"), "{body}");
    assert!(
        body.contains(&format!("local={addr} tls=false version=HTTP/1.1")),
        "{body}"
    );
}

#[tokio::test]
async fn tls_12_and_13_are_served_and_tls_11_refused() {
    let certs = Certs::new();
    let addr = serve_echo(Some(fixed(Certs::config(&[&certs.a])))).await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(certs.ca.cert_pem().as_bytes()).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("a.example").unwrap();
        let stream = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
    }
    // rustls cannot speak TLS 1.1, so send a TLS 1.1 ClientHello by hand: the server answers
    // with a fatal `protocol_version` alert (RFC 8446 §6.2).
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&client_hello_tls11()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes")
        .unwrap();
    assert!(answer.len() >= 7, "{answer:?}");
    assert_eq!(answer[0], 0x15, "an alert record: {answer:?}");
    assert_eq!(
        &answer[5..7],
        &[2, 70],
        "fatal protocol_version: {answer:?}"
    );
}

/// A TLS 1.1 `ClientHello`: legacy version 3.2, no `supported_versions`, one TLS 1.0/1.1 suite,
/// and the `signature_algorithms` extension rustls wants before it looks at the version.
fn client_hello_tls11() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x02, 0xc0, 0x13]); // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    // Extensions (12 bytes): signature_algorithms with a 6-byte list: ECDSA P-256 SHA-256,
    // RSA-PSS SHA-256, RSA PKCS#1 SHA-256.
    body.extend_from_slice(&[0x00, 0x0c, 0x00, 0x0d, 0x00, 0x08, 0x00, 0x06]);
    body.extend_from_slice(&[0x04, 0x03, 0x08, 0x04, 0x04, 0x01]);
    let mut handshake = vec![0x01, 0, 0, u8::try_from(body.len()).unwrap()];
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0, u8::try_from(handshake.len()).unwrap()];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn broken_and_stalled_handshakes_do_not_stop_other_connections() {
    let certs = Certs::new();
    let addr = serve_echo(Some(fixed(Certs::config(&[&certs.a])))).await;
    // Connected and silent; connected with part of a `ClientHello`; plain HTTP to a TLS port.
    let _silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(&client_hello_tls11()[..9]).await.unwrap();
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nhost: a.example\r\n\r\n")
        .await
        .unwrap();

    let start = Instant::now();
    for _ in 0..3 {
        let stream = connect(addr, &certs.ca, "a.example", true, &[b"h2"])
            .await
            .unwrap();
        let (version, body) = get_over(stream).await;
        assert_eq!(version, Version::HTTP_2);
        assert!(body.contains("tls=true"), "{body}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // The plain-HTTP client is told off and closed, without an HTTP answer.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut answer))
        .await
        .expect("the server closes a connection that is not TLS")
        .unwrap();
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
}

#[tokio::test]
async fn each_connection_keeps_the_service_and_certificate_it_started_with() {
    let certs = Certs::new();
    let current = Arc::new(Mutex::new(Certs::config(&[&certs.a])));
    let source: TlsSource = {
        let current = Arc::clone(&current);
        Arc::new(move || Arc::clone(&current.lock()))
    };
    let made = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let make = {
        let made = Arc::clone(&made);
        move || echo(made.fetch_add(1, Ordering::SeqCst) + 1)
    };
    tokio::spawn(serve_with(
        listener,
        make,
        Some(source),
        Duration::from_secs(1),
        std::future::pending(),
    ));

    let old = connect(addr, &certs.ca, "a.example", true, &[b"h2"])
        .await
        .unwrap();
    assert!(peer_leaf(&old) == der(&certs.a));
    let (mut old_sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(old))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut old_get = async || {
        let req = Request::get("https://a.example/")
            .body(Full::<Bytes>::default())
            .unwrap();
        let resp = old_sender.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    };
    assert!(old_get().await.ends_with("generation=1"));

    // A reload: new connections get the new certificate and a new service.
    *current.lock() = Certs::config(&[&certs.b]);
    let new = connect(addr, &certs.ca, "b.example", true, &[b"h2"])
        .await
        .unwrap();
    assert!(peer_leaf(&new) == der(&certs.b));
    let (_, body) = get_over(new).await;
    assert!(body.ends_with("generation=2"), "{body}");
    // The open connection keeps what it started with.
    assert!(old_get().await.ends_with("generation=1"));
    assert!(old_get().await.ends_with("generation=1"));
    assert_eq!(made.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn shutdown_waits_no_longer_than_the_grace_period() {
    let certs = Certs::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let never = tower::service_fn(|_req: Request<Incoming>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    });
    let server = tokio::spawn(serve_with(
        listener,
        move || never,
        Some(fixed(Certs::config(&[&certs.a]))),
        Duration::from_millis(300),
        async {
            let _ = stopped.await;
        },
    ));
    let stream = connect(addr, &certs.ca, "a.example", true, &[b"h2"])
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let hanging = tokio::spawn(async move {
        let req = Request::get("https://a.example/")
            .body(Full::<Bytes>::default())
            .unwrap();
        sender.send_request(req).await
    });
    // A client in the middle of its handshake does not hold shutdown up either.
    let _silent = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let start = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve_with returns after the grace period")
        .unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    drop(hanging);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
