//! Counters for `/metrics`, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// A counter; relaxed atomics are enough, the figures are only read for reporting.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge: a figure that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one away (never below zero).
    pub fn dec(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The proxy's counters. One instance is shared by every request of a [`crate::CacheLayer`].
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses served.
    pub requests: Counter,
    /// Fresh hits.
    pub hits: Counter,
    /// Misses (fetched from upstream, possibly stored).
    pub misses: Counter,
    /// Stale responses served without revalidation (stale-while-revalidate or stale-if-error).
    pub stale: Counter,
    /// Stale entries replaced by a new upstream response.
    pub expired: Counter,
    /// Stale entries refreshed by a 304.
    pub revalidated: Counter,
    /// Requests that skipped the cache (not cacheable, predicted uncacheable, disabled).
    pub bypass: Counter,
    /// Requests that waited on another request's cache lock.
    pub lock_waits: Counter,
    /// Lock waits that timed out.
    pub lock_timeouts: Counter,
    /// Upstream failures (connect errors, failed bodies).
    pub upstream_errors: Counter,
    /// Responses written to storage.
    pub stored: Counter,
    /// Body bytes written to storage.
    pub stored_bytes: Counter,
    /// Background refreshes started for stale-while-revalidate.
    pub background_refreshes: Counter,
    /// Entries removed by PURGE.
    pub purges: Counter,
    /// Entries invalidated after unsafe methods (RFC 9111 §4.4).
    pub invalidations: Counter,
    /// Background tasks (fills, refreshes, body streams) running now.
    pub background_tasks: Gauge,
    /// Background tasks cancelled because a drain's grace period ran out.
    pub background_tasks_cancelled: Counter,
    /// Upgrades the origin accepted (`101 Switching Protocols`): tunnels opened.
    pub upgrades: Counter,
    /// Tunnels of upgraded connections open now (also counted in `background_tasks`).
    pub tunnels: Gauge,
    not_stored: Mutex<BTreeMap<&'static str, u64>>,
}

/// Figures read from the storage and eviction manager when rendering.
#[derive(Debug, Default, Clone, Copy)]
pub struct StorageGauges {
    /// Bytes currently held.
    pub bytes: u64,
    /// Entries currently held.
    pub entries: u64,
    /// Entries evicted so far.
    pub evicted_entries: u64,
    /// Bytes evicted so far.
    pub evicted_bytes: u64,
}

impl Metrics {
    /// Counts a response that was not stored, by reason (a `NoCacheReason` name).
    pub fn not_stored(&self, reason: &'static str) {
        *self.not_stored.lock().entry(reason).or_default() += 1;
    }

    /// How many responses were not stored for `reason`.
    pub fn not_stored_count(&self, reason: &str) -> u64 {
        self.not_stored.lock().get(reason).copied().unwrap_or(0)
    }

