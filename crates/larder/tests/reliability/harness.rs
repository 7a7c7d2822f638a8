//! A controllable origin, the proxy in front of it, and a client.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use larder::proxy::config::EvictionPolicy;
use larder::proxy::{CacheConfig, CacheLayer, DefaultHooks, ProxyBody, Upstream, server};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tower::Layer;

/// Heavy scenarios (memory, load) take this lock so that, when the whole binary runs in one
/// process (`cargo test`), they do not measure each other. Under nextest each test is its own
/// process anyway.
pub(crate) static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An origin served by hyper: `handler` gets the request head and the number of requests for
/// the same path seen before it (0 for the first).
pub(crate) struct Origin {
    pub(crate) addr: SocketAddr,
    total: Arc<AtomicUsize>,
    per_path: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    seen: Arc<Mutex<Vec<(http::request::Parts, Bytes)>>>,
}

impl Origin {
    pub(crate) async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(http::request::Parts, usize) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        Self::start_with_body(move |parts, _body, n| handler(parts, n)).await
    }

    /// As [`Origin::start`], with the request's whole body passed to `handler` as well.
    pub(crate) async fn start_with_body<F, Fut>(handler: F) -> Self
    where
        F: Fn(http::request::Parts, Bytes, usize) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        let total = Arc::new(AtomicUsize::new(0));
        let per_path = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (t, p, s) = (Arc::clone(&total), Arc::clone(&per_path), Arc::clone(&seen));
        let service = tower::service_fn(move |req: Request<Incoming>| {
            let handler = handler.clone();
            let (total, per_path, seen) = (Arc::clone(&t), Arc::clone(&p), Arc::clone(&s));
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(http_body_util::Collected::to_bytes)
                    .unwrap_or_default();
                total.fetch_add(1, Ordering::SeqCst);
                let n = {
                    let mut map = per_path.lock();
                    let slot = map.entry(parts.uri.path().to_owned()).or_insert(0);
                    *slot += 1;
                    *slot - 1
                };
                seen.lock().push((parts.clone(), body.clone()));
                Ok::<_, Infallible>(handler(parts, body, n).await)
            }
        });
        tokio::spawn(server::serve(listener, service, std::future::pending()));
        Self {
            addr,
            total,
            per_path,
            seen,
        }
    }

    pub(crate) fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received, all paths.
    pub(crate) fn hits(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Requests received for `path`.
    pub(crate) fn hits_for(&self, path: &str) -> usize {
        self.per_path.lock().get(path).copied().unwrap_or(0)
    }

    /// The head of the last request received.
    pub(crate) fn last_request(&self) -> http::request::Parts {
        self.seen.lock().last().cloned().unwrap().0
    }

    /// The body of the last request received.
    pub(crate) fn last_body(&self) -> Bytes {
        self.seen.lock().last().cloned().unwrap().1
    }

    /// The request targets (path and query) received, in order.
    pub(crate) fn targets(&self) -> Vec<String> {
        self.seen
            .lock()
            .iter()
            .map(|(p, _)| {
                p.uri
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str())
                    .to_owned()
            })
            .collect()
    }
}

/// The proxy: the library layer over an inner service, served by hyper like the binary.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    pub(crate) layer: CacheLayer<DefaultHooks>,
}

impl Proxy {
    /// A proxy in front of `origin` with `config`.
    pub(crate) async fn start(origin: &Origin, config: CacheConfig) -> Self {
        Self::with_inner(Upstream::new(&origin.uri()).unwrap(), config).await
    }

