//! `cargo xtask conformance`: the public HTTP caching test suite against the `larder` proxy.
//!
//! Copies the suite to `work-conformance/`, installs its npm dependencies, starts its origin server
//! and `larder` in front of it on loopback, runs the suite's client against the proxy, scores the
//! results beside the published peers, writes `docs/conformance.md` and compares the passing tests
//! with `conformance/baseline.txt`. See `docs/conformance.md` for the figures and how to run it.

// Paths in messages are quoted on purpose: a path with spaces stays unambiguous.
#![allow(clippy::unnecessary_debug_formatting)]

mod process;
mod report;
mod score;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::free_port;
use crate::util::{cargo, has_command, root, run};
use process::Guard;
use report::RunInfo;
use score::Scores;

const USAGE: &str = "\
usage: cargo xtask conformance [options]

  --bless          rewrite conformance/baseline.txt from this run's passing tests
  --check          leave docs/conformance.md alone (the report goes to work-conformance/); for CI
  --direct         run the suite against its origin alone (no cache), to check the harness
  --id TEST        run one test and print the suite's dump of its requests and responses
  --release        build larder with optimisations (default: debug, which builds faster)
  --larder PATH    use this larder binary instead of building one
  --report-only    re-score the last run's results and rewrite docs/conformance.md
  --timeout SECS   time limit for one run of the suite (default 300)

environment:
  CACHE_TESTS_DIR  the suite (default: ../shared/cache-tests beside the workspace)
  LARDER_ARGS      extra arguments for larder, split on whitespace
";

/// Parsed command-line options.
// One field per switch of the command line; a state machine would only hide that.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Default)]
struct Options {
    bless: bool,
    check: bool,
    direct: bool,
    release: bool,
    report_only: bool,
    id: Option<String>,
    larder: Option<PathBuf>,
    timeout: Option<Duration>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut opts = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bless" => opts.bless = true,
                "--check" => opts.check = true,
                "--direct" => opts.direct = true,
                "--release" => opts.release = true,
                "--report-only" => opts.report_only = true,
                "--larder" => {
                    let path = args
                        .next()
                        .ok_or_else(|| format!("--larder needs a path\n{USAGE}"))?;
                    opts.larder = Some(PathBuf::from(path));
                }
                "--id" => {
                    let id = args
                        .next()
                        .filter(|id| !id.is_empty() && !id.starts_with('-'))
                        .ok_or_else(|| format!("--id needs a test id\n{USAGE}"))?;
                    opts.id = Some(id.clone());
                }
                "--timeout" => {
                    let secs = args
                        .next()
                        .and_then(|s| s.parse::<u64>().ok())
                        .filter(|s| *s > 0)
                        .ok_or_else(|| format!("--timeout needs a number of seconds\n{USAGE}"))?;
                    opts.timeout = Some(Duration::from_secs(secs));
                }
                other => return Err(format!("unknown option `{other}`\n{USAGE}")),
            }
        }
        if opts.direct && opts.bless {
            return Err("--bless blesses larder's results; it cannot go with --direct".to_owned());
        }
        if opts.check && opts.bless {
            return Err(
                "--check leaves the committed files alone; it cannot go with --bless".to_owned(),
            );
        }
        Ok(opts)
    }

    fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_mins(5))
    }
}

/// Where everything lives.
struct Paths {
    root: PathBuf,
    /// `conformance/`: the committed baseline, reasons, lock file and helper scripts.
    own: PathBuf,
    /// `work-conformance/`: the gitignored work folder.
    work: PathBuf,
    /// The copy of the suite inside the work folder.
    suite: PathBuf,
}

impl Paths {
    fn new() -> Self {
        let root = root();
        let work = root.join("work-conformance");
        Paths {
            own: root.join("conformance"),
            suite: work.join("cache-tests"),
            work,
            root,
        }
    }

    fn results(&self, direct: bool) -> PathBuf {
        self.work.join(if direct {
            "results-direct.json"
        } else {
            "results.json"
        })
    }