    /// Renders every counter in the Prometheus text exposition format.
    // A table of counters, one line each.
    #[allow(clippy::too_many_lines)]
    pub fn render(&self, gauges: Option<StorageGauges>) -> String {
        let mut out = String::with_capacity(2048);
        let counters: [(&str, &str, &Counter); 16] = [
            ("larder_requests_total", "Responses served.", &self.requests),
            ("larder_cache_hits_total", "Fresh cache hits.", &self.hits),
            ("larder_cache_misses_total", "Cache misses.", &self.misses),
            (
                "larder_cache_stale_total",
                "Stale responses served.",
                &self.stale,
            ),
            (
                "larder_cache_expired_total",
                "Stale entries replaced.",
                &self.expired,
            ),
            (
                "larder_cache_revalidated_total",
                "Stale entries revalidated by a 304.",
                &self.revalidated,
            ),
            (
                "larder_cache_bypass_total",
                "Requests that skipped the cache.",
                &self.bypass,
            ),
            (
                "larder_cache_lock_waits_total",
                "Requests that waited on a cache lock.",
                &self.lock_waits,
            ),
            (
                "larder_cache_lock_timeouts_total",
                "Cache lock waits that timed out.",
                &self.lock_timeouts,
            ),
            (
                "larder_upstream_errors_total",
                "Upstream failures.",
                &self.upstream_errors,
            ),
            (
                "larder_cache_stored_total",
                "Responses written to storage.",
                &self.stored,
            ),
            (
                "larder_cache_stored_bytes_total",
                "Body bytes written to storage.",
                &self.stored_bytes,
            ),
            (
                "larder_cache_background_refreshes_total",
                "Background stale-while-revalidate refreshes.",
                &self.background_refreshes,
            ),
            (
                "larder_cache_purges_total",
                "Entries removed by PURGE.",
                &self.purges,
            ),
            (
                "larder_cache_invalidations_total",
                "Entries invalidated after unsafe methods.",
                &self.invalidations,
            ),
            (
                "larder_upgrades_total",
                "Upgrades the origin accepted (tunnels opened).",
                &self.upgrades,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        out.push_str("# HELP larder_cache_not_stored_total Responses not stored, by reason.\n");
        out.push_str("# TYPE larder_cache_not_stored_total counter\n");
        for (reason, n) in self.not_stored.lock().iter() {
            let reason = reason.replace(['\\', '"', '\n'], "_");
            let _ = writeln!(
                out,
                "larder_cache_not_stored_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP larder_background_tasks Background tasks in flight.\n\
             # TYPE larder_background_tasks gauge\nlarder_background_tasks {}\n\
             # HELP larder_background_tasks_cancelled_total Background tasks cancelled at shutdown.\n\
             # TYPE larder_background_tasks_cancelled_total counter\n\
             larder_background_tasks_cancelled_total {}\n\
             # HELP larder_tunnels Tunnels of upgraded connections open.\n\
             # TYPE larder_tunnels gauge\nlarder_tunnels {}",
            self.background_tasks.get(),
            self.background_tasks_cancelled.get(),
            self.tunnels.get()
        );
        if let Some(g) = gauges {
            let gauges: [(&str, &str, &str, u64); 4] = [
                (
                    "larder_cache_bytes",
                    "gauge",
                    "Bytes held in the cache.",
                    g.bytes,
                ),
                (
                    "larder_cache_entries",
                    "gauge",
                    "Entries held in the cache.",
                    g.entries,
                ),
                (
                    "larder_cache_evictions_total",
                    "counter",
                    "Entries evicted.",
                    g.evicted_entries,
                ),
                (
                    "larder_cache_evicted_bytes_total",
                    "counter",
                    "Bytes evicted.",
                    g.evicted_bytes,
                ),
            ];
            for (name, kind, help, v) in gauges {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
                );
            }
        }
        out
    }
}

/// Appends what `storage` reports through [`Storage::metrics`](larder_storage::Storage::metrics)
/// to a `/metrics` page, in the Prometheus text format. The proxy knows no storage by type:
/// each one says what it counts.
pub(crate) fn render_storage(storage: &(dyn larder_storage::Storage + Sync), out: &mut String) {
    let mut samples = Vec::new();
    storage.metrics(&mut samples);
    larder_storage::metrics::write_prometheus(&samples, out);
}

#[cfg(test)]
mod tests {
    use larder_cache::NoCacheReason;

    use super::*;

    /// A storage that reports two figures and delegates the rest to a memory one.
    struct Reporting(larder_storage::MemCache);

    #[async_trait::async_trait]
    impl larder_storage::Storage for Reporting {
        async fn lookup(
            &'static self,
            key: &larder_storage::CacheKey,
            trace: &tracing::Span,
        ) -> larder_storage::Result<Option<(larder_storage::CacheMeta, larder_storage::HitHandler)>>
        {
            self.0.lookup(key, trace).await
        }
        async fn get_miss_handler(
            &'static self,
            key: &larder_storage::CacheKey,
            meta: &larder_storage::CacheMeta,
            trace: &tracing::Span,
        ) -> larder_storage::Result<larder_storage::MissHandler> {
            self.0.get_miss_handler(key, meta, trace).await
        }
        async fn purge(
            &'static self,
            key: &larder_storage::CompactCacheKey,
            purge_type: larder_storage::PurgeType,
            trace: &tracing::Span,
        ) -> larder_storage::Result<bool> {
            self.0.purge(key, purge_type, trace).await
        }
        async fn update_meta(
            &'static self,
            key: &larder_storage::CacheKey,
            meta: &larder_storage::CacheMeta,
            trace: &tracing::Span,
        ) -> larder_storage::Result<bool> {
            self.0.update_meta(key, meta, trace).await
        }
        fn metrics(&self, out: &mut Vec<larder_storage::metrics::MetricSample>) {
            use larder_storage::metrics::MetricSample;
            out.push(MetricSample::counter("demo_lookups_total", "Lookups.", 7));
            out.push(MetricSample::gauge("demo_bytes", "Bytes held.", 42));
        }
        fn as_any(&self) -> &(dyn std::any::Any + Send + Sync + 'static) {
            self
        }
    }

    #[test]
    fn storage_figures_are_rendered_as_it_reports_them() {
        let mut text = String::new();
        render_storage(&Reporting(larder_storage::MemCache::new()), &mut text);
        assert_eq!(
            text,
            "# HELP demo_lookups_total Lookups.\n# TYPE demo_lookups_total counter\n\
             demo_lookups_total 7\n# HELP demo_bytes Bytes held.\n# TYPE demo_bytes gauge\n\
             demo_bytes 42\n"
        );
        let mut text = String::new();
        render_storage(&larder_storage::MemCache::new(), &mut text);
        assert_eq!(text, "", "a storage that reports nothing adds nothing");
    }

    #[test]
    fn renders_counters_and_reasons() {
        let m = Metrics::default();
        m.hits.inc();
        m.hits.inc();
        m.not_stored(NoCacheReason::Private.as_str());
        m.not_stored(NoCacheReason::VaryAny.as_str());
        m.not_stored(NoCacheReason::VaryAny.as_str());
        let text = m.render(Some(StorageGauges {
            entries: 3,
            ..Default::default()
        }));
        assert!(text.contains("\nlarder_cache_hits_total 2\n"));
        // Each refusal rule is its own series.
        assert!(text.contains("larder_cache_not_stored_total{reason=\"Private\"} 1\n"));
        assert!(text.contains("larder_cache_not_stored_total{reason=\"VaryAny\"} 2\n"));
        assert!(text.contains("\nlarder_cache_entries 3\n"));
        assert_eq!(m.not_stored_count("Private"), 1);
        assert_eq!(m.not_stored_count("VaryAny"), 2);
        assert_eq!(m.not_stored_count("OriginNotCache"), 0);
        m.background_tasks.inc();
        m.background_tasks.inc();
        m.background_tasks.dec();
        let text = m.render(None);
        assert!(text.contains("\nlarder_background_tasks 1\n"), "{text}");
        assert!(text.contains("\nlarder_background_tasks_cancelled_total 0\n"));
        m.background_tasks.dec();
        m.background_tasks.dec();
        assert_eq!(m.background_tasks.get(), 0, "never below zero");
    }
}