    /// A proxy in front of any inner service.
    pub(crate) async fn with_inner<S>(inner: S, config: CacheConfig) -> Self
    where
        S: tower::Service<Request<ProxyBody>, Response = Response<Incoming>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<larder::proxy::BoxError>,
    {
        let layer = CacheLayer::new(config, DefaultHooks);
        let service = layer.layer(inner);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(server::serve(listener, service, std::future::pending()));
        Self { addr, layer }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// An 8 MiB in-memory cache with `lock` as both lock timeouts.
pub(crate) fn config(lock: Duration) -> CacheConfig {
    CacheConfig::in_memory(8 << 20, EvictionPolicy::Lru).with_lock_timeouts(lock, lock)
}

/// A response as the client saw it: the head and the whole body, or the body's error.
pub(crate) struct Got {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Result<Bytes, String>,
}

impl Got {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }

    pub(crate) fn bytes(&self) -> &Bytes {
        self.body.as_ref().expect("body ended in an error")
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends a request with `headers` through `client` and reads the whole response.
pub(crate) async fn send_with(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> Got {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|e| e.to_string());
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub(crate) async fn send(method: Method, url: &str, headers: &[(&str, &str)]) -> Got {
    send_with(&client(), method, url, headers).await
}

pub(crate) async fn get(url: &str) -> Got {
    send(Method::GET, url, &[]).await
}

/// A response with `status`, `headers` and `body`.
pub(crate) fn respond(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut resp = Response::builder().status(status);
    for (k, v) in headers {
        resp = resp.header(*k, *v);
    }
    resp.body(larder::proxy::body::full(body)).unwrap()
}

/// A body of `chunks` sent `delay` apart, ending in an error when `fail` is set. hyper aborts
/// the connection when a body fails: with `Content-Length` the client sees a short body, with
/// chunked coding a missing last chunk.
pub(crate) fn chunked_body(chunks: Vec<Bytes>, delay: Duration, fail: bool) -> ProxyBody {
    use futures_util::StreamExt;
    type Item = Result<http_body::Frame<Bytes>, std::io::Error>;
    let mut items: Vec<Item> = chunks
        .into_iter()
        .map(|c| Ok(http_body::Frame::data(c)))
        .collect();
    if fail {
        items.push(Err(std::io::Error::other("origin failed mid-body")));
    }
    let stream = futures_util::stream::iter(items).then(move |item| async move {
        tokio::time::sleep(delay).await;
        item
    });
    larder::proxy::body::boxed(http_body_util::StreamBody::new(stream))
}

/// A body of `len` bytes that differs per `seed`, so truncation or mix-ups show.
pub(crate) fn pattern(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| seed.wrapping_add(u8::try_from(i % 251).unwrap()))
        .collect::<Vec<u8>>()
        .into()
}

/// This process's resident set size in bytes, from `/proc/self/status`.
pub(crate) fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Writes `request` to `addr` as raw bytes and returns everything the server sends until it
/// closes the connection (the last request should say `Connection: close`), bounded by 5 s.
pub(crate) async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading everything; a write error is fine.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// One response read from a raw exchange.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    /// The head, lowercased, without the status line.
    pub(crate) head: String,
    pub(crate) body: String,
}

/// The responses in a raw exchange, in order, framed by `Content-Length` or chunked coding
/// (1xx heads have no body; anything else runs to the end).
pub(crate) fn responses(mut text: &str) -> Vec<RawResponse> {
    let mut out = Vec::new();
    while let Some((head, rest)) = text.split_once("\r\n\r\n") {
        let (line, fields) = head.split_once("\r\n").unwrap_or((head, ""));
        let Some(status) = line
            .strip_prefix("HTTP/1.")
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse::<u16>().ok())
        else {
            break;
        };
        let fields = fields.to_ascii_lowercase();
        let field = |name: &str| {
            fields
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
        };
        let (body, rest) = if (100..200).contains(&status) && status != 101 {
            (String::new(), rest)
        } else if let Some(len) = field("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let len = len.min(rest.len());
            (rest[..len].to_owned(), &rest[len..])
        } else if field("transfer-encoding") == Some("chunked") {
            let mut body = String::new();
            let mut rest = rest;
            while let Some((size, after)) = rest.split_once("\r\n") {
                let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if size == 0 {
                    rest = after.strip_prefix("\r\n").unwrap_or(after);
                    break;
                }
                let size = size.min(after.len());
                body.push_str(&after[..size]);
                rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
            }
            (body, rest)
        } else {
            (rest.to_owned(), "")
        };
        out.push(RawResponse {
            status,
            head: fields,
            body,
        });
        text = rest;
    }
    out
}

/// The status codes of the responses in a raw exchange, in order.
pub(crate) fn statuses(text: &str) -> Vec<u16> {
    responses(text).iter().map(|r| r.status).collect()
}

/// An origin that answers every connection with `response` (raw bytes, written as they are)
/// after reading the request head, then closes. Returns its address and a count of requests.
pub(crate) async fn raw_origin(response: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(response).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, count)
}

/// The request field `name` as text, the values of repeated lines joined by `|`, or `-` when
/// absent: what the echoing origins report.
pub(crate) fn field(parts: &http::request::Parts, name: &str) -> String {
    let all: Vec<&str> = parts
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if all.is_empty() {
        "-".to_owned()
    } else {
        all.join("|")
    }
}
