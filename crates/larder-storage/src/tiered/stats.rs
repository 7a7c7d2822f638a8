//! [`TieredStats`] and [`TierStats`]: what a tiered storage counts, in all and per tier.

use std::sync::atomic::{AtomicU64, Ordering};

use super::tier::TierState;
use crate::metrics::{MetricSample, write_prometheus};

/// A snapshot of one tier's counters, from
/// [`TieredStorage::tier_stats`](crate::tiered::TieredStorage::tier_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Lookups this tier answered.
    pub hits: u64,
    /// Hits of later tiers copied into this one.
    pub promotions: u64,
    /// Writes this tier failed or refused (stored in the other tiers only).
    pub write_errors: u64,
    /// Lookups that reached this tier while it could not be reached (a miss for it).
    pub unavailable: u64,
}

impl TierStats {
    /// The counters as `larder_tiered_tier_*_total` samples labelled `tier="<name>"`.
    pub fn samples(&self, name: &'static str) -> [MetricSample; 4] {
        [
            MetricSample::counter(
                "larder_tiered_tier_hits_total",
                "Lookups answered by this tier.",
                self.hits,
            ),
            MetricSample::counter(
                "larder_tiered_tier_promotions_total",
                "Hits of later tiers copied into this tier.",
                self.promotions,
            ),
            MetricSample::counter(
                "larder_tiered_tier_write_errors_total",
                "Writes this tier failed or refused, stored in the other tiers only.",
                self.write_errors,
            ),
            MetricSample::counter(
                "larder_tiered_tier_unavailable_total",
                "Lookups that found this tier unreachable, a miss for it.",
                self.unavailable,
            ),
        ]
        .map(|s| s.with_label("tier", name))
    }

    pub(crate) fn of(tier: &TierState) -> Self {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &tier.counters;
        TierStats {
            hits: get(&c.hits),
            promotions: get(&c.promotions),
            write_errors: get(&c.write_errors),
            unavailable: get(&c.unavailable),
        }
    }
}

/// A snapshot of a [`TieredStorage`](crate::tiered::TieredStorage)'s counters summed over its
/// tiers, from [`TieredStorage::stats`](crate::tiered::TieredStorage::stats). The *front* is
/// the first tier, the *back* every tier after it (with two tiers: memory and Redis).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TieredStats {
    /// Lookups answered by the first tier.
    pub front_hits: u64,
    /// Lookups answered by a later tier.
    pub back_hits: u64,
    /// Later-tier hits copied into earlier tiers (one per tier written).
    pub promotions: u64,
    /// Writes a later tier failed or refused (stored in the other tiers only).
    pub back_write_errors: u64,
    /// Lookups that found a later tier unreachable (a miss for that tier).
    pub back_unavailable: u64,
}

impl TieredStats {
    /// Sums the tiers' counters.
    pub(crate) fn of(tiers: &[TierState]) -> Self {
        let mut stats = TieredStats::default();
        for (i, tier) in tiers.iter().enumerate() {
            let t = TierStats::of(tier);
            stats.promotions += t.promotions;
            if i == 0 {
                stats.front_hits = t.hits;
            } else {
                stats.back_hits += t.hits;
                stats.back_write_errors += t.write_errors;
                stats.back_unavailable += t.unavailable;
            }
        }
        stats
    }

    /// The counters as `larder_tiered_*_total` metric samples.
    pub fn samples(&self) -> [MetricSample; 5] {
        [
            MetricSample::counter(
                "larder_tiered_front_hits_total",
                "Lookups answered by the first (local memory) tier.",
                self.front_hits,
            ),
            MetricSample::counter(
                "larder_tiered_back_hits_total",
                "Lookups answered by a later tier (disk, Redis).",
                self.back_hits,
            ),
            MetricSample::counter(
                "larder_tiered_promotions_total",
                "Later-tier hits copied into earlier tiers.",
                self.promotions,
            ),
            MetricSample::counter(
                "larder_tiered_back_write_errors_total",
                "Writes a later tier failed, stored in the other tiers only.",
                self.back_write_errors,
            ),
            MetricSample::counter(
                "larder_tiered_back_unavailable_total",
                "Lookups that found a later tier unreachable, a miss for that tier.",
                self.back_unavailable,
            ),
        ]
    }

    /// The counters in the Prometheus text exposition format, as `larder_tiered_*_total`
    /// counters with `HELP` and `TYPE` lines.
    ///
    /// ```
    /// let text = larder_storage::tiered::TieredStats::default().render_prometheus();
    /// assert!(text.contains("# TYPE larder_tiered_front_hits_total counter\n"));
    /// assert!(text.contains("\nlarder_tiered_back_unavailable_total 0\n"));
    /// ```
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(1024);
        write_prometheus(&self.samples(), &mut out);
        out
    }
}
