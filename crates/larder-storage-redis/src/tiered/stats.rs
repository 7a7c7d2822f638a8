//! [`TieredStats`]: what a tiered storage counts, and the counters behind it.

use std::sync::atomic::{AtomicU64, Ordering};

use larder_storage::metrics::{MetricSample, write_prometheus};

/// The counters of a [`TieredStorage`](crate::TieredStorage), shared by it and its handlers.
#[derive(Debug, Default)]
pub(crate) struct TieredCounters {
    pub(crate) front_hits: AtomicU64,
    pub(crate) back_hits: AtomicU64,
    pub(crate) promotions: AtomicU64,
    pub(crate) back_write_errors: AtomicU64,
    pub(crate) back_unavailable: AtomicU64,
}

impl TieredCounters {
    pub(crate) fn snapshot(&self) -> TieredStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TieredStats {
            front_hits: get(&self.front_hits),
            back_hits: get(&self.back_hits),
            promotions: get(&self.promotions),
            back_write_errors: get(&self.back_write_errors),
            back_unavailable: get(&self.back_unavailable),
        }
    }
}

/// A snapshot of a [`TieredStorage`](crate::TieredStorage)'s counters, from
/// [`TieredStorage::stats`](crate::TieredStorage::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TieredStats {
    /// Lookups answered by the front tier.
    pub front_hits: u64,
    /// Lookups answered by the back tier.
    pub back_hits: u64,
    /// Back-tier hits copied into the front tier.
    pub promotions: u64,
    /// Writes the back tier failed or refused (stored in the front tier only).
    pub back_write_errors: u64,
    /// Lookups that missed the front tier while the back tier could not be reached, answered
    /// as misses.
    pub back_unavailable: u64,
}

impl TieredStats {
    /// The counters as `larder_tiered_*_total` metric samples.
    pub fn samples(&self) -> [MetricSample; 5] {
        [
            MetricSample::counter(
                "larder_tiered_front_hits_total",
                "Lookups answered by the local memory tier.",
                self.front_hits,
            ),
            MetricSample::counter(
                "larder_tiered_back_hits_total",
                "Lookups answered by the shared tier (Redis).",
                self.back_hits,
            ),
            MetricSample::counter(
                "larder_tiered_promotions_total",
                "Shared-tier hits copied into the local tier.",
                self.promotions,
            ),
            MetricSample::counter(
                "larder_tiered_back_write_errors_total",
                "Writes stored in the local tier only because the shared tier failed.",
                self.back_write_errors,
            ),
            MetricSample::counter(
                "larder_tiered_back_unavailable_total",
                "Lookups answered as misses because the shared tier was unreachable.",
                self.back_unavailable,
            ),
        ]
    }

    /// The counters in the Prometheus text exposition format, as `larder_tiered_*_total`
    /// counters with `HELP` and `TYPE` lines.
    ///
    /// ```
    /// let text = larder_storage_redis::TieredStats::default().render_prometheus();
    /// assert!(text.contains("# TYPE larder_tiered_front_hits_total counter\n"));
    /// assert!(text.contains("\nlarder_tiered_back_unavailable_total 0\n"));
    /// ```
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(1024);
        write_prometheus(&self.samples(), &mut out);
        out
    }
}
