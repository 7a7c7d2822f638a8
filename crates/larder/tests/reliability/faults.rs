//! Scenario 2: faults in the origin, the client and the storage.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;
use larder::cache::{
    CacheKey, CacheMeta, CompactCacheKey, HitHandler, MemCache, MissHandler, PurgeType, Storage,
};
use larder::proxy::{ProxyBody, Upstream};
use parking_lot::Mutex;
use tower::ServiceExt;
use tracing::Span;

use larder_testkit::{
    Origin, Proxy, chunked_body, client, free_port, get, pattern, respond, send, send_with,
};

use crate::config;

/// An origin whose first request for every path fails after `sent` of `total` bytes, with or
/// without `Content-Length`; later requests get the whole body.
async fn resetting_origin(total: usize, sent: usize, content_length: bool) -> Origin {
    Origin::per_path(move |_, n| async move {
        let full = pattern(3, total);
        let fail = n == 0;
        let chunks = if fail {
            vec![full.slice(..sent)]
        } else {
            vec![full.slice(..total / 2), full.slice(total / 2..)]
        };
        let mut resp = http::Response::builder()
            .status(200)
            .header("cache-control", "max-age=60");
        if content_length {
            resp = resp.header("content-length", total);
        }
        resp.body(chunked_body(chunks, Duration::from_millis(5), fail))
            .unwrap()
    })
    .await
}