    fn rerun_results(&self) -> PathBuf {
        self.work.join("results-rerun.json")
    }
}

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return Ok(());
    }
    let opts = Options::parse(args)?;
    let started = Instant::now();
    let paths = Paths::new();
    check_node()?;
    prepare_suite(&paths)?;

    if let Some(id) = &opts.id {
        return run_one(&opts, &paths, id);
    }
    let results = paths.results(opts.direct);
    let label = if opts.direct { "origin" } else { "larder" };
    let (scores, ran) = if opts.report_only {
        if !fs::read_to_string(&results).is_ok_and(|r| r.trim_start().starts_with('{')) {
            return Err(format!(
                "--report-only: no results at {results:?}; run `cargo xtask conformance` first"
            ));
        }
        let mut files = vec![results.clone()];
        if !opts.direct && paths.rerun_results().exists() {
            files.push(paths.rerun_results());
        }
        (score(&paths, label, &files)?, None)
    } else {
        let (scores, ran) = run_suite(&opts, &paths, label, &results)?;
        (scores, Some(ran))
    };

    print_summary(&scores);
    if opts.direct {
        eprintln!(
            "conformance: --direct done in {:.0}s; results in {results:?} (no report, no baseline)",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    write_report(&opts, &paths, &scores, ran, started)?;
    let result = compare_with_baseline(&scores, &paths, opts.bless);
    eprintln!(
        "conformance: done in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    result
}

/// Runs one test through the suite's client, which then prints what was sent and received.
fn run_one(opts: &Options, paths: &Paths, id: &str) -> Result<(), String> {
    let larder = larder_binary(opts, paths)?;
    let session = Session::start(paths, larder.as_deref(), opts.timeout())?;
    let out = paths.work.join("dump.txt");
    let mut node = session.client(paths);
    node.env("npm_package_config_id", id);
    let log = paths.work.join("client.log");
    let status = Guard::spawn("suite client", &node, opts.timeout(), &log, Some(&out))?
        .wait(opts.timeout())?;
    drop(session);
    print!("{}", read(&out)?);
    eprint!("{}", read(&log)?);
    if status.success() {
        Ok(())
    } else {
        Err(format!("the suite's client failed ({status})"))
    }
}

/// What a run of the suite adds to its scores.
struct Ran {
    proxy_line: String,
    suite_seconds: f64,
    passed_on_retry: Vec<String>,
}

/// Builds larder (unless `--direct`), starts the servers, runs the suite and scores it. Baseline
/// tests that fail are re-run once, with their dependencies, before the servers stop.
fn run_suite(
    opts: &Options,
    paths: &Paths,
    label: &str,
    results: &Path,
) -> Result<(Scores, Ran), String> {
    let larder = larder_binary(opts, paths)?;
    let _ = fs::remove_file(paths.rerun_results());
    let mut session = Session::start(paths, larder.as_deref(), opts.timeout())?;
    let started = Instant::now();
    session.run(paths, None, results, opts.timeout())?;
    let mut ran = Ran {
        proxy_line: session.proxy_line.clone(),
        suite_seconds: started.elapsed().as_secs_f64(),
        passed_on_retry: Vec::new(),
    };
    let mut scores = score(paths, label, &[results.to_owned()])?;
    if !opts.direct && !opts.bless {
        let failing = regressions(&scores, paths)?;
        if !failing.is_empty() {
            let ids = scores.with_dependencies(&failing);
            eprintln!(
                "conformance: {} baseline test(s) failed; re-running them once with their \
                 dependencies ({} tests)",
                failing.len(),
                ids.len()
            );
            session.run(paths, Some(&ids), &paths.rerun_results(), opts.timeout())?;
            scores = score(paths, label, &[results.to_owned(), paths.rerun_results()])?;
            let still = regressions(&scores, paths)?;
            ran.passed_on_retry = failing.difference(&still).cloned().collect();
        }
    }
    Ok((scores, ran))
}

/// Writes `docs/conformance.md` (or, with `--check`, a copy in the work folder).
fn write_report(
    opts: &Options,
    paths: &Paths,
    scores: &Scores,
    ran: Option<Ran>,
    started: Instant,
) -> Result<(), String> {
    let reasons = report::read_reasons(&paths.own.join("reasons.txt"))?;
    for id in reasons.keys() {
        if !scores.tests.iter().any(|t| &t.id == id) {
            eprintln!("conformance: warning: conformance/reasons.txt names unknown test `{id}`");
        } else if scores.verdict(0, id).is_pass() {
            eprintln!(
                "conformance: note: `{id}` passes; remove its reason from conformance/reasons.txt"
            );
        }
    }
    let saved = paths.work.join("run-info.txt");
    let info = if let Some(ran) = ran {
        let info = RunInfo {
            date: utc_now(),
            commit: commit(&paths.root),
            suite: suite_snapshot(&paths.suite),
            proxy: ran.proxy_line,
            seconds: Some((started.elapsed().as_secs_f64(), ran.suite_seconds)),
            passed_on_retry: ran.passed_on_retry,
        };
        fs::write(&saved, info.to_text()).map_err(|e| format!("cannot write {saved:?}: {e}"))?;
        info
    } else {
        // Re-scoring: restate the run's own facts when they were kept.
        fs::read_to_string(&saved)
            .ok()
            .and_then(|text| RunInfo::from_text(&text))
            .unwrap_or_else(|| RunInfo {
                date: utc_now(),
                commit: commit(&paths.root),
                suite: suite_snapshot(&paths.suite),
                proxy: "(not recorded)".to_owned(),
                seconds: None,
                passed_on_retry: Vec::new(),
            })
    };
    let doc = if opts.check {
        paths.work.join("conformance.md")
    } else {
        paths.root.join("docs").join("conformance.md")
    };
    fs::write(&doc, report::markdown(scores, &reasons, &info))
        .map_err(|e| format!("cannot write {doc:?}: {e}"))?;
    eprintln!("conformance: wrote {}", doc.display());
    Ok(())
}

/// The suite's client needs Node.js 20 or later (its undici dependency says so) and npm.
fn check_node() -> Result<(), String> {
    const NEEDED: u32 = 20;
    let missing = |program: &str| {
        format!(
            "conformance needs `{program}` on PATH (Node.js {NEEDED} or later, which brings npm); \
             it runs the HTTP caching test suite"
        )
    };
    let out = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|_| missing("node"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(major) if major >= NEEDED => {}
        _ => {
            return Err(format!(
                "conformance needs Node.js {NEEDED} or later; `node --version` says {version:?}"
            ));
        }
    }
    if !has_command("npm", &["--version"]) {
        return Err(missing("npm"));
    }
    Ok(())
}

/// Copies the suite into the work folder and installs its dependencies when they changed.
fn prepare_suite(paths: &Paths) -> Result<(), String> {
    let source = std::env::var_os("CACHE_TESTS_DIR").map_or_else(
        || paths.root.join("..").join("shared").join("cache-tests"),
        PathBuf::from,
    );
    if !source.join("tests").join("index.mjs").is_file() {
        return Err(format!(
            "the HTTP caching test suite is not at {source:?}; set CACHE_TESTS_DIR to a copy of \
             https://github.com/http-tests/cache-tests"
        ));
    }
    fs::create_dir_all(&paths.suite)
        .map_err(|e| format!("cannot create {:?}: {e}", paths.suite))?;
    // A fresh copy each time (it is small); only `node_modules` is kept.
    for entry in read_dir(&paths.suite)? {
        if entry.file_name() == "node_modules" {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|e| format!("cannot remove {path:?}: {e}"))?;
    }
    copy_tree(&source, &paths.suite)?;
    let lock = paths.own.join("package-lock.json");
    if lock.is_file() {
        fs::read(&lock)
            .and_then(|bytes| fs::write(paths.suite.join("package-lock.json"), bytes))
            .map_err(|e| format!("cannot copy {lock:?}: {e}"))?;
    }

    let stamp_path = paths.work.join("npm-stamp");
    let stamp = [
        read(&paths.suite.join("package.json"))?,
        fs::read_to_string(paths.suite.join("package-lock.json")).unwrap_or_default(),
    ]
    .concat();
    let installed = paths.suite.join("node_modules").is_dir()
        && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp);
    if installed {
        eprintln!("conformance: suite dependencies up to date");
        return Ok(());
    }
    let _ = fs::remove_file(&stamp_path);
    // Only the runtime dependencies are needed (undici); the suite's linters are not. Its
    // `npm` dependency warns about its engine on Node 20 but is never run. No install scripts.
    let common = [
        "--omit=dev",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ];
    let mut npm = Command::new("npm");
    npm.current_dir(&paths.suite);
    if lock.is_file() {
        npm.arg("ci").args(common);
        run("npm ci (suite dependencies)", &mut npm).map_err(|e| {
            format!(
                "{e}; if the suite's package.json changed, refresh conformance/package-lock.json \
                 with `npm install --package-lock-only` in a copy of the suite"
            )
        })?;
    } else {
        npm.arg("install").args(common);
        run("npm install (suite dependencies)", &mut npm)?;
    }
    fs::write(&stamp_path, stamp).map_err(|e| format!("cannot write {stamp_path:?}: {e}"))
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, String> {
    fs::read_dir(dir)
        .and_then(Iterator::collect)
        .map_err(|e| format!("cannot list {dir:?}: {e}"))
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {path:?}: {e}"))
}

/// Copies a directory tree, leaving out `node_modules` and `.git`.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    for entry in read_dir(from)? {
        let name = entry.file_name();
        if name == "node_modules" || name == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            fs::create_dir_all(&dst).map_err(|e| format!("cannot create {dst:?}: {e}"))?;
            copy_tree(&src, &dst)?;
        } else {
            // Contents only: the source may be read-only, and the copy must stay writable.
            fs::read(&src)
                .and_then(|bytes| fs::write(&dst, bytes))
                .map_err(|e| format!("cannot copy {src:?}: {e}"))?;
        }
    }
    Ok(())
}

