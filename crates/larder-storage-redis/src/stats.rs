//! Counters of what a [`RedisStorage`](crate::RedisStorage) did, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use larder_storage::metrics::{MetricSample, write_prometheus};

/// A snapshot of a storage's counters (all since it was created), from
/// [`RedisStorage::stats`](crate::RedisStorage::stats).
///
/// `errors` counts every failed Redis call, `timeouts` the part of them that took longer
/// than [`RedisConfig::timeout`](crate::RedisConfig::timeout). While Redis is down,
/// `lookup_errors` and `writes_dropped` grow and the proxy serves from upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Lookups that found a complete entry.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Lookups that failed (Redis down, slow or an unreadable entry).
    pub lookup_errors: u64,
    /// Hits whose body could not be read to the end.
    pub read_errors: u64,
    /// Entries published by a finished write.
    pub writes_stored: u64,
    /// Writes abandoned or failed, so nothing was stored.
    pub writes_dropped: u64,
    /// Failed Redis calls of any kind.
    pub errors: u64,
    /// Redis calls that did not answer within the timeout (counted in `errors` too).
    pub timeouts: u64,
    /// Calls not sent because Redis was marked down after repeated failures (not counted in
    /// `errors`: nothing was sent).
    pub skipped: u64,
}

impl RedisStats {
    /// The counters as `larder_redis_*_total` metric samples, what
    /// [`RedisStorage`](crate::RedisStorage)'s [`Storage::metrics`](larder_storage::Storage::metrics)
    /// reports.
    pub fn samples(&self) -> [MetricSample; 9] {
        [
            MetricSample::counter(
                "larder_redis_hits_total",
                "Lookups that found an entry in Redis.",
                self.hits,
            ),
            MetricSample::counter(
                "larder_redis_misses_total",
                "Lookups that found nothing in Redis.",
                self.misses,
            ),
            MetricSample::counter(
                "larder_redis_lookup_errors_total",
                "Lookups that failed (Redis down, slow or a bad entry); served from upstream.",
                self.lookup_errors,
            ),
            MetricSample::counter(
                "larder_redis_read_errors_total",
                "Hits whose body could not be read to the end.",
                self.read_errors,
            ),
            MetricSample::counter(
                "larder_redis_writes_stored_total",
                "Entries published to Redis.",
                self.writes_stored,
            ),
            MetricSample::counter(
                "larder_redis_writes_dropped_total",
                "Writes to Redis that failed or were abandoned.",
                self.writes_dropped,
            ),
            MetricSample::counter(
                "larder_redis_errors_total",
                "Failed Redis calls.",
                self.errors,
            ),
            MetricSample::counter(
                "larder_redis_timeouts_total",
                "Redis calls that timed out.",
                self.timeouts,
            ),
            MetricSample::counter(
                "larder_redis_skipped_total",
                "Redis calls not sent while Redis was marked down.",
                self.skipped,
            ),
        ]
    }

    /// The counters in the Prometheus text exposition format, as `larder_redis_*_total`
    /// counters with `HELP` and `TYPE` lines, ready to append to a `/metrics` page.
    ///
    /// ```
    /// let text = larder_storage_redis::RedisStats::default().render_prometheus();
    /// assert!(text.contains("# TYPE larder_redis_lookup_errors_total counter\n"));
    /// assert!(text.contains("\nlarder_redis_timeouts_total 0\n"));
    /// ```
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(1024);
        write_prometheus(&self.samples(), &mut out);
        out
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) lookup_errors: AtomicU64,
    pub(crate) read_errors: AtomicU64,
    pub(crate) writes_stored: AtomicU64,
    pub(crate) writes_dropped: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) skipped: AtomicU64,
}

pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> RedisStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            lookup_errors: get(&self.lookup_errors),
            read_errors: get(&self.read_errors),
            writes_stored: get(&self.writes_stored),
            writes_dropped: get(&self.writes_dropped),
            errors: get(&self.errors),
            timeouts: get(&self.timeouts),
            skipped: get(&self.skipped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_one_sample_per_counter() {
        let counters = Counters::default();
        inc(&counters.hits);
        inc(&counters.hits);
        inc(&counters.timeouts);
        let text = counters.snapshot().render_prometheus();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), 9);
        assert!(samples.contains(&"larder_redis_hits_total 2"));
        assert!(samples.contains(&"larder_redis_timeouts_total 1"));
        assert!(samples.contains(&"larder_redis_misses_total 0"));
        assert_eq!(text.matches("# TYPE").count(), 9);
    }
}
