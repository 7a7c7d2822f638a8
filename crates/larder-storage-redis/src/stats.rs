//! Counters of what a [`RedisStorage`](crate::RedisStorage) did, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// The counters in the Prometheus text exposition format, as `larder_redis_*_total`
    /// counters with `HELP` and `TYPE` lines, ready to append to a `/metrics` page.
    ///
    /// ```
    /// let text = larder_storage_redis::RedisStats::default().render_prometheus();
    /// assert!(text.contains("# TYPE larder_redis_lookup_errors_total counter\n"));
    /// assert!(text.contains("\nlarder_redis_timeouts_total 0\n"));
    /// ```
    pub fn render_prometheus(&self) -> String {
        use std::fmt::Write;
        let rows: [(&str, &str, u64); 9] = [
            ("hits", "Lookups that found an entry in Redis.", self.hits),
            (
                "misses",
                "Lookups that found nothing in Redis.",
                self.misses,
            ),
            (
                "lookup_errors",
                "Lookups that failed (Redis down, slow or a bad entry); served from upstream.",
                self.lookup_errors,
            ),
            (
                "read_errors",
                "Hits whose body could not be read to the end.",
                self.read_errors,
            ),
            (
                "writes_stored",
                "Entries published to Redis.",
                self.writes_stored,
            ),
            (
                "writes_dropped",
                "Writes to Redis that failed or were abandoned.",
                self.writes_dropped,
            ),
            ("errors", "Failed Redis calls.", self.errors),
            ("timeouts", "Redis calls that timed out.", self.timeouts),
            (
                "skipped",
                "Redis calls not sent while Redis was marked down.",
                self.skipped,
            ),
        ];
        let mut out = String::with_capacity(1024);
        for (name, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP larder_redis_{name}_total {help}\n# TYPE larder_redis_{name}_total counter\nlarder_redis_{name}_total {value}"
            );
        }
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