/// The proxy to test: none with `--direct`, the one `--larder` names, or a fresh build.
fn larder_binary(opts: &Options, paths: &Paths) -> Result<Option<PathBuf>, String> {
    if opts.direct {
        return Ok(None);
    }
    match &opts.larder {
        Some(path) if path.is_file() => Ok(Some(path.clone())),
        Some(path) => Err(format!("--larder: no binary at {path:?}")),
        None => build_larder(paths, opts.release).map(Some),
    }
}

/// Builds the `larder` binary and returns its path.
fn build_larder(paths: &Paths, release: bool) -> Result<PathBuf, String> {
    let mut cmd = cargo();
    cmd.args(["build", "-p", "larder-server", "--bin", "larder"]);
    if release {
        cmd.arg("--release");
    }
    run("build larder", &mut cmd)?;
    let binary = target_dir(paths)?
        .join(if release { "release" } else { "debug" })
        .join(format!("larder{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!("built larder but found no binary at {binary:?}"))
    }
}

/// Cargo's target directory, as `cargo metadata` reports it (honouring every way to set it).
fn target_dir(paths: &Paths) -> Result<PathBuf, String> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    json_string_field(&String::from_utf8_lossy(&out.stdout), "target_directory")
        .map(|dir| paths.root.join(dir))
        .ok_or_else(|| "cargo metadata did not name the target directory".to_owned())
}

