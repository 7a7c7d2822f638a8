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
/// counters ending in `_total`), what it counts, its kind, an optional label and its value now.
///
/// Samples that share a name and differ by their label are one metric family, such as the
/// figures of each tier of a [`TieredStorage`](crate::tiered::TieredStorage)
/// (`larder_tiered_tier_hits_total{tier="disk"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricSample {
    /// The metric name: ASCII letters, digits and `_`, not starting with a digit.
    pub name: &'static str,
    /// One line saying what it counts (the Prometheus `HELP`).
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// A label name and its value (`("tier", "disk")`), or none. The name follows the rules of
    /// metric names; the value is written escaped.
    pub label: Option<(&'static str, &'static str)>,
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
            label: None,
            value,
        }
    }

    /// A gauge sample.
    pub const fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        MetricSample {
            name,
            help,
            kind: MetricKind::Gauge,
            label: None,
            value,
        }
    }

    /// The sample with the label `name="value"`.
    #[must_use]
    pub const fn with_label(mut self, name: &'static str, value: &'static str) -> Self {
        self.label = Some((name, value));
        self
    }
}

/// Appends `samples` to `out` in the Prometheus text exposition format: a `HELP` line, a
/// `TYPE` line and the value of each. Samples of one name (differing by their label) are
/// written as one family, under one `HELP` and `TYPE`, where the first of them appears.
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
///
/// let hits = MetricSample::counter("tier_hits_total", "Hits per tier.", 0);
/// let mut text = String::new();
/// write_prometheus(
///     &[hits.with_label("tier", "memory"), MetricSample::gauge("g", "G.", 1), hits.with_label("tier", "disk")],
///     &mut text,
/// );
/// let family = "# HELP tier_hits_total Hits per tier.\n# TYPE tier_hits_total counter\n\
///     tier_hits_total{tier=\"memory\"} 0\ntier_hits_total{tier=\"disk\"} 0\n";
/// assert_eq!(text, format!("{family}# HELP g G.\n# TYPE g gauge\ng 1\n"));
/// ```
pub fn write_prometheus(samples: &[MetricSample], out: &mut String) {
    for (i, first) in samples.iter().enumerate() {
        if samples[..i].iter().any(|s| s.name == first.name) {
            // Written with the first sample of its name.
            continue;
        }
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}",
            name = first.name,
            help = first.help,
            kind = first.kind.as_str(),
        );
        for s in samples[i..].iter().filter(|s| s.name == first.name) {
            write_sample(s, out);
        }
    }
}

/// One sample line: name, label if any, value.
fn write_sample(s: &MetricSample, out: &mut String) {
    out.push_str(s.name);
    if let Some((label, value)) = s.label {
        out.push('{');
        out.push_str(label);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push_str("\"}");
    }
    let _ = writeln!(out, " {}", s.value);
}
