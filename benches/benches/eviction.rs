//! Eviction throughput and hit ratio: larder-eviction against pingora-lru, `TinyUFO` and a
//! `lru::LruCache` behind a mutex, on Zipf key streams over 1M keys (exponents 0.9, 1.0 and 1.2)
//! with caches of 1 % and 10 % of the keys (entries of weight 1): see `larder_benches::CASES`.
//!
//! Subjects: `larder_lru` (`promote`, then `admit_and_evict` on a miss), `larder_lru_one_call`
//! (`promote_or_admit_and_evict`, one lock per operation), `larder_lru_split` (`promote`, then
//! `admit` + `evict_to_limit`, the calls pingora-lru offers), `pingora_lru`, `larder_tinyufo`
//! (`TinyUfoPolicy::access_or_admit`), `tinyufo` and `lru_mutex`; all LRUs have 16 shards.
//!
//! Rows, each at 1 and 2 threads sharing one cache:
//! - `get_or_admit`: promote (or get) the key; on a miss admit it and evict to the limit; every
//!   workload;
//! - `admit_only`: admit every key and evict to the limit; the headline workload (Zipf 1.0, 1 %);
//! - `promote_only`: promote (or get) every key in a cache warmed by one `get_or_admit` pass; the
//!   headline workload.
//!
//! Throughput is printed by criterion (elements = operations). Each subject is first warmed
//! with one pass over half the stream; the hit ratio of a second pass over the other half, outside
//! the timed loop, is recorded for the `get_or_admit` rows with `larder_benches::record_metric`
//! (row `<group>/<subject>/<workload>`, metric `hit_ratio`) and printed.
//!
//! With `LARDER_BENCH_QUICK=1` (`cargo xtask bench --quick`) streams and batches are a tenth as
//! long and only `larder_benches::QUICK_CASES` run: a smoke test.
//!
//! Run: `cargo bench --bench eviction -- --warm-up-time 1 --measurement-time 3`. With
//! `LARDER_BENCH_CPU_TIME=1` the single-threaded rows are timed by the thread's CPU time instead
//! of wall time (Linux), which stays comparable on a loaded machine.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use larder_benches::{HEADLINE, N_KEYS, ZipfCase, cases, record_metric, scaled, zipf_keys};
use larder_eviction::{EvictionPolicy, TinyUfoPolicy};
use parking_lot::Mutex;

const SHARDS: usize = 16;
/// Keys in each thread's stream (a tenth in a quick run).
const STREAM_LEN: usize = 2_000_000;
/// Keys each thread handles per timed iteration (a tenth in a quick run).
const CHUNK: usize = 50_000;

/// A cache under test, shared by reference between threads.
trait Subject: Sync {
    /// Promotes `key` if present (returns true), else admits it and evicts to the limit.
    fn get_or_admit(&self, key: u64) -> bool;
    /// Admits `key` and evicts to the limit.
    fn admit(&self, key: u64);
    /// Promotes `key` if present.
    fn promote(&self, key: u64) -> bool;
}

struct LarderLru(larder_eviction::Lru<(), SHARDS>);

impl LarderLru {
    fn new(items: usize) -> Self {
        Self(larder_eviction::Lru::with_capacity(
            items,
            items / SHARDS + 64,
        ))
    }
}

impl Subject for LarderLru {
    fn get_or_admit(&self, key: u64) -> bool {
        if self.0.promote(key) {
            return true;
        }
        drop(self.0.admit_and_evict(key, (), 1));
        false
    }
    fn admit(&self, key: u64) {
        drop(self.0.admit_and_evict(key, (), 1));
    }
    fn promote(&self, key: u64) -> bool {
        self.0.promote(key)
    }
}

/// larder's one-call form: one shard lock per operation.
struct LarderLruOneCall(LarderLru);

impl Subject for LarderLruOneCall {
    fn get_or_admit(&self, key: u64) -> bool {
        self.0.0.promote_or_admit_and_evict(key, 1, || (), drop)
    }
    fn admit(&self, key: u64) {
        self.0.0.admit_and_evict_with(key, (), 1, drop);
    }
    fn promote(&self, key: u64) -> bool {
        self.0.0.promote(key)
    }
}

/// larder's split form, the same calls pingora-lru makes.
struct LarderLruSplit(LarderLru);

impl Subject for LarderLruSplit {
    fn get_or_admit(&self, key: u64) -> bool {
        if self.0.0.promote(key) {
            return true;
        }
        self.0.0.admit(key, (), 1);
        drop(self.0.0.evict_to_limit());
        false
    }
    fn admit(&self, key: u64) {
        self.0.0.admit(key, (), 1);
        drop(self.0.0.evict_to_limit());
    }
    fn promote(&self, key: u64) -> bool {
        self.0.0.promote(key)
    }
}

