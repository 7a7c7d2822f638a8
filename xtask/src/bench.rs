//! `cargo xtask bench`: the criterion suites of `benches/`, the HTTP load runs and the memory
//! figures, written side by side with their peers into `docs/benchmarks.md`.
//!
//! Steps: install `wrk` and `cmake` from Debian's packages when missing (the pingora peers need
//! cmake to build); build the benches crate's binaries and benches; run each criterion suite with
//! `LARDER_BENCH_METRICS` pointing at a file that benches append extra figures to (see
//! `benches/src/lib.rs`); measure bytes per entry with a counting allocator; run wrk against the
//! bare hyper server and the `larder` proxy (see [`http`]), then the disk-hit rows beside nginx
//! `proxy_cache`, installed from Debian's package too (see [`disk`], [`nginx`]), and the hits over
//! TLS beside nginx terminating TLS, HTTP/1.1 by wrk and h2 by h2load (Debian's `nghttp2-client`;
//! see [`tls`]); read criterion's
//! JSON results; write the report. A partial run given `--out` updates that report (see
//! [`splice`]). A full run writes `docs/benchmarks.md`; `--quick` and `--only` are smoke tests and
//! write their report beside the benches' build instead, so CI never rewrites the figures.
//!
//! `--quick` is what `cargo xtask ci` runs, so it is built to be cheap on a fresh machine: the
//! benches crate builds with its `quick-bench` profile (see `benches/Cargo.toml`), the suites get
//! `LARDER_BENCH_QUICK=1` (shorter streams, two workloads) and criterion's shortest settings,
//! and the HTTP rows use the debug `larder` that the conformance step has already built (one disk
//! row and one TLS row, larder alone: nginx and h2load are neither installed nor run). It fails
//! when something does not build, panics or answers wrongly, never on a figure.

// Paths in messages are quoted on purpose: a path with spaces stays unambiguous.
#![allow(clippy::unnecessary_debug_formatting)]

mod disk;
mod http;
mod load;
mod nginx;
mod process;
mod report;
mod splice;
mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use self::report::Machine;
use crate::util::{cargo, has_command, root, run};

const USAGE: &str = "\
usage: cargo xtask bench [options]

  --quick        a smoke test (what CI runs): a quickly built, briefly run benchmark of each
                 kind, HTTP rows for 1 KiB only, 2 s each, against a debug build of larder
                 (memory and disk storage; no nginx)
  --only NAME    one part: a criterion suite (cache_control, eviction, memory_cache), memory
                 or http
  --report-only  run nothing: report the results already on disk (every criterion result there,
                 the last run's extra figures; no HTTP rows)
  --out PATH     where the report goes (default: docs/benchmarks.md for a full run, else
                 <bench target>/benchmarks-quick.md); with --only, an existing report there is
                 updated: the sections of the parts not run keep their last figures

environment:
  LARDER_BENCH_TARGET_DIR  the benches crate's target dir (default: CARGO_TARGET_DIR, else target/)
";

/// The criterion suites, in the order they run.
const SUITES: [&str; 3] = ["cache_control", "eviction", "memory_cache"];

/// The benches crate's cargo profile for a full run, and the directory it builds into.
const FULL_PROFILE: (&str, &str) = ("bench", "release");

/// The benches crate's cargo profile for `--quick` (defined in `benches/Cargo.toml`): quick to
/// build, and its figures are not measurements anyway.
const QUICK_PROFILE: (&str, &str) = ("quick-bench", "quick-bench");

/// Parsed command-line options.
#[derive(Debug, Default)]
struct Options {
    quick: bool,
    report_only: bool,
    only: Option<String>,
    out: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut opts = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => opts.quick = true,
                "--report-only" => opts.report_only = true,
                "--only" => {
                    let name = args
                        .next()
                        .filter(|n| SUITES.contains(&n.as_str()) || *n == "memory" || *n == "http")
                        .ok_or_else(|| format!("--only needs a part's name\n{USAGE}"))?;
                    opts.only = Some(name.clone());
                }
                "--out" => {
                    let path = args
                        .next()
                        .ok_or_else(|| format!("--out needs a path\n{USAGE}"))?;
                    opts.out = Some(PathBuf::from(path));
                }
                "--help" | "-h" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown option `{other}`\n{USAGE}")),
            }
        }
        Ok(opts)
    }

    fn wants(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == part)
    }
}

