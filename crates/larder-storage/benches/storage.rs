//! Benchmarks of the meta encoding and of `MemCache` hits and misses.
//!
//! `cargo bench -p larder-storage --bench storage -- --warm-up-time 1 --measurement-time 2`

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::StatusCode;
use larder_storage::{CacheKey, CacheMeta, MemCache, ResponseHeader, Storage};
use tracing::Span;

fn meta() -> CacheMeta {
    let now = SystemTime::now();
    let mut header = ResponseHeader::new(StatusCode::OK);
    for (name, value) in [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "public, max-age=3600"),
        ("etag", "\"5d8c72a5edda8\""),
        ("last-modified", "Tue, 15 Nov 1994 12:45:26 GMT"),
        ("content-length", "1024"),
    ] {
        header.append_header(name, value).expect("valid field");
    }
    CacheMeta::new(now + Duration::from_hours(1), now, 60, 300, header)
}

fn bench_meta(c: &mut Criterion) {
    let meta = meta();
    let bytes = meta.serialize().expect("encodes");
    let shared = Bytes::from(bytes.clone());
    let mut g = c.benchmark_group("meta");
    g.bench_function("serialize", |b| b.iter(|| black_box(&meta).serialize()));
    g.bench_function("deserialize", |b| {
        b.iter(|| CacheMeta::deserialize(black_box(&bytes)));
    });
    g.bench_function("deserialize_shared", |b| {
        b.iter(|| CacheMeta::deserialize_shared(black_box(&shared)));
    });
    g.finish();
}

fn bench_memcache(c: &mut Criterion) {
    const BODY: usize = 1024;
    const KEYS: usize = 1024;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let cache: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    let span = Span::none();
    let meta = meta();
    let keys: Vec<CacheKey> = (0..KEYS)
        .map(|i| CacheKey::new("", format!("https://example.com/asset/{i}"), ""))
        .collect();
    let body = Bytes::from(vec![b'x'; BODY]);
    rt.block_on(async {
        for key in &keys {
            let mut miss = cache
                .get_miss_handler(key, &meta, &span)
                .await
                .expect("miss");
            miss.write_body(body.clone(), true).await.expect("write");
            miss.finish().await.expect("finish");
        }
    });

    let mut g = c.benchmark_group("memcache");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("hit_1k", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            rt.block_on(async {
                let key = &keys[i];
                let (meta, mut hit) = cache
                    .lookup(key, &span)
                    .await
                    .expect("lookup")
                    .expect("hit");
                let chunk = hit.read_body().await.expect("read");
                hit.finish(cache, key, &span).await.expect("finish");
                black_box((meta, chunk))
            })
        });
    });
    g.bench_function("miss_write_1k", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            rt.block_on(async {
                let mut miss = cache
                    .get_miss_handler(&keys[i], &meta, &span)
                    .await
                    .expect("miss");
                miss.write_body(body.clone(), true).await.expect("write");
                miss.finish().await.expect("finish")
            })
        });
    });
    g.finish();
}

criterion_group!(benches, bench_meta, bench_memcache);
criterion_main!(benches);