struct LarderTinyUfo(TinyUfoPolicy<()>);

impl Subject for LarderTinyUfo {
    fn get_or_admit(&self, key: u64) -> bool {
        self.0.access_or_admit(key, (), 1).is_none()
    }
    fn admit(&self, key: u64) {
        drop(self.0.admit(key, (), 1));
    }
    fn promote(&self, key: u64) -> bool {
        self.0.access(key)
    }
}

struct PingoraLru(pingora_lru::Lru<(), SHARDS>);

impl Subject for PingoraLru {
    fn get_or_admit(&self, key: u64) -> bool {
        if self.0.promote(key) {
            return true;
        }
        self.0.admit(key, (), 1);
        drop(self.0.evict_to_limit());
        false
    }
    fn admit(&self, key: u64) {
        self.0.admit(key, (), 1);
        drop(self.0.evict_to_limit());
    }
    fn promote(&self, key: u64) -> bool {
        self.0.promote(key)
    }
}

struct TinyUfo(tinyufo::TinyUfo<u64, ()>);

impl Subject for TinyUfo {
    fn get_or_admit(&self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        drop(self.0.put(key, (), 1));
        false
    }
    fn admit(&self, key: u64) {
        drop(self.0.put(key, (), 1));
    }
    fn promote(&self, key: u64) -> bool {
        self.0.get(&key).is_some()
    }
}

struct MutexLru(Mutex<lru::LruCache<u64, ()>>);

impl Subject for MutexLru {
    fn get_or_admit(&self, key: u64) -> bool {
        let mut cache = self.0.lock();
        if cache.get(&key).is_some() {
            return true;
        }
        cache.put(key, ());
        false
    }
    fn admit(&self, key: u64) {
        self.0.lock().put(key, ());
    }
    fn promote(&self, key: u64) -> bool {
        self.0.lock().get(&key).is_some()
    }
}

/// Builds a subject holding `items` entries.
type Factory = fn(usize) -> Box<dyn Subject>;

fn subjects() -> Vec<(&'static str, Factory)> {
    vec![
        ("larder_lru", |items| Box::new(LarderLru::new(items))),
        ("larder_lru_one_call", |items| {
            Box::new(LarderLruOneCall(LarderLru::new(items)))
        }),
        ("larder_lru_split", |items| {
            Box::new(LarderLruSplit(LarderLru::new(items)))
        }),
        ("pingora_lru", |items| {
            Box::new(PingoraLru(pingora_lru::Lru::with_capacity(
                items,
                items / SHARDS + 64,
            )))
        }),
        ("larder_tinyufo", |items| {
            Box::new(LarderTinyUfo(TinyUfoPolicy::new(items, items)))
        }),
        ("tinyufo", |items| {
            Box::new(TinyUfo(tinyufo::TinyUfo::new(items, items)))
        }),
        ("lru_mutex", |items| {
            let cap = NonZeroUsize::new(items).expect("non-zero capacity");
            Box::new(MutexLru(Mutex::new(lru::LruCache::new(cap))))
        }),
    ]
}

#[derive(Clone, Copy)]
enum Workload {
    GetOrAdmit,
    AdmitOnly,
    PromoteOnly,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::GetOrAdmit => "get_or_admit",
            Self::AdmitOnly => "admit_only",
            Self::PromoteOnly => "promote_only",
        }
    }

    /// Runs `keys` against `subject`; returns the number of hits.
    fn run(self, subject: &dyn Subject, keys: &[u64]) -> usize {
        let mut hits = 0;
        for &k in keys {
            let hit = match self {
                Self::GetOrAdmit => subject.get_or_admit(k),
                Self::AdmitOnly => {
                    subject.admit(k);
                    false
                }
                Self::PromoteOnly => subject.promote(k),
            };
            hits += usize::from(hit);
        }
        hits
    }
}

/// One key stream of `len` keys per thread (different seeds, same distribution).
fn streams(case: ZipfCase, threads: usize, len: usize) -> Vec<Vec<u64>> {
    (0..threads)
        .map(|t| zipf_keys(N_KEYS, case.s, len, 0x5EED + t as u64))
        .collect()
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux); `None` elsewhere.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Whether to time single-threaded rows with CPU time instead of wall time
/// (`LARDER_BENCH_CPU_TIME=1`).
///
/// On a shared, oversubscribed machine wall time mostly measures the scheduler; CPU time per
/// operation stays comparable between subjects. It hides time spent parked on a lock, so judge
/// contention with wall time on a quiet machine.
fn cpu_time_mode() -> bool {
    std::env::var_os("LARDER_BENCH_CPU_TIME").is_some_and(|v| v == "1")
}