/// Entry point for `cargo xtask bench`.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    let opts = Options::parse(args)?;
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut machine = Machine {
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        cpu: cpu_model(),
        load_before: load_average(),
        date: utc_date(started),
        command: std::iter::once("cargo xtask bench".to_owned())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        ..Machine::default()
    };
    let ctx = Context::new(if opts.quick {
        QUICK_PROFILE
    } else {
        FULL_PROFILE
    });
    let http_file = ctx.target.join("bench-http").join("results.tsv");
    if opts.report_only {
        let (benches, extra) = collect(&ctx, 0)?;
        machine.load_after = load_average();
        let http_results = std::fs::read_to_string(&http_file)
            .ok()
            .and_then(|t| http::Results::from_tsv(&t));
        return write_report(
            &ctx,
            &opts,
            &machine,
            &benches,
            &extra,
            http_results.as_ref(),
        );
    }
    let _ = std::fs::remove_file(&ctx.metrics);

    ensure_package("cmake", "cmake")?;
    if opts.wants("http") {
        ensure_package("wrk", "wrk")?;
    }
    run(
        "build the benches' binaries",
        ctx.bench_cargo("build").arg("--bins"),
    )?;
    // All suites in one build, so that the build's time shows apart from the runs'. A suite that
    // does not build fails again below, on its own, and the others still run.
    if opts.only.as_deref().is_none_or(|o| SUITES.contains(&o)) {
        let mut cmd = ctx.bench_cargo("build");
        match &opts.only {
            Some(suite) => cmd.args(["--bench", suite]),
            None => cmd.arg("--benches"),
        };
        if let Err(e) = run("build the criterion suites", &mut cmd) {
            eprintln!("xtask bench: {e}; running the suites that build");
        }
    }
    machine.failures = criterion(&ctx, &opts);
    if opts.wants("memory") {
        let mut cmd = Command::new(ctx.bins.join("mem_overhead"));
        cmd.env("LARDER_BENCH_METRICS", &ctx.metrics);
        if opts.quick {
            cmd.args(["--entries", "20000"]);
        }
        if let Err(e) = run("bytes per entry", &mut cmd) {
            machine.failures.push(e);
        }
    }
    let http_results = if opts.wants("http") {
        http_part(&ctx, &opts, &mut machine, &http_file)
    } else {
        None
    };
    let (benches, extra) = collect(&ctx, started)?;
    machine.load_after = load_average();
    write_report(
        &ctx,
        &opts,
        &machine,
        &benches,
        &extra,
        http_results.as_ref(),
    )?;
    if machine.failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} part(s) failed; see the report",
            machine.failures.len()
        ))
    }
}

