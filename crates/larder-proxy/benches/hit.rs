//! The hit path of `CacheService` in process (no sockets), beside the bare inner service
//! answering the same bytes from memory: the ratio is the cache's own cost per request.

#![allow(missing_docs, clippy::unwrap_used)] // a bench binary, not an API

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use larder_proxy::config::EvictionPolicy;
use larder_proxy::{CacheConfig, CacheLayer, DefaultHooks};
use tower::{Layer, Service, ServiceExt};

fn origin(
    body: Bytes,
) -> impl Service<
    Request<larder_proxy::ProxyBody>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |_req: Request<larder_proxy::ProxyBody>| {
        let body = body.clone();
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=3600")
                    .header("content-type", "text/plain")
                    .header("content-length", body.len())
                    .body(Full::new(body))
                    .unwrap(),
            )
        }
    })
}

fn request() -> Request<Full<Bytes>> {
    Request::get("/bench/object")
        .header("host", "example.com")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = Bytes::from(vec![b'x'; 1024]);
    let mut group = c.benchmark_group("proxy_hit_1KiB");

    let bare = origin(body.clone());
    group.bench_function("bare_inner_service", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = request().map(larder_proxy::body::boxed);
                let resp = bare.clone().oneshot(req).await.unwrap();
                black_box(resp.into_body().collect().await.unwrap().to_bytes())
            })
        });
    });

    for policy in [EvictionPolicy::Tinyufo, EvictionPolicy::Lru] {
        let layer = CacheLayer::new(CacheConfig::in_memory(64 << 20, policy), DefaultHooks);
        let svc = layer.layer(origin(body.clone()));
        rt.block_on(async {
            for _ in 0..2 {
                let resp = svc.clone().oneshot(request()).await.unwrap();
                resp.into_body().collect().await.unwrap();
            }
        });
        assert_eq!(
            layer.metrics().hits.get(),
            1,
            "the second request was a hit"
        );
        group.bench_function(format!("cache_service_hit_{policy:?}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let resp = svc.clone().oneshot(request()).await.unwrap();
                    black_box(resp.into_body().collect().await.unwrap().to_bytes())
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, hit);
criterion_main!(benches);
