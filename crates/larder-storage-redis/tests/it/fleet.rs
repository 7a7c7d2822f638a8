//! Two proxies (the larder-proxy layer over an upstream, served on loopback) sharing one
//! Redis: what one fetches the other hits, a purge through one reaches both, and both keep
//! answering from the origin while Redis is down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use larder_proxy::{CacheConfig, CacheLayer, DefaultHooks, Upstream, server};
use larder_storage_redis::{RedisConfig, RedisStorage};
use tokio::net::TcpListener;
use tower::Layer;

use crate::server::RedisServer;

/// An origin that counts its requests and answers every one with a cacheable body.
struct Origin {
    addr: SocketAddr,
    fetches: Arc<AtomicUsize>,
}

impl Origin {
    async fn start() -> Self {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&fetches);
        let service = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let body = format!("{} #{n}", req.uri().path());
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("cache-control", "max-age=60")
                        .body(larder_proxy::body::full(body))
                        .unwrap(),
                )
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(server::serve(listener, service, std::future::pending()));
        Origin { addr, fetches }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A proxy in front of `origin` storing into its own `RedisStorage` on `redis`.
async fn proxy(origin: &Origin, redis: &RedisServer) -> (SocketAddr, &'static RedisStorage) {
    let mut config = RedisConfig::new(redis.url());
    config.timeout = Duration::from_millis(200);
    let storage: &'static RedisStorage = Box::leak(Box::new(RedisStorage::new(config).unwrap()));
    let mut cache =
        CacheConfig::default().with_lock_timeouts(Duration::from_secs(1), Duration::from_secs(1));
    cache.storage = Some(storage);
    cache.purge_token = Some("token".into());
    let layer = CacheLayer::new(cache, DefaultHooks);
    let service = layer.layer(Upstream::new(&format!("http://{}", origin.addr)).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener, service, std::future::pending()));
    (addr, storage)
}

struct Got {
    status: StatusCode,
    cache_status: String,
    body: String,
}

impl Got {
    fn is_hit(&self) -> bool {
        self.cache_status.contains("hit")
    }
}

async fn send(method: Method, addr: SocketAddr, path: &str) -> Got {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // Behind a load balancer every proxy sees the site's own host: the cache key includes it.
    let mut req = Request::builder()
        .uri(format!("http://{addr}{path}"))
        .header("host", "fleet.test");
    if method != Method::GET {
        req = req.header("authorization", "Bearer token");
    }
    let req = req.method(method).body(Full::new(Bytes::new())).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("the proxy answers")
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status,
        cache_status: parts
            .headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Waits until `storage` has published `n` entries: the client may get the whole body before
/// the proxy finishes storing it.
async fn wait_stored(storage: &RedisStorage, n: u64) {
    for _ in 0..250 {
        if storage.stats().writes_stored >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "only {} writes stored, expected {n}",
        storage.stats().writes_stored
    );
}

async fn get(addr: SocketAddr, path: &str) -> Got {
    send(Method::GET, addr, path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_share_one_redis() {
    let mut redis = RedisServer::start();
    let origin = Origin::start().await;
    let (a, storage_a) = proxy(&origin, &redis).await;
    let (b, storage_b) = proxy(&origin, &redis).await;

    // Fetched through A, a hit on B: the origin saw one fetch.
    let first = get(a, "/shared").await;
    assert_eq!(
        (first.status, first.body.as_str()),
        (StatusCode::OK, "/shared #1")
    );
    assert!(!first.is_hit());
    wait_stored(storage_a, 1).await;
    let on_b = get(b, "/shared").await;
    assert!(on_b.is_hit(), "cache-status {:?}", on_b.cache_status);
    assert_eq!(on_b.body, "/shared #1");
    assert_eq!(origin.fetches(), 1);
    assert_eq!(storage_b.stats().hits, 1);

    // A PURGE through A removes the object for B too.
    let purge = Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(send(purge, a, "/shared").await.status, StatusCode::OK);
    let refetched = get(b, "/shared").await;
    assert!(!refetched.is_hit());
    assert_eq!(refetched.body, "/shared #2");
    assert_eq!(origin.fetches(), 2);

    // Redis down: both proxies keep answering, from the origin.
    redis.stop();
    for (i, proxy) in [a, b, a, b].into_iter().enumerate() {
        let got = get(proxy, "/shared").await;
        assert_eq!(got.status, StatusCode::OK);
        assert!(!got.is_hit());
        assert_eq!(got.body, format!("/shared #{}", 3 + i));
    }
    assert_eq!(origin.fetches(), 6);
    assert!(storage_a.stats().lookup_errors >= 2);
    assert!(storage_b.stats().lookup_errors >= 2);

    // Redis back (empty): caching resumes on its own.
    redis.restart();
    let mut stored = None;
    for _ in 0..50 {
        let got = get(a, "/shared").await;
        if storage_a.ping().await.is_ok() && !got.is_hit() {
            // A miss with Redis answering is stored.
            wait_stored(storage_a, 2).await;
            stored = Some(got.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored = stored.expect("proxy A stores again once redis is back");
    let fetches = origin.fetches();
    let on_b = get(b, "/shared").await;
    assert!(on_b.is_hit(), "cache-status {:?}", on_b.cache_status);
    assert_eq!(on_b.body, stored);
    assert_eq!(origin.fetches(), fetches);
}