/// Builds the proxy and runs the HTTP rows; a failure is noted in `machine`, not returned, so
/// the report still gets the other parts' figures.
fn http_part(
    ctx: &Context,
    opts: &Options,
    machine: &mut Machine,
    http_file: &Path,
) -> Option<http::Results> {
    // A quick run takes the debug build: CI's conformance step has built it already, with
    // these very arguments, and a smoke test needs no optimised figures.
    let (step, profile_dir) = if opts.quick {
        ("build larder (debug)", "debug")
    } else {
        ("build larder (release)", "release")
    };
    let mut build = cargo();
    build.args(["build", "-p", "larder-server", "--bin", "larder"]);
    if !opts.quick {
        build.arg("--release");
    }
    run(step, &mut build)
        .map_err(|e| machine.failures.push(e))
        .ok()?;
    // nginx `proxy_cache` is the disk-hit peer of a full run; a quick run measures larder alone.
    let nginx = if opts.quick {
        None
    } else {
        match ensure_package("nginx", "nginx").and_then(|()| {
            locate("nginx").ok_or_else(|| "nginx is installed but not found".to_owned())
        }) {
            Ok(path) => Some(path),
            Err(e) => {
                machine.failures.push(format!("nginx: {e}"));
                None
            }
        }
    };
    // The TLS rows' certificate comes from `openssl req`; their h2 rows need h2load.
    if let Err(e) = ensure_package("openssl", "openssl") {
        machine.failures.push(format!("openssl: {e}"));
    }
    let h2load = if opts.quick {
        None
    } else {
        match ensure_package("h2load", "nghttp2-client").and_then(|()| {
            locate("h2load").ok_or_else(|| "h2load is installed but not found".to_owned())
        }) {
            Ok(path) => Some(path),
            Err(e) => {
                machine.failures.push(format!("h2load: {e}"));
                None
            }
        }
    };
    let plan = load::Plan {
        quick: opts.quick,
        cores: machine.cores,
        bare: ctx.bins.join("bare_server"),
        larder: workspace_target().join(profile_dir).join("larder"),
        nginx,
        h2load,
        work: ctx.target.join("bench-http"),
    };
    match http::run(&plan) {
        Ok(results) => {
            // Kept for --report-only.
            let _ = std::fs::write(http_file, results.to_tsv());
            Some(results)
        }
        Err(e) => {
            eprintln!("xtask bench: the HTTP runs failed: {e}");
            machine.failures.push(format!("HTTP runs: {e}"));
            None
        }
    }
}

/// Renders the report and writes it where `opts` says.
fn write_report(
    ctx: &Context,
    opts: &Options,
    machine: &Machine,
    benches: &[report::Bench],
    extra: &report::Metrics,
    http_results: Option<&http::Results>,
) -> Result<(), String> {
    let out = opts.out.clone().unwrap_or_else(|| {
        if opts.quick || opts.only.is_some() || opts.report_only {
            ctx.target.join("benchmarks-quick.md")
        } else {
            root().join("docs").join("benchmarks.md")
        }
    });
    // A hand-written analysis of the profile, kept beside the benches, closes the report.
    let analysis = std::fs::read_to_string(root().join("benches").join("analysis.md")).ok();
    let text = report::render(
        machine,
        benches,
        extra,
        http_results,
        opts.quick,
        analysis.as_deref(),
    );
    // A partial run into an existing report updates it: the parts it did not run keep their
    // last figures (criterion results are not kept on disk between machines, so `--report-only`
    // cannot supply them).
    let text = match std::fs::read_to_string(&out) {
        Ok(old) if opts.only.is_some() && !opts.quick && opts.out.is_some() => {
            splice::splice(&old, &text)
        }
        _ => text,
    };
    std::fs::write(&out, text).map_err(|e| format!("cannot write {out:?}: {e}"))?;
    eprintln!("xtask bench: wrote {out:?}");
    Ok(())
}

/// Where the benches crate builds and what it shares with xtask.
struct Context {
    target: PathBuf,
    manifest: PathBuf,
    /// The cargo profile the benches crate builds with.
    profile: &'static str,
    /// The metrics protocol's file (`LARDER_BENCH_METRICS`).
    metrics: PathBuf,
    /// The benches crate's binaries.
    bins: PathBuf,
}

