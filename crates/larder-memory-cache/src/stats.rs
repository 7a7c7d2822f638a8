//! Hit and miss counters, striped per thread so that counting does not make threads fight over
//! one cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

const STRIPES: usize = 8;

/// A snapshot of an [`RTCache`](crate::RTCache)'s counters since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads answered with a fresh cached value ([`CacheStatus::Hit`](crate::CacheStatus::Hit)).
    pub hits: u64,
    /// Reads answered by another caller's lookup after waiting on its lock
    /// ([`CacheStatus::LockHit`](crate::CacheStatus::LockHit)).
    pub lock_hits: u64,
    /// Reads answered with an expired value ([`CacheStatus::Stale`](crate::CacheStatus::Stale)).
    pub stale: u64,
    /// Reads that found no usable value and ran a lookup themselves, or got the error of the
    /// lookup they waited on.
    pub misses: u64,
    /// Lookups run (including background refreshes and lock-timeout lookups).
    pub lookups: u64,
    /// Lookups that returned an error or panicked.
    pub lookup_errors: u64,
}

impl Stats {
    /// The share of reads served from the cache (`hits + lock_hits + stale` over all reads), or
    /// 0 when there were no reads.
    pub fn hit_ratio(&self) -> f64 {
        let served = self.hits + self.lock_hits + self.stale;
        let total = served + self.misses;
        if total == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)] // a ratio; 2^52 reads are far away
        let ratio = served as f64 / total as f64;
        ratio
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Stat {
    Hit,
    LockHit,
    Stale,
    Miss,
    Lookup,
    LookupError,
}

#[derive(Default)]
#[repr(align(128))]
struct Stripe([AtomicU64; 6]);

#[derive(Default)]
pub(crate) struct Counters([Stripe; STRIPES]);

fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        let stripe = s.get();
        if stripe < STRIPES {
            return stripe;
        }
        let stripe = NEXT.fetch_add(1, Relaxed) % STRIPES;
        s.set(stripe);
        stripe
    })
}

impl Counters {
    pub(crate) fn add(&self, stat: Stat) {
        self.0[stripe()].0[stat as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let sum = |stat: Stat| {
            self.0
                .iter()
                .map(|s| s.0[stat as usize].load(Relaxed))
                .sum()
        };
        Stats {
            hits: sum(Stat::Hit),
            lock_hits: sum(Stat::LockHit),
            stale: sum(Stat::Stale),
            misses: sum(Stat::Miss),
            lookups: sum(Stat::Lookup),
            lookup_errors: sum(Stat::LookupError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_across_threads() {
        let c = Counters::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        c.add(Stat::Hit);
                    }
                    c.add(Stat::Miss);
                });
            }
        });
        let stats = c.snapshot();
        assert_eq!(stats.hits, 400);
        assert_eq!(stats.misses, 4);
        assert_eq!(stats.lookups, 0);
        assert!((stats.hit_ratio() - 400.0 / 404.0).abs() < 1e-12);
        assert!(Stats::default().hit_ratio().abs() < f64::EPSILON);
    }
}
