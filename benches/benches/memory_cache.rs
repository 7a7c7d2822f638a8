//! larder-memory-cache against its peers on one workload: Zipf 0.99 over 1 M keys, a cache of
//! 1 % of them (10 k items), each op a `get` followed by a `put` on a miss (or a read-through
//! `get` whose lookup returns at once). 1 and 2 threads. Hit ratios are printed before the
//! timings.
//!
//! `cargo bench --bench memory_cache -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const N_KEYS: u64 = 1_000_000;
const ZIPF_S: f64 = 0.99;
const CACHE_ITEMS: usize = 10_000;
const TRACE_LEN: usize = 1 << 21;
/// Ops per criterion iteration.
const BATCH: usize = 10_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A synchronous cache under test: one op = get, and put on a miss. Returns whether it hit.
trait SyncCache: Sync {
    fn op(&self, key: u64) -> bool;
}

struct Larder(larder_memory_cache::MemoryCache<u64, u64>);
impl SyncCache for Larder {
    fn op(&self, key: u64) -> bool {
        if self.0.get(&key).0.is_some() {
            return true;
        }
        self.0.put(&key, key, None);
        false
    }
}

struct Pingora(pingora_memory_cache::MemoryCache<u64, u64>);
impl SyncCache for Pingora {
    fn op(&self, key: u64) -> bool {
        if self.0.get(&key).0.is_some() {
            return true;
        }
        self.0.put(&key, key, None);
        false
    }
}

struct TinyUfo(tinyufo::TinyUfo<u64, u64>);
impl SyncCache for TinyUfo {
    fn op(&self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.put(key, key, 1);
        false
    }
}

struct MokaSync(moka::sync::Cache<u64, u64>);
impl SyncCache for MokaSync {
    fn op(&self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, key);
        false
    }
}

struct QuickCache(quick_cache::sync::Cache<u64, u64>);
impl SyncCache for QuickCache {
    fn op(&self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, key);
        false
    }
}

/// An asynchronous cache under test, driven on a current-thread tokio runtime per thread.
trait AsyncCache: Sync {
    fn op(&self, key: u64) -> impl Future<Output = bool> + Send;
}

struct MokaFuture(moka::future::Cache<u64, u64>);
impl AsyncCache for MokaFuture {
    async fn op(&self, key: u64) -> bool {
        if self.0.get(&key).await.is_some() {
            return true;
        }
        self.0.insert(key, key).await;
        false
    }
}

/// The read-through lookup: the value is the key, available at once.
struct Identity;
impl larder_memory_cache::Lookup<u64, u64, ()> for Identity {
    async fn lookup(key: &u64, _: Option<&()>) -> Result<(u64, Option<Duration>), BoxError> {
        Ok((*key, None))
    }
}
#[async_trait::async_trait]
impl pingora_memory_cache::Lookup<u64, u64, ()> for Identity {
    async fn lookup(key: &u64, _: Option<&()>) -> Result<(u64, Option<Duration>), BoxError> {
        Ok((*key, None))
    }
}

struct LarderRt(larder_memory_cache::RTCache<u64, u64, Identity, ()>);
impl AsyncCache for LarderRt {
    async fn op(&self, key: u64) -> bool {
        let (value, status) = self.0.get(&key, None, None).await;
        black_box(value.ok());
        status.is_hit()
    }
}

struct PingoraRt(pingora_memory_cache::RTCache<u64, u64, Identity, ()>);
impl AsyncCache for PingoraRt {
    async fn op(&self, key: u64) -> bool {
        let (value, status) = self.0.get(&key, None, None).await;
        black_box(value.ok());
        status.is_hit()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// Runs `ops` ops of the trace from `start` (wrapping), returning the hits.
fn run_sync(cache: &impl SyncCache, trace: &[u64], start: usize, ops: usize) -> usize {
    let mut hits = 0;
    for i in 0..ops {
        hits += usize::from(cache.op(trace[(start + i) % trace.len()]));
    }
    hits
}

async fn run_async(cache: &impl AsyncCache, trace: &[u64], start: usize, ops: usize) -> usize {
    let mut hits = 0;
    for i in 0..ops {
        hits += usize::from(cache.op(trace[(start + i) % trace.len()]).await);
    }
    hits
}

/// Runs `ops` ops split over `threads` threads, each on its own part of the trace; returns the
/// wall time.
fn timed<F: Fn(usize, usize) -> usize + Sync>(
    threads: usize,
    ops: usize,
    pos: &AtomicUsize,
    run: F,
) -> Duration {
    let per_thread = ops / threads;
    let base = pos.fetch_add(ops, Ordering::Relaxed);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let run = &run;
            s.spawn(move || black_box(run(base + t * per_thread, per_thread)));
        }
    });
    start.elapsed()
}