/// Runs `keys[from..from + len]` on the current thread; returns (CPU time if known, hits).
fn run_one(
    workload: Workload,
    subject: &dyn Subject,
    keys: &[u64],
    from: usize,
    len: usize,
) -> (Option<Duration>, usize) {
    let before = thread_cpu_time();
    let hits = workload.run(subject, &keys[from..from + len]);
    let cpu = before.and_then(|b| Some(thread_cpu_time()?.saturating_sub(b)));
    (cpu, hits)
}

/// Runs each thread's `keys[t][from..from + len]` concurrently; returns (time, hits), where the
/// time is wall time, or with [`cpu_time_mode`] and one thread that thread's CPU time.
fn run_threads(
    workload: Workload,
    subject: &dyn Subject,
    keys: &[Vec<u64>],
    from: usize,
    len: usize,
) -> (Duration, usize) {
    let start = Instant::now();
    let results: Vec<(Option<Duration>, usize)> = if keys.len() == 1 {
        vec![run_one(workload, subject, &keys[0], from, len)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = keys
                .iter()
                .map(|stream| s.spawn(move || run_one(workload, subject, stream, from, len)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bench thread panicked"))
                .collect()
        })
    };
    let wall = start.elapsed();
    let hits = results.iter().map(|r| r.1).sum();
    let cpu: Option<Duration> = results.iter().map(|r| r.0).sum();
    // Short-lived threads often read a CPU time of zero (the counter advances at scheduler
    // ticks), so CPU time is used for the single-threaded rows only.
    let time = match cpu {
        Some(cpu) if cpu_time_mode() && keys.len() == 1 => cpu,
        _ => wall,
    };
    (time, hits)
}

/// Builds a subject for `case` and brings it to steady state: one `get_or_admit` pass over the
/// first half of each stream, then one over the second half. Returns the subject and the hit
/// ratio of the second pass.
fn warmed(make: Factory, case: ZipfCase, keys: &[Vec<u64>]) -> (Box<dyn Subject>, f64) {
    let half = keys[0].len() / 2;
    let subject = make(case.items());
    let _ = run_threads(Workload::GetOrAdmit, subject.as_ref(), keys, 0, half);
    let (_, hits) = run_threads(Workload::GetOrAdmit, subject.as_ref(), keys, half, half);
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let ratio = hits as f64 / (half * keys.len()) as f64;
    (subject, ratio)
}

/// One criterion group: `workload` at `threads` threads over each of `cases`, every subject.
fn bench_group(c: &mut Criterion, workload: Workload, threads: usize, cases: &[ZipfCase]) {
    let chunk = scaled(CHUNK);
    let group_name = format!("eviction/{}/{threads}t", workload.name());
    let mut group = c.benchmark_group(&group_name);
    group.throughput(Throughput::Elements((chunk * threads) as u64));
    for &case in cases {
        let keys = streams(case, threads, scaled(STREAM_LEN));
        let len = keys[0].len();
        for (name, make) in subjects() {
            let id = BenchmarkId::new(name, case.label());
            // Built on first use, so that a filtered run only sets up what it measures.
            let mut subject: Option<Box<dyn Subject>> = None;
            let mut offset = 0;
            group.bench_function(id, |b| {
                let subject = subject.get_or_insert_with(|| {
                    let (subject, ratio) = warmed(make, case, &keys);
                    if matches!(workload, Workload::GetOrAdmit) {
                        let row = format!("{group_name}/{name}/{}", case.label());
                        println!("hit ratio {row}: {:.2}%", ratio * 100.0);
                        record_metric("eviction", &row, "hit_ratio", ratio);
                    }
                    subject
                });
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        if offset + chunk > len {
                            offset = 0;
                        }
                        total += run_threads(workload, subject.as_ref(), &keys, offset, chunk).0;
                        offset += chunk;
                    }
                    total
                });
            });
        }
    }
    group.finish();
}

fn bench_eviction(c: &mut Criterion) {
    for threads in [1usize, 2] {
        bench_group(c, Workload::GetOrAdmit, threads, cases());
        bench_group(c, Workload::AdmitOnly, threads, &[HEADLINE]);
        bench_group(c, Workload::PromoteOnly, threads, &[HEADLINE]);
    }
}

criterion_group!(benches, bench_eviction);
criterion_main!(benches);
