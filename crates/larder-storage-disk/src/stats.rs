//! What a [`DiskStorage`](crate::DiskStorage) counts, and how it reports a failing device:
//! the first failure of a kind is logged once at warn, the recovery once at info, and every
//! failure is counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use larder_storage::metrics::MetricSample;

/// A snapshot of a disk storage's figures, from [`DiskStorage::stats`](crate::DiskStorage::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskStats {
    /// Bytes held by complete entries (meta files plus body files).
    pub bytes: u64,
    /// Complete entries.
    pub entries: u64,
    /// The size bound.
    pub max_bytes: u64,
    /// Lookups that found an entry (complete or being written).
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Entries stored by finished writes.
    pub writes_stored: u64,
    /// Entries evicted to stay under the size bound.
    pub evictions: u64,
    /// Stored files that failed a checksum or did not decode (each was removed).
    pub corrupt: u64,
    /// Failed file operations (reads and writes; a missing file is not a failure).
    pub io_errors: u64,
    /// Whether the start-up scan has finished.
    pub loaded: bool,
}

impl DiskStats {
    /// The figures as `larder_disk_*` metric samples, what the storage's
    /// [`Storage::metrics`](larder_storage::Storage::metrics) reports.
    pub fn samples(&self) -> [MetricSample; 10] {
        [
            MetricSample::gauge(
                "larder_disk_bytes",
                "Bytes held by complete entries on disk.",
                self.bytes,
            ),
            MetricSample::gauge(
                "larder_disk_entries",
                "Complete entries on disk.",
                self.entries,
            ),
            MetricSample::gauge(
                "larder_disk_max_bytes",
                "The disk cache's size bound.",
                self.max_bytes,
            ),
            MetricSample::counter(
                "larder_disk_hits_total",
                "Lookups that found an entry on disk.",
                self.hits,
            ),
            MetricSample::counter(
                "larder_disk_misses_total",
                "Lookups that found nothing on disk.",
                self.misses,
            ),
            MetricSample::counter(
                "larder_disk_writes_stored_total",
                "Entries stored on disk.",
                self.writes_stored,
            ),
            MetricSample::counter(
                "larder_disk_evictions_total",
                "Entries evicted from disk to stay under the size bound.",
                self.evictions,
            ),
            MetricSample::counter(
                "larder_disk_corrupt_total",
                "Stored files that failed a checksum or did not decode; removed, never served.",
                self.corrupt,
            ),
            MetricSample::counter(
                "larder_disk_io_errors_total",
                "Failed disk cache file operations.",
                self.io_errors,
            ),
            MetricSample::gauge(
                "larder_disk_loaded",
                "1 once the start-up scan of the disk cache has finished.",
                u64::from(self.loaded),
            ),
        ]
    }
}

/// Which side of the device failed, for logging once per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) writes_stored: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) io_errors: AtomicU64,
    read_failing: AtomicBool,
    write_failing: AtomicBool,
}

pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn failing(&self, op: Op) -> &AtomicBool {
        match op {
            Op::Read => &self.read_failing,
            Op::Write => &self.write_failing,
        }
    }

    /// Counts a failed operation; the first of a run is logged at warn.
    pub(crate) fn io_failed(&self, op: Op, error: &dyn std::error::Error) {
        inc(&self.io_errors);
        if self.failing(op).swap(true, Ordering::Relaxed) {
            tracing::debug!(op = op.as_str(), error = %error, "disk cache operation failed");
        } else {
            tracing::warn!(
                op = op.as_str(),
                error = %error,
                source = error.source().map(ToString::to_string),
                "disk cache {} failed; serving without it until it works again",
                op.as_str()
            );
        }
    }

    /// Notes a successful operation; the first after a failure is logged.
    pub(crate) fn io_ok(&self, op: Op) {
        if self.failing(op).load(Ordering::Relaxed)
            && self.failing(op).swap(false, Ordering::Relaxed)
        {
            tracing::info!(
                op = op.as_str(),
                "disk cache {}s succeed again",
                op.as_str()
            );
        }
    }

    /// Counts a file that failed its checksum or did not decode.
    pub(crate) fn corrupt(&self, path: &std::path::Path, reason: &str) {
        inc(&self.corrupt);
        tracing::warn!(path = %path.display(), reason, "corrupt disk cache entry removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_and_samples_carry_them() {
        let counters = Counters::default();
        let e = std::io::Error::from(std::io::ErrorKind::StorageFull);
        counters.io_failed(Op::Write, &e);
        counters.io_failed(Op::Write, &e);
        assert!(counters.write_failing.load(Ordering::Relaxed));
        counters.io_ok(Op::Write);
        assert!(!counters.write_failing.load(Ordering::Relaxed));
        let stats = DiskStats {
            io_errors: counters.io_errors.load(Ordering::Relaxed),
            loaded: true,
            ..DiskStats::default()
        };
        let samples = stats.samples();
        let get = |name| samples.iter().find(|s| s.name == name).unwrap().value;
        assert_eq!(get("larder_disk_io_errors_total"), 2);
        assert_eq!(get("larder_disk_loaded"), 1);
    }
}
