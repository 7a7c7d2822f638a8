//! Benchmarks of the per-request cache work: the cacheability filters and a full hit through
//! `HttpCache` over `MemCache`.

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderName, StatusCode};
use larder_cache::age::ResponseTimes;
use larder_cache::filters::resp_cacheable_targeted;
use larder_cache::variance::variance_from_request;
use larder_cache::{
    CacheKey, CacheMeta, CacheMetaDefaults, HitStatus, HttpCache, MemCache, ResponseHeader, Storage,
};

fn response() -> ResponseHeader {
    let mut h = ResponseHeader::new(StatusCode::OK);
    for (n, v) in [
        (
            "cache-control",
            "public, max-age=3600, stale-while-revalidate=30",
        ),
        ("content-type", "text/html; charset=utf-8"),
        ("content-length", "1024"),
        ("date", "Wed, 25 Nov 2026 12:00:00 GMT"),
        ("last-modified", "Tue, 24 Nov 2026 12:00:00 GMT"),
        ("etag", "\"abc123\""),
        ("vary", "accept-encoding"),
        ("age", "3"),
    ] {
        h.append_header(n, v).expect("valid header");
    }
    h
}

fn filters(c: &mut Criterion) {
    let header = response();
    let targets = [HeaderName::from_static("cdn-cache-control")];
    let times = ResponseTimes::at(SystemTime::now());
    c.bench_function("resp_cacheable_targeted/typical", |b| {
        b.iter(|| {
            resp_cacheable_targeted(
                black_box(header.clone()),
                false,
                &targets,
                &CacheMetaDefaults::STRICT,
                times,
            )
        });
    });
    let mut request = http::HeaderMap::new();
    request.insert(
        "accept-encoding",
        "gzip, deflate, br".parse().expect("valid"),
    );
    c.bench_function("variance_from_request/one_header", |b| {
        b.iter(|| variance_from_request(black_box(&header.headers), black_box(&request)));
    });
}

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let storage: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    let key = CacheKey::new("", "https://example.com/index.html", "");
    let body = Bytes::from(vec![b'x'; 1024]);
    rt.block_on(async {
        let now = SystemTime::now();
        let meta = CacheMeta::new(now + Duration::from_hours(1), now, 0, 0, response());
        let span = tracing::Span::none();
        let mut w = storage
            .get_miss_handler(&key, &meta, &span)
            .await
            .expect("miss handler");
        w.write_body(body.clone(), true).await.expect("write");
        w.finish().await.expect("finish");
    });
    c.bench_function("http_cache/hit_1k", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut cache = HttpCache::new();
                cache.enable(storage, None, None, None, None);
                cache.set_cache_key(key.clone());
                let (meta, handler) = cache.cache_lookup().await.expect("lookup").expect("stored");
                cache.cache_found(meta, handler, HitStatus::Fresh);
                let mut n = 0;
                while let Some(chunk) = cache.hit_handler().read_body().await.expect("read") {
                    n += chunk.len();
                }
                cache.finish_hit_handler().await.expect("finish");
                black_box(n)
            })
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = filters, hit
}
criterion_main!(benches);