async fn reset_mid_body(content_length: bool) {
    let (total, sent) = (64 * 1024, 10 * 1024);
    let origin = resetting_origin(total, sent, content_length).await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let first = get(&proxy.url("/reset")).await;
    assert_eq!(first.status, 200);
    assert!(
        first.body.is_err(),
        "a reset mid-body must reach the client as an error, got {} clean bytes",
        first.body.as_ref().map_or(0, Bytes::len)
    );
    let second = get(&proxy.url("/reset")).await;
    assert_eq!(second.bytes(), &pattern(3, total), "the refetch is whole");
    assert!(second.ours().fwd.is_some(), "{}", second.cache_status());
    assert_eq!(
        origin.hits_for("/reset"),
        2,
        "nothing was stored by the failed fetch"
    );
    let third = get(&proxy.url("/reset")).await;
    assert!(third.ours().hit, "{}", third.cache_status());
    assert_eq!(third.bytes(), &pattern(3, total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_mid_body_with_content_length() {
    reset_mid_body(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_mid_body_chunked() {
    reset_mid_body(false).await;
}

/// An inner service whose upstream can be swapped (to a closed port, say) between requests.
#[derive(Clone)]
struct Switch(Arc<Mutex<Upstream>>);

impl tower::Service<Request<ProxyBody>> for Switch {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = larder::proxy::BoxError;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        let upstream = self.0.lock().clone();
        Box::pin(upstream.oneshot(req))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_covers_refused_connections_and_5xx_then_expires() {
    // Stale as soon as stored, usable for 2 s when the origin fails (RFC 5861 §4).
    let broken = Arc::new(AtomicBool::new(false));
    let b = Arc::clone(&broken);
    let origin = Origin::per_path(move |_, _| {
        let broken = b.load(Ordering::SeqCst);
        async move {
            if broken {
                respond(500, &[], "origin error")
            } else {
                respond(
                    200,
                    &[("cache-control", "max-age=0, stale-if-error=2")],
                    "good",
                )
            }
        }
    })
    .await;
    let switch = Switch(Arc::new(Mutex::new(Upstream::new(&origin.uri()).unwrap())));
    // The default serves stale on a disconnected upstream even past stale-if-error (RFC 9111
    // §4.2.4); `strict` turns that off.
    let proxy = Proxy::with_inner(switch.clone(), config(Duration::from_secs(2))).await;
    let mut cfg = config(Duration::from_secs(2));
    cfg.serve_stale_on_disconnect = false;
    let strict = Proxy::with_inner(switch.clone(), cfg).await;
    let (url, strict_url) = (proxy.url("/sie"), strict.url("/sie"));
    assert_eq!(get(&url).await.text(), "good");
    assert_eq!(get(&strict_url).await.text(), "good");

    // 5xx inside the window: the stale response is served.
    broken.store(true, Ordering::SeqCst);
    for url in [&url, &strict_url] {
        let r = get(url).await;
        println!("5xx in window: {} {}", r.status, r.cache_status());
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "good"));
    }

    // Refused connections inside the window: the stale response is served.
    *switch.0.lock() = Upstream::new(&format!("http://127.0.0.1:{}", free_port())).unwrap();
    for url in [&url, &strict_url] {
        let r = get(url).await;
        println!("refused in window: {} {}", r.status, r.cache_status());
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "good"));
    }

    // After the window (age > 0 + 2 s): refused gives 502 when strict; by default the
    // disconnected cache still serves stale.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let r = get(&strict_url).await;
    println!(
        "refused after window, strict: {} {}",
        r.status,
        r.cache_status()
    );
    assert_eq!(r.status, 502);
    let r = get(&url).await;
    println!(
        "refused after window, default: {} {}",
        r.status,
        r.cache_status()
    );
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "good"));
    assert!(r.ours().is_fwd("stale"));
    assert!(
        r.ours().has_detail("stale-on-disconnect"),
        "{}",
        r.cache_status()
    );

    // A 5xx after the window passes through on both.
    *switch.0.lock() = Upstream::new(&origin.uri()).unwrap();
    for url in [&url, &strict_url] {
        let r = get(url).await;
        println!("5xx after window: {} {}", r.status, r.cache_status());
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (500, "origin error")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_download_leaves_no_truncated_entry() {
    let total = 256 * 1024;
    let origin = Origin::per_path(move |_, _| async move {
        let full = pattern(9, total);
        let chunks = (0..16)
            .map(|i| full.slice(i * total / 16..(i + 1) * total / 16))
            .collect();
        http::Response::builder()
            .header("cache-control", "max-age=60")
            .header("content-length", total)
            .body(chunked_body(chunks, Duration::from_millis(20), false))
            .unwrap()
    })
    .await;
    let proxy = Proxy::start(&origin, config(Duration::from_secs(2))).await;
    let url = proxy.url("/big");
    {
        let resp = client()
            .request(
                Request::get(&url)
                    .body(http_body_util::Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let mut body = resp.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
        // Dropping the body (and the client with it) closes the connection mid-download.
    }
    // Whatever the proxy did with the fill (finished it or abandoned it), the next clients
    // get the whole body.
    for _ in 0..3 {
        let r = get(&url).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.bytes().len(), total, "{}", r.cache_status());
        assert_eq!(r.bytes(), &pattern(9, total));
        println!(
            "after disconnect: {} ({} fetches)",
            r.cache_status(),
            origin.hits_for("/big")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_during_concurrent_reads_never_serves_a_partial_body() {
    let total = 128 * 1024;
    let origin = Origin::per_path(move |_, _| async move {
        respond(200, &[("cache-control", "max-age=60")], pattern(5, total))
    })
    .await;
    let mut cfg = config(Duration::from_secs(2));
    cfg.purge_token = Some("tok".to_owned());
    let proxy = Proxy::start(&origin, cfg).await;
    let url = proxy.url("/hot");
    assert_eq!(get(&url).await.bytes().len(), total);
    let client = client();
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                for _ in 0..25 {
                    let r = send_with(&client, Method::GET, &url, &[]).await;
                    assert_eq!(r.status, 200);
                    assert_eq!(r.bytes(), &pattern(5, total));
                }
            })
        })
        .collect();
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let mut purged = 0;
    for _ in 0..20 {
        let r = send_with(
            &client,
            purge.clone(),
            &url,
            &[("authorization", "Bearer tok")],
        )
        .await;
        assert!(matches!(r.status.as_u16(), 200 | 404), "{}", r.status);
        purged += usize::from(r.status == 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for r in readers {
        r.await.unwrap();
    }
    println!(
        "purge during reads: 400 reads, {purged} purges took effect, {} fetches",
        origin.hits_for("/hot")
    );
    assert!(purged >= 1);
    assert!(origin.hits_for("/hot") >= 2, "a purge forces a refetch");
}

/// A storage that fails lookups and/or writes on demand, otherwise a [`MemCache`].
struct FailingStorage {
    inner: &'static MemCache,
    fail_lookup: AtomicBool,
    fail_write: AtomicBool,
}

fn backend_error(what: &str) -> larder::storage::Error {
    larder::storage::Error::Backend(format!("injected {what} failure").into())
}

#[async_trait]
impl Storage for FailingStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &Span,
    ) -> larder::storage::Result<Option<(CacheMeta, HitHandler)>> {
        if self.fail_lookup.load(Ordering::SeqCst) {
            return Err(backend_error("lookup"));
        }
        self.inner.lookup(key, trace).await
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> larder::storage::Result<MissHandler> {
        if self.fail_write.load(Ordering::SeqCst) {
            return Err(backend_error("write"));
        }
        self.inner.get_miss_handler(key, meta, trace).await
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &Span,
    ) -> larder::storage::Result<bool> {
        self.inner.purge(key, purge_type, trace).await
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &Span,
    ) -> larder::storage::Result<bool> {
        self.inner.update_meta(key, meta, trace).await
    }

    fn support_streaming_partial_write(&self) -> bool {
        self.inner.support_streaming_partial_write()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_errors_are_served_from_upstream() {
    let origin = Origin::per_path(|parts, _| async move {
        let body = format!("body of {}", parts.uri.path());
        respond(200, &[("cache-control", "max-age=60")], body)
    })
    .await;
    let storage: &'static FailingStorage = Box::leak(Box::new(FailingStorage {
        inner: Box::leak(Box::new(MemCache::new())),
        fail_lookup: AtomicBool::new(false),
        fail_write: AtomicBool::new(true),
    }));
    // `CacheConfig` is non-exhaustive: start from a bounded config and swap the storage in.
    let mut cfg = config(Duration::from_secs(2));
    cfg.storage = Some(storage);
    let proxy = Proxy::start(&origin, cfg).await;

    // Writes fail: every request is answered from upstream, nothing is stored.
    for _ in 0..3 {
        let r = get(&proxy.url("/w")).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "body of /w"));
    }
    assert_eq!(origin.hits_for("/w"), 3);
    assert_eq!(storage.inner.len(), 0);

    // Writes work again: stored; then lookups fail: answered from upstream, not a 5xx.
    storage.fail_write.store(false, Ordering::SeqCst);
    assert_eq!(get(&proxy.url("/l")).await.text(), "body of /l");
    assert!(get(&proxy.url("/l")).await.ours().hit);
    storage.fail_lookup.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let r = send(Method::GET, &proxy.url("/l"), &[]).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "body of /l"));
    }
    println!(
        "storage errors: /w {} fetches for 3 requests, /l {} fetches for 5 requests",
        origin.hits_for("/w"),
        origin.hits_for("/l")
    );
    assert_eq!(origin.hits_for("/l"), 4);
}
