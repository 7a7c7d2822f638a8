//! Interim (1xx) responses: an origin writing raw bytes sends `103 Early Hints` (or `102`)
//! before its answer, and raw HTTP/1 clients check what the proxy writes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use larder_proxy::{DefaultHooks, Upstream};
use larder_testkit::{Proxy, Transport, cache_config};

/// A guard against a hang, not a speed assertion: every read finishes long before this.
const STUCK: Duration = Duration::from_secs(5);

const HINT: &str = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\
                    X-Hint: 1\r\nConnection: x-drop\r\nX-Drop: 1\r\n\r\n";

/// An origin speaking raw HTTP/1.1, so it can send interim responses. Per path:
/// - `/held`: a 103, then waits for [`RawOrigin::release`], then a cacheable 200 `hello`;
/// - `/swr`: a 103, then (from the second request on, after [`RawOrigin::release`]) a 200
///   `swr` that is stale on arrival but inside its stale-while-revalidate window;
/// - `/quick`: a 103 and a cacheable 200 `quick` at once;
/// - `/fresh/*`: a 102 and a 103, then an uncacheable 200 whose body is the path;
/// - anything else (a POST): `100 Continue`, then 200 `got <n>` for an n-byte body.
struct RawOrigin {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

impl RawOrigin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let (h, r) = (Arc::clone(&hits), Arc::clone(&release));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(origin_connection(stream, Arc::clone(&h), Arc::clone(&r)));
            }
        });
        Self {
            addr,
            hits,
            release,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn origin_connection(mut stream: TcpStream, hits: Arc<AtomicUsize>, release: Arc<Notify>) {
    let mut buf = Vec::new();
    while let Some(head) = read_head(&mut stream, &mut buf).await {
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        // Unasked for too: a client must cope with any number of 1xx (RFC 9110 §15.2).
        if head.starts_with("POST ") {
            stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .unwrap();
        }
        let body = read_body(&mut stream, &mut buf, content_length(&head)).await;
        let n = hits.fetch_add(1, Ordering::SeqCst);
        let cacheable = "cache-control: max-age=3600\r\n";
        let answer = match path.as_str() {
            "/held" => {
                stream.write_all(HINT.as_bytes()).await.unwrap();
                release.notified().await;
                final_response(cacheable, "hello")
            }
            "/swr" => {
                // Stale on arrival, inside its stale-while-revalidate window.
                let stale = "cache-control: max-age=1, stale-while-revalidate=1000\r\nage: 100\r\n";
                stream.write_all(HINT.as_bytes()).await.unwrap();
                if n > 0 {
                    release.notified().await;
                }
                final_response(stale, "swr")
            }
            "/quick" => format!("{HINT}{}", final_response(cacheable, "quick")),
            p if p.starts_with("/fresh/") => format!(
                "HTTP/1.1 102 Processing\r\n\r\n{HINT}{}",
                final_response("cache-control: no-store\r\n", p)
            ),
            _ => final_response("", &format!("got {}", body.len())),
        };
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn final_response(fields: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\n{fields}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads one message head (up to and including the blank line) into a string, keeping what
/// follows in `buf`; `None` at a clean end of stream.
async fn read_head(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            return Some(String::from_utf8(head).unwrap());
        }
        let mut chunk = [0; 4096];
        let n = tokio::time::timeout(STUCK, stream.read(&mut chunk))
            .await
            .expect("stuck reading a head")
            .unwrap();
        if n == 0 {
            assert!(buf.is_empty(), "stream ended inside a head");
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn fill(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>, len: usize) {
    while buf.len() < len {
        let mut chunk = [0; 4096];
        let n = tokio::time::timeout(STUCK, stream.read(&mut chunk))
            .await
            .expect("stuck reading a body")
            .unwrap();
        assert!(n > 0, "stream ended inside a body");
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn read_body(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    len: usize,
) -> Vec<u8> {
    fill(stream, buf, len).await;
    buf.drain(..len).collect()
}

fn field<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn content_length(head: &str) -> usize {
    field(head, "content-length").map_or(0, |v| v.parse().unwrap())
}

/// One message from the proxy: its head and body (a 1xx has none; a final response is
/// framed by `Content-Length` or chunked coding).
async fn read_message(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> (String, Vec<u8>) {
    let head = read_head(stream, buf)
        .await
        .expect("the proxy closed the connection");
    if head.as_bytes()[9] == b'1' {
        return (head, Vec::new());
    }
    if field(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let size_line = loop {
                if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                    let line: Vec<u8> = buf.drain(..end + 2).collect();
                    break String::from_utf8(line).unwrap();
                }
                let want = buf.len() + 1;
                fill(stream, buf, want).await;
            };
            let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
            let chunk = read_body(stream, buf, size + 2).await;
            if size == 0 {
                return (head, body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let body = read_body(stream, buf, content_length(&head)).await;
    (head, body)
}

/// A caching proxy (the `server::serve` the binary uses) in front of `origin`.
async fn proxy(origin: &RawOrigin) -> SocketAddr {
    Proxy::to(&format!("http://{}", origin.addr), cache_config())
        .await
        .addr
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: example.com\r\n\r\n")
}

fn assert_is_the_hint(head: &str) {
    assert!(head.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{head}");
    assert_eq!(
        field(head, "link"),
        Some("</style.css>; rel=preload; as=style")
    );
    assert_eq!(field(head, "x-hint"), Some("1"));
    // Hop-by-hop: `Connection` and the field it names stay behind (RFC 9110 §7.6.1).
    assert_eq!(field(head, "connection"), None, "{head}");
    assert_eq!(field(head, "x-drop"), None, "{head}");
}

#[tokio::test]
async fn early_hint_reaches_the_client_before_the_answer_and_is_not_cached() {
    let origin = RawOrigin::start().await;
    let addr = proxy(&origin).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    client.write_all(get("/held").as_bytes()).await.unwrap();

    // The origin holds its answer until the hint has reached the client.
    let (hint, _) = read_message(&mut client, &mut buf).await;
    assert_is_the_hint(&hint);
    assert!(buf.is_empty(), "nothing but the hint before the release");
    origin.release.notify_one();

    let (head, body) = read_message(&mut client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hello");
    assert!(
        field(&head, "cache-status")
            .unwrap()
            .contains("fwd=uri-miss")
    );
    assert_eq!(field(&head, "x-hint"), None, "{head}");
    assert_eq!(field(&head, "link"), None, "{head}");

    // The same connection again: a hit, with no interim response and nothing stored from one.
    client.write_all(get("/held").as_bytes()).await.unwrap();
    let (head, body) = read_message(&mut client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hello");
    assert!(
        field(&head, "cache-status").unwrap().contains("hit"),
        "{head}"
    );
    assert_eq!(field(&head, "x-hint"), None, "{head}");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn early_hint_reaches_an_http1_client_over_tls() {
    let origin = RawOrigin::start().await;
    let upstream = Upstream::new(&format!("http://{}", origin.addr)).unwrap();
    let proxy =
        Proxy::with_hooks_over(Transport::Http1Tls, upstream, cache_config(), DefaultHooks).await;
    let config = larder_testkit::tls::local().client_config(&[b"http/1.1"]);
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut buf = Vec::new();
    client.write_all(get("/held").as_bytes()).await.unwrap();
    client.flush().await.unwrap();

    let (hint, _) = read_message(&mut client, &mut buf).await;
    assert_is_the_hint(&hint);
    assert!(buf.is_empty(), "nothing but the hint before the release");
    origin.release.notify_one();
    let (head, body) = read_message(&mut client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hello");
    assert_eq!(field(&head, "x-hint"), None, "{head}");
}

#[tokio::test]
async fn a_background_refresh_sends_no_interim_response() {
    let origin = RawOrigin::start().await;
    let addr = proxy(&origin).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    client.write_all(get("/swr").as_bytes()).await.unwrap();
    let (hint, _) = read_message(&mut client, &mut buf).await;
    assert_is_the_hint(&hint);
    let (head, body) = read_message(&mut client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"swr");

    // Served stale at once; the refresh goes upstream in the background, where the origin
    // sends its hint and holds the answer.
    client.write_all(get("/swr").as_bytes()).await.unwrap();
    let (head, body) = read_message(&mut client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        field(&head, "cache-status")
            .unwrap()
            .contains("stale-while-revalidate"),
        "{head}"
    );
    assert_eq!(body, b"swr");
    while origin.hits() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Give the refresh's hint time to reach the proxy, so a wrong forward would show below.
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The next request on the connection gets its own answer first, not the refresh's hint.
    client.write_all(get("/swr").as_bytes()).await.unwrap();
    let (head, body) = read_message(&mut client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"swr");
    origin.release.notify_one();
    assert!(buf.is_empty());
}

#[tokio::test]
async fn http_10_clients_get_no_interim_response() {
    let origin = RawOrigin::start().await;
    let addr = proxy(&origin).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /quick HTTP/1.0\r\nhost: example.com\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(STUCK, client.read_to_end(&mut got))
        .await
        .expect("the proxy closes an HTTP/1.0 connection")
        .unwrap();
    let got = String::from_utf8(got).unwrap();
    assert!(got.starts_with("HTTP/1.0 200 OK\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nquick"), "{got}");
    assert!(!got.contains("103"), "{got}");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn interim_responses_of_consecutive_requests_stay_with_their_own_answers() {
    let origin = RawOrigin::start().await;
    let addr = proxy(&origin).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for path in ["/fresh/one", "/fresh/two"] {
        client.write_all(get(path).as_bytes()).await.unwrap();
        let (processing, _) = read_message(&mut client, &mut buf).await;
        assert_eq!(processing, "HTTP/1.1 102 Processing\r\n\r\n");
        let (hint, _) = read_message(&mut client, &mut buf).await;
        assert_is_the_hint(&hint);
        let (head, body) = read_message(&mut client, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, path.as_bytes());
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_with_whole_messages() {
    let origin = RawOrigin::start().await;
    let addr = proxy(&origin).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let paths = ["/fresh/a", "/fresh/b", "/fresh/c"];
    client
        .write_all(paths.map(get).concat().as_bytes())
        .await
        .unwrap();
    // Each answer may be preceded by its interim responses (a pipelined request's may be
    // dropped when they cannot go out in order), never by another answer's bytes.
    for path in paths {
        let (head, body) = loop {
            let (head, body) = read_message(&mut client, &mut buf).await;
            if head.starts_with("HTTP/1.1 102 ") {
                assert_eq!(head, "HTTP/1.1 102 Processing\r\n\r\n");
            } else if head.starts_with("HTTP/1.1 103 ") {
                assert_is_the_hint(&head);
            } else {
                break (head, body);
            }
        };
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, path.as_bytes());
    }
}

#[tokio::test]
async fn expect_100_continue_gets_exactly_one_100() {
    let origin = RawOrigin::start().await;
    let addr = proxy(&origin).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    client
        .write_all(
            b"POST /upload HTTP/1.1\r\nhost: example.com\r\ncontent-length: 5\r\n\
              expect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    // The body is sent only once the proxy has asked for it.
    let (cont, _) = read_message(&mut client, &mut buf).await;
    assert_eq!(cont, "HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"12345").await.unwrap();
    // The origin's own `100 Continue` is not passed on.
    let (head, body) = read_message(&mut client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"got 5");
    assert_eq!(origin.hits(), 1);
}