/// The first string value of `"key":"..."` in compact JSON, unescaping `\"` and `\\`.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{key}\":\"");
    let start = json.find(&pattern)? + pattern.len();
    let mut value = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
}

/// The origin server and (unless `--direct`) the proxy, running until dropped.
struct Session {
    // Field order is drop order: the proxy stops before the origin.
    proxy: Option<Guard>,
    origin: Guard,
    base: String,
    proxy_line: String,
}

impl Session {
    fn start(paths: &Paths, larder: Option<&Path>, timeout: Duration) -> Result<Self, String> {
        // The servers outlive one run of the suite by the re-run and some slack.
        let limit = timeout * 2 + Duration::from_mins(1);
        let origin_port = free_port()?;
        let mut node = Command::new("node");
        node.current_dir(&paths.suite)
            .arg(paths.own.join("origin.mjs"))
            .arg(
                paths
                    .suite
                    .join("test-engine")
                    .join("server")
                    .join("server.mjs"),
            )
            .env("npm_config_port", origin_port.to_string())
            .env("npm_config_protocol", "http")
            .env("npm_config_pidfile", paths.work.join("origin.pid"))
            .env("CONFORMANCE_PARENT_PID", std::process::id().to_string());
        let mut origin =
            Guard::spawn("origin", &node, limit, &paths.work.join("origin.log"), None)?;
        origin.wait_for_port(origin_port, Duration::from_secs(30))?;
        let origin_url = format!("http://127.0.0.1:{origin_port}");

        let Some(larder) = larder else {
            return Ok(Session {
                proxy: None,
                origin,
                base: origin_url,
                proxy_line: String::new(),
            });
        };
        let proxy_port = free_port()?;
        let mut cmd = Command::new(larder);
        cmd.current_dir(&paths.work)
            .args(["--upstream", &origin_url])
            .args(["--listen", &format!("127.0.0.1:{proxy_port}")]);
        let extra = std::env::var("LARDER_ARGS").unwrap_or_default();
        cmd.args(extra.split_whitespace());
        let proxy_line = format!(
            "larder --upstream http://127.0.0.1:<origin> --listen 127.0.0.1:<proxy>{}{}",
            if extra.trim().is_empty() { "" } else { " " },
            extra.trim()
        );
        let mut proxy = Guard::spawn("larder", &cmd, limit, &paths.work.join("larder.log"), None)?;
        proxy.wait_for_port(proxy_port, Duration::from_secs(30))?;
        Ok(Session {
            proxy: Some(proxy),
            origin,
            base: format!("http://127.0.0.1:{proxy_port}"),
            proxy_line,
        })
    }

