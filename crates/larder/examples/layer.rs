//! `CacheLayer` around a plain service: the origin is a `tower::service_fn` that counts its
//! calls, served by hyper on 127.0.0.1 behind the cache. The second request is a cache hit and
//! never reaches the origin.
//!
//! Run with `cargo run -p larder --example layer --features proxy`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use larder::proxy::config::EvictionPolicy;
use larder::proxy::{CacheConfig, CacheLayer, DefaultHooks, ProxyBody};
use tower::{Layer, ServiceBuilder, service_fn};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The origin: an ordinary service answering from memory, cacheable for a minute.
    let origin_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&origin_calls);
    let origin = service_fn(move |req: Request<ProxyBody>| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let body = format!("hello from the origin for {}", req.uri().path());
            Ok::<_, Infallible>(
                Response::builder()
                    .header(header::CACHE_CONTROL, "max-age=60")
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(Full::new(Bytes::from(body)))
                    .expect("static header values"),
            )
        }
    });

    // The cache in front of it: 64 MiB in memory, LRU eviction.
    let layer = CacheLayer::new(
        CacheConfig::in_memory(64 << 20, EvictionPolicy::Lru),
        DefaultHooks,
    );
    let service = ServiceBuilder::new().service(layer.layer(origin));

    // Serve it with hyper on an ephemeral port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let hyper_service = hyper_util::service::TowerToHyperService::new(service);
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .await;
            });
        }
    });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for attempt in 1..=2 {
        let resp = client
            .get(format!("http://{addr}/greeting").parse()?)
            .await?;
        let status = resp
            .headers()
            .get("cache-status")
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .unwrap_or_default();
        let age = resp.headers().get(header::AGE).cloned();
        let body = resp.into_body().collect().await?.to_bytes();
        println!(
            "request {attempt}: {:?}, Cache-Status: {status}, Age: {age:?}",
            String::from_utf8_lossy(&body)
        );
    }
    let calls = origin_calls.load(Ordering::SeqCst);
    println!("origin calls: {calls}");
    assert_eq!(calls, 1, "the second request is a hit");
    Ok(())
}
