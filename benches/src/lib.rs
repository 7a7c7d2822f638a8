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
}
