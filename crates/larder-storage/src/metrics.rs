//! Figures a [`Storage`](crate::Storage) reports about itself for a metrics page, through
//! [`Storage::metrics`](crate::Storage::metrics).
//!
//! A storage hands out plain samples (name, help text, kind, value) rather than text: the
//! caller owns the exposition format (the proxy writes the Prometheus text format with
//! [`write_prometheus`]; a library user may feed the same samples to another metrics system),
//! a storage made of other storages (tiers) collects its tiers' samples without knowing
//! their types, and tests read values without parsing text.

use std::fmt::Write as _;

/// Whether a sample only grows (a counter) or goes up and down (a gauge), the Prometheus
/// `TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricKind {
    /// A count since the storage was created; only grows.
    Counter,
    /// A current level (bytes or entries held).
    Gauge,
}

impl MetricKind {
    /// The Prometheus `TYPE` word: `counter` or `gauge`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// One figure of a storage: a metric name in the Prometheus style (`larder_redis_hits_total`,
/// counters ending in `_total`), what it counts, its kind and its value now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricSample {
    /// The metric name: ASCII letters, digits and `_`, not starting with a digit.
    pub name: &'static str,
    /// One line saying what it counts (the Prometheus `HELP`).
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// The value now.
    pub value: u64,
}

impl MetricSample {
    /// A counter sample.
    pub const fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        MetricSample {
            name,
            help,
            kind: MetricKind::Counter,
            value,
        }
    }

    /// A gauge sample.
    pub const fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        MetricSample {
            name,
            help,
            kind: MetricKind::Gauge,
            value,
        }
    }
}

/// Appends `samples` to `out` in the Prometheus text exposition format: a `HELP` line, a
/// `TYPE` line and the value of each.
///
/// ```
/// use larder_storage::metrics::{MetricSample, write_prometheus};
///
/// let mut text = String::new();
/// write_prometheus(&[MetricSample::counter("demo_hits_total", "Hits.", 3)], &mut text);
/// assert_eq!(
///     text,
///     "# HELP demo_hits_total Hits.\n# TYPE demo_hits_total counter\ndemo_hits_total 3\n"
/// );
/// ```
pub fn write_prometheus(samples: &[MetricSample], out: &mut String) {
    for s in samples {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}",
            name = s.name,
            help = s.help,
            kind = s.kind.as_str(),
            value = s.value,
        );
    }
}