impl Context {
    /// `profile`: the cargo profile and the directory of the target dir it builds into.
    fn new((profile, dir): (&'static str, &str)) -> Self {
        let target = bench_target();
        Self {
            manifest: root().join("benches").join("Cargo.toml"),
            profile,
            metrics: target.join("bench-metrics.tsv"),
            bins: target.join(dir),
            target,
        }
    }

    /// `cargo <sub>` on the benches crate with its profile; a quick run (CI) also with its
    /// lockfile as committed.
    fn bench_cargo(&self, sub: &str) -> Command {
        let mut cmd = cargo();
        if self.profile == QUICK_PROFILE.0 {
            cmd.arg(sub).arg("--locked");
        } else {
            cmd.arg(sub);
        }
        cmd.arg("--manifest-path")
            .arg(&self.manifest)
            .arg("--target-dir")
            .arg(&self.target)
            .args(["--profile", self.profile])
            .env("LARDER_BENCH_METRICS", &self.metrics)
            // Criterion finds its output directory from the environment, not from cargo's flags.
            .env("CRITERION_HOME", self.target.join("criterion"));
        cmd
    }
}

/// Runs the criterion suites that `opts` selects, one at a time; returns the failures (a suite
/// that does not build or panics must not cost the others their figures).
fn criterion(ctx: &Context, opts: &Options) -> Vec<String> {
    let mut failures = Vec::new();
    for suite in SUITES.iter().filter(|s| opts.wants(s)) {
        let mut cmd = ctx.bench_cargo("bench");
        cmd.args(["--bench", suite, "--", "--noplot"]);
        if opts.quick {
            // Criterion's least: a smoke test, whose figures nobody reads as measurements.
            cmd.env("LARDER_BENCH_QUICK", "1").args([
                "--warm-up-time",
                "0.05",
                "--measurement-time",
                "0.1",
                "--sample-size",
                "10",
                "--nresamples",
                "1000",
            ]);
        } else {
            cmd.args(["--warm-up-time", "1", "--measurement-time", "3"]);
        }
        if let Err(e) = run(&format!("criterion suite {suite}"), &mut cmd) {
            failures.push(e);
        }
    }
    failures
}

/// This run's criterion results and the extra figures benches recorded.
fn collect(ctx: &Context, started: u64) -> Result<(Vec<report::Bench>, report::Metrics), String> {
    let summary = Command::new(ctx.bins.join("criterion_summary"))
        .arg(ctx.target.join("criterion"))
        .args(["--since", &started.to_string()])
        .output()
        .map_err(|e| format!("cannot run criterion_summary: {e}"))?;
    if !summary.status.success() {
        return Err(format!(
            "criterion_summary failed: {}",
            String::from_utf8_lossy(&summary.stderr)
        ));
    }
    let mut benches = report::parse_summary(&String::from_utf8_lossy(&summary.stdout));
    let extra = report::parse_metrics(&std::fs::read_to_string(&ctx.metrics).unwrap_or_default());
    // Hit ratios go beside their rows' speeds; the other figures get a table of their own.
    let extra = report::attach_hit_ratios(&mut benches, &extra);
    Ok((benches, extra))
}

/// The benches crate's target dir.
fn bench_target() -> PathBuf {
    std::env::var_os("LARDER_BENCH_TARGET_DIR")
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR"))
        .map_or_else(|| root().join("target"), PathBuf::from)
}

/// The workspace's target dir, where `larder` is built.
fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Installs Debian package `package` when `program` is missing.
fn ensure_package(program: &str, package: &str) -> Result<(), String> {
    if has_command(program, &["--version"]) || which(program) {
        return Ok(());
    }
    let sudo = !is_root() && has_command("sudo", &["-n", "true"]);
    let apt = |args: &[&str]| {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        } else {
            Command::new("apt-get")
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run("apt-get update", &mut apt(&["update"]))?;
    run(
        &format!("install {package}"),
        &mut apt(&["install", "-y", package]),
    )
}

/// Whether `program` is an executable file on `PATH` or in an `sbin` directory (wrk has no
/// `--version` that succeeds).
fn which(program: &str) -> bool {
    locate(program).is_some()
}

/// Where `program` is: on `PATH`, else in `/usr/sbin` or `/sbin` (where Debian puts nginx,
/// missing from an unprivileged user's `PATH`).
fn locate(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The CPU model from `/proc/cpuinfo`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM UTC`.
fn utc_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    #[allow(clippy::cast_possible_wrap)] // days since 1970 fit easily
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
        assert_eq!(utc_date(1_798_761_600), "2027-01-01 00:00 UTC");
    }

    #[test]
    fn options() {
        let o = Options::parse(&["--quick".into(), "--only".into(), "http".into()]).expect("ok");
        assert!(o.quick && o.wants("http") && !o.wants("eviction"));
        assert!(Options::parse(&["--only".into(), "nope".into()]).is_err());
    }
}
