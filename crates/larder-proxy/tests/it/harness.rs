//! A real origin and a real proxy on 127.0.0.1 ephemeral ports, and a client.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use larder_proxy::{CacheConfig, CacheLayer, DefaultHooks, ProxyBody, Upstream, server};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tower::Layer;

/// An origin server that records what it receives.
pub(crate) struct Origin {
    pub(crate) addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<http::request::Parts>>>,
}

impl Origin {
    /// Starts an origin answering with `handler`; `handler` gets the request head and the
    /// number of requests seen before it (0 for the first).
    pub(crate) async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(http::request::Parts, usize) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (h, s) = (Arc::clone(&hits), Arc::clone(&seen));
        let service = tower::service_fn(move |req: Request<Incoming>| {
            let handler = handler.clone();
            let (hits, seen) = (Arc::clone(&h), Arc::clone(&s));
            async move {
                let (parts, body) = req.into_parts();
                let _ = body.collect().await;
                let n = hits.fetch_add(1, Ordering::SeqCst);
                seen.lock().push(parts.clone());
                Ok::<_, Infallible>(handler(parts, n).await)
            }
        });
        tokio::spawn(server::serve(listener, service, std::future::pending()));
        Self { addr, hits, seen }
    }

    pub(crate) fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The head of the `i`-th request received.
    pub(crate) fn request(&self, i: usize) -> http::request::Parts {
        self.seen.lock()[i].clone()
    }
}

/// A proxy (the library layer over an `Upstream`, served by hyper) in front of `origin`.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    pub(crate) layer: CacheLayer<DefaultHooks>,
}

impl Proxy {
    pub(crate) async fn start(origin: &Origin, config: CacheConfig) -> Self {
        let layer = CacheLayer::new(config, DefaultHooks);
        let service = layer.layer(Upstream::new(&origin.uri()).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(server::serve(listener, service, std::future::pending()));
        Self { addr, layer }
    }

    /// A proxy with a 1 MiB in-memory cache and short lock timeouts.
    pub(crate) async fn cached(origin: &Origin) -> Self {
        Self::start(origin, cache_config()).await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
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

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(self.body.as_ref().expect("body ended in an error")).into_owned()
    }
}

pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends a request with `headers` (name, value pairs) and reads the whole response.
pub(crate) async fn send(method: Method, url: &str, headers: &[(&str, &str)]) -> Got {
    send_body(method, url, headers, Bytes::new()).await
}

pub(crate) async fn send_body(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Got {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client()
        .request(req.body(Full::new(body)).unwrap())
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

pub(crate) async fn get(url: &str) -> Got {
    send(Method::GET, url, &[]).await
}

/// The sample `name` from the Prometheus text an admin listener at `admin` serves on
/// `/metrics`; panics (with the text) when it is missing. (Used by larder-server's tests,
/// which include this file.)
#[allow(dead_code)]
pub(crate) async fn metric(admin: impl std::fmt::Display, name: &str) -> u64 {
    let text = get(&format!("http://{admin}/metrics")).await.text();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
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
    resp.body(larder_proxy::body::full(body)).unwrap()
}

/// A 1 MiB in-memory cache with 1 s lock timeouts.
pub(crate) fn cache_config() -> CacheConfig {
    CacheConfig::in_memory(1 << 20, larder_proxy::config::EvictionPolicy::Tinyufo)
        .with_lock_timeouts(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(1),
        )
}

/// A body sending `chunks` with `delay` before each, then failing if `fail` is set.
pub(crate) fn slow_body(
    chunks: Vec<&'static str>,
    delay: std::time::Duration,
    fail: bool,
) -> ProxyBody {
    use futures_util::StreamExt;
    type Item = Result<http_body::Frame<Bytes>, std::io::Error>;
    let mut items: Vec<Item> = chunks
        .into_iter()
        .map(|c| Ok(http_body::Frame::data(Bytes::from_static(c.as_bytes()))))
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
