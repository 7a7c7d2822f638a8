//! What a [`DiskStorage`](crate::DiskStorage) counts, and how it reports a failing device:
//! every failure is counted; a failure of a kind (read or write) is logged at warn at most
//! once a minute, and the recovery once at info when an operation of that kind succeeds after
//! a minute without failures. A full disk fails some writes and not others (a small object
//! still fits, a large one does not), so logging each change of state would flood the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

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
    /// Hot entries kept with an open descriptor (bounded by `DiskConfig::open_files`).
    pub open_files: u64,
    /// Bytes of inline bodies the hot entries keep in memory (bounded by
    /// `DiskConfig::kept_bodies`).
    pub kept_body_bytes: u64,
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

/// How often a failure of one kind is logged at warn, at most.
const LOG_EVERY_SECS: u64 = 60;

/// The log state of one kind of operation, in seconds since the counters were created plus
/// one (0: never).
#[derive(Debug, Default)]
struct LogState {
    /// When a failure was last logged at warn.
    warned: AtomicU64,
    /// When the last failure happened; 0 once its recovery was logged.
    failed: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) writes_stored: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) io_errors: AtomicU64,
    started: Instant,
    read: LogState,
    write: LogState,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            writes_stored: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            io_errors: AtomicU64::new(0),
            started: Instant::now(),
            read: LogState::default(),
            write: LogState::default(),
        }
    }
}

pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn log_state(&self, op: Op) -> &LogState {
        match op {
            Op::Read => &self.read,
            Op::Write => &self.write,
        }
    }

    /// Seconds since the counters were created, plus one (0 stays "never").
    fn now(&self) -> u64 {
        self.started.elapsed().as_secs() + 1
    }

    /// Counts a failed operation; logged at warn at most once a minute per kind.
    pub(crate) fn io_failed(&self, op: Op, error: &dyn std::error::Error) {
        inc(&self.io_errors);
        let state = self.log_state(op);
        let now = self.now();
        state.failed.store(now, Ordering::Relaxed);
        let warned = state.warned.load(Ordering::Relaxed);
        let due = warned == 0 || now.saturating_sub(warned) >= LOG_EVERY_SECS;
        if due
            && state
                .warned
                .compare_exchange(warned, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                op = op.as_str(),
                error = %error,
                source = error.source().map(ToString::to_string),
                "disk cache {} failed; serving without it until it works again \
                 (further failures are counted in larder_disk_io_errors_total)",
                op.as_str()
            );
        } else {
            tracing::debug!(op = op.as_str(), error = %error, "disk cache operation failed");
        }
    }

    /// Notes a successful operation: the first after a minute without failures of its kind
    /// logs the recovery.
    pub(crate) fn io_ok(&self, op: Op) {
        let state = self.log_state(op);
        let failed = state.failed.load(Ordering::Relaxed);
        if failed != 0
            && self.now().saturating_sub(failed) >= LOG_EVERY_SECS
            && state
                .failed
                .compare_exchange(failed, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
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
        // Logged once, at the first failure (second 1).
        assert_eq!(counters.write.warned.load(Ordering::Relaxed), 1);
        // A success right after a failure is not yet a recovery.
        counters.io_ok(Op::Write);
        assert_eq!(counters.write.failed.load(Ordering::Relaxed), 1);
        assert_eq!(counters.read.warned.load(Ordering::Relaxed), 0);
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

    #[test]
    fn failures_warn_once_a_minute_and_recovery_waits_for_a_quiet_minute() {
        let Some(started) = Instant::now().checked_sub(std::time::Duration::from_mins(2)) else {
            return;
        };
        let counters = Counters {
            started,
            ..Counters::default()
        };
        // A failure two minutes ago was logged then: the next one is due again.
        counters.write.warned.store(1, Ordering::Relaxed);
        counters.write.failed.store(1, Ordering::Relaxed);
        counters.io_ok(Op::Write);
        assert_eq!(
            counters.write.failed.load(Ordering::Relaxed),
            0,
            "recovered"
        );
        let e = std::io::Error::from(std::io::ErrorKind::StorageFull);
        counters.io_failed(Op::Write, &e);
        assert_eq!(counters.write.warned.load(Ordering::Relaxed), 121);
        counters.io_failed(Op::Write, &e);
        assert_eq!(counters.write.warned.load(Ordering::Relaxed), 121);
        assert_eq!(counters.io_errors.load(Ordering::Relaxed), 2);
    }
}
