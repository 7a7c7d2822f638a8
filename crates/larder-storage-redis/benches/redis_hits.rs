//! Cache hits through Redis next to hits in memory: lookup plus reading the whole body, for
//! 1 KiB and 64 KiB bodies. Starts its own `redis-server` on a free port (like the tests).
//!
//! `cargo bench -p larder-storage-redis --bench redis_hits`

// Bench code: a failed unwrap is a broken bench.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc, missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use larder_storage::{CacheKey, MemCache};
use larder_storage_redis::{RedisConfig, RedisStorage};
use larder_testkit::storage_contract::{Backend, fill};
use tracing::Span;

async fn hit(storage: Backend, key: &CacheKey) -> usize {
    let span = Span::none();
    let (_, mut hit) = storage.lookup(key, &span).await.unwrap().unwrap();
    let mut read = 0;
    while let Some(chunk) = hit.read_body().await.unwrap() {
        read += chunk.len();
    }
    hit.finish(storage, key, &span).await.unwrap();
    read
}

fn hits(c: &mut Criterion) {
    let server = larder_testkit::RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis: &'static RedisStorage = {
        let _runtime = rt.enter();
        Box::leak(Box::new(
            RedisStorage::new(RedisConfig::new(server.url())).unwrap(),
        ))
    };
    let memory: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    let mut group = c.benchmark_group("hit");
    for size in [1024, 64 * 1024] {
        let key = CacheKey::new("", format!("object-{size}"), "");
        group.throughput(Throughput::Bytes(size as u64));
        for (name, storage) in [("memory", memory as Backend), ("redis", redis as Backend)] {
            rt.block_on(fill(storage, &key, size));
            group.bench_with_input(
                BenchmarkId::new(name, format!("{}KiB", size / 1024)),
                &key,
                |b, key| {
                    b.to_async(&rt)
                        .iter(|| async { assert_eq!(hit(storage, key).await, size) });
                },
            );
        }
    }
    // The floor: one plain GET of a value of the same size through the same client.
    let client = redis::Client::open(server.url()).unwrap();
    let conn = rt
        .block_on(redis::aio::ConnectionManager::new(client))
        .unwrap();
    for size in [1024, 64 * 1024] {
        let key = format!("raw-{size}");
        let mut c = conn.clone();
        rt.block_on(async {
            redis::cmd("SET")
                .arg(&key)
                .arg(vec![7u8; size])
                .query_async::<()>(&mut c)
                .await
        })
        .unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("redis-plain-get", format!("{}KiB", size / 1024)),
            &key,
            |b, key| {
                b.to_async(&rt).iter(|| {
                    let mut c = conn.clone();
                    async move {
                        let value: Bytes = redis::cmd("GET")
                            .arg(key)
                            .query_async(&mut c)
                            .await
                            .unwrap();
                        assert_eq!(value.len(), size);
                    }
                });
            },
        );
    }
    group.finish();
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = hits
}
criterion_main!(benches);