/// Warms `cache` on the first half of the trace and returns the hit ratio over the second half.
fn hit_ratio_sync(cache: &impl SyncCache, trace: &[u64]) -> f64 {
    let half = trace.len() / 2;
    run_sync(cache, trace, 0, half);
    ratio(run_sync(cache, trace, half, half), half)
}

fn hit_ratio_async(cache: &impl AsyncCache, trace: &[u64]) -> f64 {
    let half = trace.len() / 2;
    runtime().block_on(async {
        run_async(cache, trace, 0, half).await;
        ratio(run_async(cache, trace, half, half).await, half)
    })
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn ratio(hits: usize, ops: usize) -> f64 {
    hits as f64 / ops as f64
}

/// A named constructor of a fresh cache.
type Peer = (&'static str, Box<dyn Fn() -> Box<dyn SyncCacheDyn>>);

fn sync_peers() -> Vec<Peer> {
    vec![
        (
            "larder",
            Box::new(|| Box::new(Larder(larder_memory_cache::MemoryCache::new(CACHE_ITEMS)))),
        ),
        (
            "pingora-memory-cache",
            Box::new(|| Box::new(Pingora(pingora_memory_cache::MemoryCache::new(CACHE_ITEMS)))),
        ),
        (
            "tinyufo",
            Box::new(|| Box::new(TinyUfo(tinyufo::TinyUfo::new(CACHE_ITEMS, CACHE_ITEMS)))),
        ),
        (
            "moka-sync",
            Box::new(|| Box::new(MokaSync(moka::sync::Cache::new(CACHE_ITEMS as u64)))),
        ),
        (
            "quick_cache",
            Box::new(|| Box::new(QuickCache(quick_cache::sync::Cache::new(CACHE_ITEMS)))),
        ),
    ]
}

/// Object-safe wrapper so that the peers can sit in one list.
trait SyncCacheDyn: Sync {
    fn run(&self, trace: &[u64], start: usize, ops: usize) -> usize;
    fn hit_ratio(&self, trace: &[u64]) -> f64;
}
impl<C: SyncCache> SyncCacheDyn for C {
    fn run(&self, trace: &[u64], start: usize, ops: usize) -> usize {
        run_sync(self, trace, start, ops)
    }
    fn hit_ratio(&self, trace: &[u64]) -> f64 {
        hit_ratio_sync(self, trace)
    }
}

fn bench_async<C: AsyncCache>(
    c: &mut Criterion,
    group: &str,
    name: &str,
    make: impl Fn() -> C,
    trace: &[u64],
) {
    let cache = make();
    let hr = hit_ratio_async(&cache, trace);
    println!("hit ratio {group}/{name}: {:.2}%", hr * 100.0);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(BATCH as u64));
    for threads in [1, 2] {
        let pos = AtomicUsize::new(0);
        g.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
            b.iter_custom(|iters| {
                let ops = usize::try_from(iters).expect("iters fit") * BATCH;
                timed(threads, ops, &pos, |start, ops| {
                    runtime().block_on(run_async(&cache, trace, start, ops))
                })
            });
        });
    }
    g.finish();
}

fn memory_cache(c: &mut Criterion) {
    let trace = larder_benches::zipf_keys(N_KEYS, ZIPF_S, TRACE_LEN, 7);

    for (name, make) in sync_peers() {
        let hr = make().hit_ratio(&trace);
        println!("hit ratio get_put/{name}: {:.2}%", hr * 100.0);
        // A warm cache for the timings.
        let cache = make();
        cache.run(&trace, 0, trace.len() / 2);
        let mut g = c.benchmark_group("get_put");
        g.throughput(Throughput::Elements(BATCH as u64));
        for threads in [1, 2] {
            let pos = AtomicUsize::new(trace.len() / 2);
            g.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
                b.iter_custom(|iters| {
                    let ops = usize::try_from(iters).expect("iters fit") * BATCH;
                    timed(threads, ops, &pos, |start, ops| {
                        cache.run(&trace, start, ops)
                    })
                });
            });
        }
        g.finish();
    }

    bench_async(
        c,
        "get_put",
        "moka-future",
        || MokaFuture(moka::future::Cache::new(CACHE_ITEMS as u64)),
        &trace,
    );
    bench_async(
        c,
        "read_through",
        "larder",
        || LarderRt(larder_memory_cache::RTCache::new(CACHE_ITEMS, None, None)),
        &trace,
    );
    bench_async(
        c,
        "read_through",
        "pingora-memory-cache",
        || PingoraRt(pingora_memory_cache::RTCache::new(CACHE_ITEMS, None, None)),
        &trace,
    );
}

criterion_group!(benches, memory_cache);
criterion_main!(benches);