    /// The suite's command-line client against this session, set to run every test (as
    /// `npm run --silent cli --base=...` does).
    fn client(&self, paths: &Paths) -> Command {
        let mut node = Command::new("node");
        node.current_dir(&paths.suite)
            .arg("--no-warnings")
            .arg(paths.suite.join("test-engine").join("cli.mjs"))
            .env("npm_config_base", &self.base)
            .env_remove("npm_config_id")
            .env("npm_package_config_id", "");
        node
    }

    /// Runs the suite's client (all tests) or `conformance/run.mjs` (some tests) into `out`.
    fn run(
        &mut self,
        paths: &Paths,
        ids: Option<&BTreeSet<String>>,
        out: &Path,
        timeout: Duration,
    ) -> Result<(), String> {
        let node = match ids {
            None => self.client(paths),
            Some(ids) => {
                let mut node = Command::new("node");
                node.current_dir(&paths.suite)
                    .arg("--no-warnings")
                    .arg(paths.own.join("run.mjs"))
                    .arg(&paths.suite)
                    .arg(&self.base)
                    .args(ids);
                node
            }
        };
        let started = Instant::now();
        let log = paths.work.join("client.log");
        let client = Guard::spawn("suite client", &node, timeout, &log, Some(out))?;
        let status = client.wait(timeout)?;
        if status.code() == Some(124) {
            // What coreutils `timeout` exits with when it stopped the client.
            return Err(format!(
                "the suite's client did not finish within {}s and was stopped (see --timeout)",
                timeout.as_secs()
            ));
        }
        if !status.success() {
            return Err(format!(
                "the suite's client failed ({status}); {log:?} ends:\n{}",
                crate::util::tail(&log)
            ));
        }
        if !read(out)?.trim_start().starts_with('{') {
            return Err(format!("the suite's client wrote no JSON to {out:?}"));
        }
        // A server that died mid-run explains every failure; say so instead of scoring.
        self.origin.check_running()?;
        if let Some(proxy) = &mut self.proxy {
            proxy.check_running()?;
        }
        eprintln!(
            "<== suite client: {} in {:.1}s",
            out.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// Scores `files` (merged, later ones winning) as `label`, beside the published peers.
fn score(paths: &Paths, label: &str, files: &[PathBuf]) -> Result<Scores, String> {
    let joined: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let out = Command::new("node")
        .arg(paths.own.join("score.mjs"))
        .arg(&paths.suite)
        .arg(format!("{label}={}", joined.join("+")))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if !out.status.success() {
        return Err(format!("conformance/score.mjs failed ({})", out.status));
    }
    Scores::parse(&String::from_utf8_lossy(&out.stdout))
}

fn print_summary(scores: &Scores) {
    use score::Kind;
    for (i, implementation) in scores.impls.iter().enumerate() {
        let t = scores.tally(i, None);
        eprintln!(
            "{:>16}: required {:>3}/{}  optimal {:>3}/{}  check yes {:>3}/{}  all {:>3}/{}",
            implementation.name,
            t.passed(Kind::Required),
            t.total(Kind::Required),
            t.passed(Kind::Optimal),
            t.total(Kind::Optimal),
            t.passed(Kind::Check),
            t.total(Kind::Check),
            t.passed_all(),
            t.total_all(),
        );
    }
}

/// Baseline tests larder no longer passes.
fn regressions(scores: &Scores, paths: &Paths) -> Result<BTreeSet<String>, String> {
    let baseline = report::read_baseline(&paths.own.join("baseline.txt"))?.unwrap_or_default();
    let passing = scores.baseline_ids(0);
    Ok(baseline.difference(&passing).cloned().collect())
}

fn compare_with_baseline(scores: &Scores, paths: &Paths, bless: bool) -> Result<(), String> {
    let path = paths.own.join("baseline.txt");
    let passing = scores.baseline_ids(0);
    if bless {
        fs::write(&path, report::baseline_text(&passing))
            .map_err(|e| format!("cannot write {path:?}: {e}"))?;
        eprintln!(
            "conformance: blessed {} passing tests into {}",
            passing.len(),
            path.display()
        );
        return Ok(());
    }
    let Some(baseline) = report::read_baseline(&path)? else {
        eprintln!(
            "conformance: no baseline at {}; run `cargo xtask conformance --bless` to create it",
            path.display()
        );
        return Ok(());
    };
    let new: Vec<&String> = passing.difference(&baseline).collect();
    if !new.is_empty() {
        eprintln!(
            "conformance: {} test(s) now pass that the baseline lacks:",
            new.len()
        );
        for id in &new {
            eprintln!("  + {id}");
        }
        eprintln!("conformance: run `cargo xtask conformance --bless` to add them to the baseline");
    }
    let lost: Vec<&String> = baseline.difference(&passing).collect();
    if lost.is_empty() {
        eprintln!("conformance: all {} baseline tests pass", baseline.len());
        return Ok(());
    }
    let mut msg = format!(
        "{} test(s) in conformance/baseline.txt no longer pass:",
        lost.len()
    );
    for id in lost {
        let verdict = scores.verdict(0, id);
        let _ = write!(msg, "\n  - {id}: {} ({})", verdict.outcome, verdict.message);
    }
    msg.push_str(
        "\nfix the regression, or if it is intended run `cargo xtask conformance --bless` and \
         give the reason in conformance/reasons.txt",
    );
    Err(msg)
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The workspace's commit, noting uncommitted changes to the code (a `Cargo.lock` that cargo
/// merely refreshed does not count).
fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short=10", "HEAD"]) else {
        return "unknown (not a git checkout)".to_owned();
    };
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "crates",
        "Cargo.toml",
    ])
    .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("`{head}` with uncommitted changes")
    } else {
        format!("`{head}`")
    }
}

