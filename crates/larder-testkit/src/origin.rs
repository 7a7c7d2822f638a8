//! A scripted origin on a 127.0.0.1 port, and the answers it sends.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use larder_proxy::{ProxyBody, server};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the number handed to an origin's handler counts.
#[derive(Clone, Copy)]
enum Count {
    /// Requests received before this one, all paths.
    All,
    /// Requests received before this one for the same path.
    PerPath,
}

/// What an origin saw: the request count, per path, and every request's head and body.
#[derive(Default)]
struct Seen {
    total: AtomicUsize,
    per_path: Mutex<HashMap<String, usize>>,
    requests: Mutex<Vec<(http::request::Parts, Bytes)>>,
}

impl Seen {
    /// Records one request and returns its number under `count` (0 for the first).
    fn record(&self, count: Count, parts: &http::request::Parts, body: &Bytes) -> usize {
        let before = self.total.fetch_add(1, Ordering::SeqCst);
        let for_path = {
            let mut map = self.per_path.lock();
            let slot = map.entry(parts.uri.path().to_owned()).or_insert(0);
            *slot += 1;
            *slot - 1
        };
        self.requests.lock().push((parts.clone(), body.clone()));
        match count {
            Count::All => before,
            Count::PerPath => for_path,
        }
    }
}

/// An origin served by the proxy's own server (`larder_proxy::server::serve`) that answers with
/// a handler and records every request it receives.
pub struct Origin {
    /// The address it listens on.
    pub addr: SocketAddr,
    seen: Arc<Seen>,
}

impl Origin {
    /// Starts an origin answering with `handler`, which gets the request head and the number of
    /// requests received before it, all paths (0 for the first).
    pub async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(http::request::Parts, usize) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        Self::serve(Count::All, move |parts, _body, n| handler(parts, n)).await
    }

    /// As [`Origin::start`], with the number counting the requests for the same path only.
    pub async fn per_path<F, Fut>(handler: F) -> Self
    where
        F: Fn(http::request::Parts, usize) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        Self::serve(Count::PerPath, move |parts, _body, n| handler(parts, n)).await
    }

    /// As [`Origin::per_path`], with the request's whole body passed to `handler` as well.
    pub async fn per_path_with_body<F, Fut>(handler: F) -> Self
    where
        F: Fn(http::request::Parts, Bytes, usize) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        Self::serve(Count::PerPath, handler).await
    }

    async fn serve<F, Fut>(count: Count, handler: F) -> Self
    where
        F: Fn(http::request::Parts, Bytes, usize) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        let seen = Arc::new(Seen::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorder = Arc::clone(&seen);
        let service = tower::service_fn(move |req: Request<Incoming>| {
            let handler = handler.clone();
            let seen = Arc::clone(&recorder);
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(http_body_util::Collected::to_bytes)
                    .unwrap_or_default();
                let n = seen.record(count, &parts, &body);
                Ok::<_, Infallible>(handler(parts, body, n).await)
            }
        });
        tokio::spawn(server::serve(listener, service, std::future::pending()));
        Self { addr, seen }
    }

    /// The origin's URI, `http://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far, all paths.
    pub fn hits(&self) -> usize {
        self.seen.total.load(Ordering::SeqCst)
    }

    /// Requests received so far for `path`.
    pub fn hits_for(&self, path: &str) -> usize {
        self.seen.per_path.lock().get(path).copied().unwrap_or(0)
    }

    /// The head of the `i`-th request received (from 0).
    pub fn request(&self, i: usize) -> http::request::Parts {
        self.seen.requests.lock()[i].0.clone()
    }

    /// The head of the last request received.
    pub fn last_request(&self) -> http::request::Parts {
        self.seen.requests.lock().last().cloned().unwrap().0
    }

    /// The body of the last request received.
    pub fn last_body(&self) -> Bytes {
        self.seen.requests.lock().last().cloned().unwrap().1
    }

    /// The request targets (path and query) received, in order.
    pub fn targets(&self) -> Vec<String> {
        self.seen
            .requests
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

/// A response with `status`, `headers` (name, value pairs) and `body`.
pub fn respond(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut resp = Response::builder().status(status);
    for (k, v) in headers {
        resp = resp.header(*k, *v);
    }
    resp.body(larder_proxy::body::full(body)).unwrap()
}

/// A body of `chunks` sent `delay` apart (a delay before each), ending in an error when `fail` is
/// set. hyper aborts the connection when a body fails: with `Content-Length` the client sees a
/// short body, with chunked coding a missing last chunk.
pub fn chunked_body(chunks: Vec<Bytes>, delay: Duration, fail: bool) -> ProxyBody {
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
    larder_proxy::body::boxed(http_body_util::StreamBody::new(stream))
}

/// [`chunked_body`] of static text chunks.
pub fn slow_body(chunks: Vec<&'static str>, delay: Duration, fail: bool) -> ProxyBody {
    let chunks = chunks
        .into_iter()
        .map(|c| Bytes::from_static(c.as_bytes()))
        .collect();
    chunked_body(chunks, delay, fail)
}

/// A body of `len` bytes that differs per `seed`, so truncation or mix-ups show.
pub fn pattern(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| seed.wrapping_add(u8::try_from(i % 251).unwrap()))
        .collect::<Vec<u8>>()
        .into()
}

/// The request field `name` as text, the values of repeated lines joined by `|`, or `-` when
/// absent: what echoing origins report.
pub fn field(parts: &http::request::Parts, name: &str) -> String {
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

/// An origin that answers every connection with `response` (raw bytes, written as they are)
/// after reading the request head, then closes. Returns its address and a count of requests.
pub async fn raw_origin(response: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
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
