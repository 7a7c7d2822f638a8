//! Hit throughput and latency under concurrency: 16 tasks doing lookup + full body read for
//! one second each, against memory and against Redis (a throwaway `redis-server`), printing
//! req/s, p50 and p99. Plain `main`, no criterion: percentiles need every sample.
//!
//! `cargo bench -p larder-storage-redis --bench redis_load`

// Bench code: a failed unwrap is a broken bench.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc, missing_docs)]

use std::time::{Duration, Instant};

use larder_storage::{CacheKey, MemCache};
use larder_storage_redis::{RedisConfig, RedisStorage};
use larder_testkit::storage_contract::{Backend, fill};
use tracing::Span;

const TASKS: usize = 16;

async fn hit(storage: Backend, key: &CacheKey) -> usize {
    let span = Span::none();
    let (_, mut hit) = storage.lookup(key, &span).await.unwrap().unwrap();
    let mut read = 0;
    while let Some(chunk) = hit.read_body().await.unwrap() {
        read += chunk.len();
    }
    read
}

/// Runs the load for `run` and returns (requests per second, p50, p99).
async fn load(
    storage: Backend,
    key: &CacheKey,
    size: usize,
    run: Duration,
) -> (f64, Duration, Duration) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let key = key.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while start.elapsed() < run {
                    let t = Instant::now();
                    assert_eq!(hit(storage, &key).await, size);
                    samples.push(t.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pick = |q: f64| {
        // Rounded index into the sorted samples; the cast is within 0..len.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((all.len() - 1) as f64 * q).round() as usize;
        all[i]
    };
    #[allow(clippy::cast_precision_loss)] // Request counts are far below 2^52.
    let rps = all.len() as f64 / elapsed;
    (rps, pick(0.50), pick(0.99))
}

fn main() {
    // `cargo bench` passes --bench; anything else (a test run of all targets) is a smoke test.
    let run = if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(20)
    };
    let server = larder_testkit::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let redis: &'static RedisStorage = Box::leak(Box::new(
            RedisStorage::new(RedisConfig::new(server.url())).unwrap(),
        ));
        let memory: &'static MemCache = Box::leak(Box::new(MemCache::new()));
        println!("{TASKS} concurrent hits for {run:?} each (lookup + whole body)");
        for size in [1024, 64 * 1024] {
            let key = CacheKey::new("", format!("object-{size}"), "");
            for (name, storage) in [("memory", memory as Backend), ("redis", redis as Backend)] {
                fill(storage, &key, size).await;
                let (rps, p50, p99) = load(storage, &key, size, run).await;
                println!(
                    "{name:>6} {:>3} KiB: {rps:>10.0} req/s  p50 {p50:>10.1?}  p99 {p99:>10.1?}",
                    size / 1024
                );
            }
        }
    });
}
