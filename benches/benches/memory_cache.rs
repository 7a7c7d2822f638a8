//! larder-memory-cache against its peers on the Zipf workloads of `larder_benches::CASES`
//! (exponents 0.9, 1.0 and 1.2 over 1 M keys, caches of 1 % and 10 % of them), each op a `get`
//! followed by a `put` on a miss (or a read-through `get` whose lookup returns at once). 1 and 2
//! threads sharing one cache. `moka-future` and the read-through rows run the headline workload
//! (Zipf 1.0, 1 %) only.
//!
//! Each row's cache is warmed by half the trace; the hit ratio of the other half, outside the
//! timed loop and split over the row's threads, is recorded with `larder_benches::record_metric`
//! (row `<group>/<subject>/<workload>`, metric `hit_ratio`) and printed.
//!
//! `cargo bench --bench memory_cache -- --warm-up-time 1 --measurement-time 3`. With
//! `LARDER_BENCH_QUICK=1` (`cargo xtask bench --quick`) the trace and batches are a tenth as long
//! and only `larder_benches::QUICK_CASES` run: a smoke test.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use larder_benches::{HEADLINE, N_KEYS, ZipfCase, cases, record_metric, scaled, zipf_keys};

/// The trace's length (a tenth in a quick run).
const TRACE_LEN: usize = 1 << 21;
/// Ops per criterion iteration (a tenth in a quick run).
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

/// Runs `ops` ops from `start` split over `threads` threads, each on its own part of the trace;
/// returns the hits.
fn split<F: Fn(usize, usize) -> usize + Sync>(
    threads: usize,
    start: usize,
    ops: usize,
    run: &F,
) -> usize {
    if threads == 1 {
        return run(start, ops);
    }
    let per_thread = ops / threads;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || run(start + t * per_thread, per_thread)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .sum()
    })
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn ratio(hits: usize, ops: usize) -> f64 {
    hits as f64 / ops as f64
}

/// Object-safe form of [`SyncCache`], so that the peers can sit in one list.
trait SyncCacheDyn: Sync {
    fn run(&self, trace: &[u64], start: usize, ops: usize) -> usize;
}
impl<C: SyncCache> SyncCacheDyn for C {
    fn run(&self, trace: &[u64], start: usize, ops: usize) -> usize {
        run_sync(self, trace, start, ops)
    }
}

/// A named constructor of a fresh cache of the given size.
type Peer = (&'static str, fn(usize) -> Box<dyn SyncCacheDyn>);

fn sync_peers() -> Vec<Peer> {
    vec![
        ("larder", |items| {
            Box::new(Larder(larder_memory_cache::MemoryCache::new(items)))
        }),
        ("pingora-memory-cache", |items| {
            Box::new(Pingora(pingora_memory_cache::MemoryCache::new(items)))
        }),
        ("tinyufo", |items| {
            Box::new(TinyUfo(tinyufo::TinyUfo::new(items, items)))
        }),
        ("moka-sync", |items| {
            Box::new(MokaSync(moka::sync::Cache::new(items as u64)))
        }),
        ("quick_cache", |items| {
            Box::new(QuickCache(quick_cache::sync::Cache::new(items)))
        }),
    ]
}

/// One row: a cache from `make` for `case`, driven by `run(cache, start, ops)` (which returns
/// the hits) on `threads` threads. The cache is built and warmed on first use, so that a
/// filtered run only sets up what it measures, and the hit ratio is recorded then.
struct Row<'a> {
    group: &'a str,
    name: &'a str,
    case: ZipfCase,
    threads: usize,
    trace_len: usize,
}

impl Row<'_> {
    fn bench<C: Sync>(
        &self,
        g: &mut BenchmarkGroup<'_, WallTime>,
        make: impl Fn() -> C,
        run: impl Fn(&C, usize, usize) -> usize + Sync,
    ) {
        let threads = self.threads;
        let batch = scaled(BATCH);
        let mut cache: Option<C> = None;
        let pos = AtomicUsize::new(0);
        g.bench_function(BenchmarkId::new(self.name, self.case.label()), |b| {
            let cache = &*cache.get_or_insert_with(|| {
                let cache = make();
                let half = self.trace_len / 2;
                let run = |start, ops| run(&cache, start, ops);
                split(threads, 0, half, &run);
                let hits = split(threads, half, half, &run);
                let hit_ratio = ratio(hits, half / threads * threads);
                let row = format!("{}/{}/{}", self.group, self.name, self.case.label());
                println!("hit ratio {row}: {:.2}%", hit_ratio * 100.0);
                record_metric("memory_cache", &row, "hit_ratio", hit_ratio);
                cache
            });
            b.iter_custom(|iters| {
                let ops = usize::try_from(iters).expect("iters fit") * batch;
                let start = pos.fetch_add(ops, Ordering::Relaxed);
                let began = Instant::now();
                black_box(split(threads, start, ops, &|s, n| run(cache, s, n)));
                began.elapsed()
            });
        });
    }
}

fn memory_cache(c: &mut Criterion) {
    let throughput = Throughput::Elements(scaled(BATCH) as u64);
    for threads in [1, 2] {
        let group = format!("get_put/{threads}t");
        let mut g = c.benchmark_group(&group);
        g.throughput(throughput.clone());
        for &case in cases() {
            let trace = zipf_keys(N_KEYS, case.s, scaled(TRACE_LEN), 7);
            let trace = trace.as_slice();
            for (name, make) in sync_peers() {
                let row = Row {
                    group: &group,
                    name,
                    case,
                    threads,
                    trace_len: trace.len(),
                };
                row.bench(
                    &mut g,
                    || make(case.items()),
                    |cache, start, ops| cache.run(trace, start, ops),
                );
            }
            if case == HEADLINE {
                let row = Row {
                    group: &group,
                    name: "moka-future",
                    case,
                    threads,
                    trace_len: trace.len(),
                };
                row.bench(
                    &mut g,
                    || MokaFuture(moka::future::Cache::new(case.items() as u64)),
                    |cache, start, ops| runtime().block_on(run_async(cache, trace, start, ops)),
                );
            }
        }
        g.finish();

        let group = format!("read_through/{threads}t");
        let mut g = c.benchmark_group(&group);
        g.throughput(throughput.clone());
        let case = HEADLINE;
        let trace = zipf_keys(N_KEYS, case.s, scaled(TRACE_LEN), 7);
        let trace = trace.as_slice();
        let row = |name| Row {
            group: &group,
            name,
            case,
            threads,
            trace_len: trace.len(),
        };
        row("larder").bench(
            &mut g,
            || LarderRt(larder_memory_cache::RTCache::new(case.items(), None, None)),
            |cache, start, ops| runtime().block_on(run_async(cache, trace, start, ops)),
        );
        row("pingora-memory-cache").bench(
            &mut g,
            || PingoraRt(pingora_memory_cache::RTCache::new(case.items(), None, None)),
            |cache, start, ops| runtime().block_on(run_async(cache, trace, start, ops)),
        );
        g.finish();
    }
}

criterion_group!(benches, memory_cache);
criterion_main!(benches);