/// The suite's snapshot commit, from its `SNAPSHOT` note.
fn suite_snapshot(suite: &Path) -> String {
    let note = fs::read_to_string(suite.join("SNAPSHOT")).unwrap_or_default();
    note.split_once("commit ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map_or_else(
            || "http-tests/cache-tests (snapshot of unknown commit)".to_owned(),
            |c| format!("http-tests/cache-tests at commit `{c}`"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn json_string_fields_are_found_and_unescaped() {
        let json = r#"{"packages":[],"target_directory":"/a \"b\"\\c","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some(r#"/a "b"\c"#)
        );
        assert_eq!(json_string_field(json, "workspace_root"), None);
        assert_eq!(
            json_string_field(r#"{"target_directory":"/unterminated"#, "target_directory"),
            None
        );
    }

    #[test]
    fn options_parse_and_reject_unknown_flags() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let opts = Options::parse(&args(&["--bless", "--timeout", "90"])).expect("parses");
        assert!(opts.bless);
        assert_eq!(opts.timeout(), Duration::from_secs(90));
        assert!(Options::parse(&args(&["--nope"])).is_err());
        let one = Options::parse(&args(&["--id", "vary-match"])).expect("parses");
        assert_eq!(one.id.as_deref(), Some("vary-match"));
        assert!(Options::parse(&args(&["--id"])).is_err());
        assert!(Options::parse(&args(&["--id", "--bless"])).is_err());
        assert!(Options::parse(&args(&["--timeout", "0"])).is_err());
        assert!(Options::parse(&args(&["--bless", "--direct"])).is_err());
        assert!(Options::parse(&args(&["--bless", "--check"])).is_err());
    }
}
