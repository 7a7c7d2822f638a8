//! Shared helpers for the side-by-side benchmarks: workload generators, so every peer sees the
//! same keys, and [`record_metric`], the way a bench hands a figure that criterion does not
//! measure (a hit ratio, bytes per entry) to the `docs/benchmarks.md` report.
//!
//! # The metrics protocol
//!
//! `cargo xtask bench` sets the environment variable [`METRICS_ENV`] (`LARDER_BENCH_METRICS`) to
//! the path of a file before it runs a bench. A bench appends one line per figure, four fields
//! separated by tabs:
//!
//! ```text
//! suite<TAB>row<TAB>metric<TAB>value
//! eviction→get_or_admit/1t/larder_lru→hit_ratio→0.4312      (→ stands for a tab)
//! ```
//!
//! - `suite`: the bench target (`eviction`, `memory_cache`, ...);
//! - `row`: what was measured, in the criterion spelling `group/function` where there is one;
//! - `metric`: a `snake_case` name with its unit in it where it has one (`hit_ratio` is a
//!   fraction in 0..=1, `bytes_per_entry`, `rss_bytes`);
//! - `value`: a decimal number.
//!
//! Tabs and line breaks inside a field are replaced by spaces. When the variable is unset (a
//! plain `cargo bench`), [`record_metric`] does nothing, so benches may call it unconditionally.
//! Later lines win over earlier ones with the same `suite`, `row` and `metric`.
//!
//! ```
//! larder_benches::record_metric("eviction", "get_or_admit/1t/larder_lru", "hit_ratio", 0.43);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write as _;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};

/// The environment variable naming the file [`record_metric`] appends to.
pub const METRICS_ENV: &str = "LARDER_BENCH_METRICS";

/// The environment variable that makes a run a smoke test (`cargo xtask bench --quick` sets it
/// to `1`): see [`quick`].
pub const QUICK_ENV: &str = "LARDER_BENCH_QUICK";

/// Whether this run is a smoke test ([`QUICK_ENV`] is `1`): benches then use shorter key streams
/// and only the [`QUICK_CASES`], so that every code path runs once in little time. Its figures
/// are not measurements.
#[must_use]
pub fn quick() -> bool {
    std::env::var_os(QUICK_ENV).is_some_and(|v| v == "1")
}

/// Keys in the Zipf workloads of the eviction and memory cache suites.
pub const N_KEYS: u64 = 1_000_000;

/// One Zipf workload: the exponent and the cache's size as a percentage of [`N_KEYS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZipfCase {
    /// The Zipf exponent `s`.
    pub s: f64,
    /// The cache holds this percentage of the keys.
    pub percent: u32,
}

impl ZipfCase {
    /// The cache's size in entries.
    #[must_use]
    pub fn items(self) -> usize {
        usize::try_from(N_KEYS).unwrap_or(usize::MAX) / 100 * self.percent as usize
    }

    /// The case as a criterion parameter and report label: `s=0.9 1%`.
    #[must_use]
    pub fn label(self) -> String {
        format!("s={:.1} {}%", self.s, self.percent)
    }
}

/// The headline workload, which the goals are judged on and which the rows that do not vary
/// the workload use: Zipf 1.0, a cache of 1 % of the keys.
pub const HEADLINE: ZipfCase = ZipfCase { s: 1.0, percent: 1 };

/// Every Zipf workload of a full run: exponents 0.9, 1.0 and 1.2, caches of 1 % and 10 %.
pub const CASES: [ZipfCase; 6] = [
    ZipfCase { s: 0.9, percent: 1 },
    HEADLINE,
    ZipfCase { s: 1.2, percent: 1 },
    ZipfCase {
        s: 0.9,
        percent: 10,
    },
    ZipfCase {
        s: 1.0,
        percent: 10,
    },
    ZipfCase {
        s: 1.2,
        percent: 10,
    },
];

/// The workloads of a smoke test: the headline and one large cache.
pub const QUICK_CASES: [ZipfCase; 2] = [
    HEADLINE,
    ZipfCase {
        s: 1.2,
        percent: 10,
    },
];

/// The workloads this run measures: [`CASES`], or [`QUICK_CASES`] when [`quick`].
#[must_use]
pub fn cases() -> &'static [ZipfCase] {
    if quick() { &QUICK_CASES } else { &CASES }
}

/// `full`, or a tenth of it (at least 1) when [`quick`]: stream lengths and batch sizes.
#[must_use]
pub fn scaled(full: usize) -> usize {
    if quick() { (full / 10).max(1) } else { full }
}

/// Appends `suite<TAB>row<TAB>metric<TAB>value` to the file named by [`METRICS_ENV`], if set.
///
/// A failure to write is reported on stderr and otherwise ignored: a missing extra figure must
/// not abort a benchmark run.
pub fn record_metric(suite: &str, row: &str, metric: &str, value: f64) {
    let Some(path) = std::env::var_os(METRICS_ENV) else {
        return;
    };
    let line = metric_line(suite, row, metric, value);
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "larder-benches: cannot append a metric to {}: {e}",
            std::path::Path::new(&path).display()
        );
    }
}

/// One line of the metrics protocol, newline included.
fn metric_line(suite: &str, row: &str, metric: &str, value: f64) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    format!(
        "{}\t{}\t{}\t{value}\n",
        clean(suite),
        clean(row),
        clean(metric)
    )
}

/// A reproducible sequence of `len` keys drawn from a Zipf distribution with exponent `s`
/// over `n_keys` distinct keys (1-based ranks turned into well-spread `u64` keys).
///
/// # Panics
/// Panics if `n_keys` is 0 or `s` is not a valid Zipf exponent (benchmark set-up bug).
#[must_use]
pub fn zipf_keys(n_keys: u64, s: f64, len: usize, seed: u64) -> Vec<u64> {
    #[allow(clippy::cast_precision_loss)] // key counts in benches are far below 2^52
    let dist = Zipf::new(n_keys as f64, s).expect("valid zipf parameters");
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let rank = dist.sample(&mut rng) as u64;
            // Spread ranks over the u64 space so shard selection is not trivially sequential.
            rank.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_line_has_four_tab_separated_fields() {
        let line = metric_line("eviction", "a\tb\nc", "hit_ratio", 0.25);
        assert_eq!(line, "eviction\ta b c\thit_ratio\t0.25\n");
    }

    #[test]
    fn cases_label_and_size() {
        assert_eq!(HEADLINE.label(), "s=1.0 1%");
        assert_eq!(HEADLINE.items(), 10_000);
        assert_eq!(CASES[5].label(), "s=1.2 10%");
        assert_eq!(CASES[5].items(), 100_000);
        assert!(QUICK_CASES.iter().all(|c| CASES.contains(c)));
    }
}
