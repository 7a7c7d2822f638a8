//! The HTTP load runs: wrk on loopback against the bare hyper server (the limit) and the
//! `larder` proxy, back to back for each row, so the ratios come from one moment of the machine.
//!
//! Cores: the measured server (bare or proxy) runs on core 0; wrk and the origin behind the proxy
//! share core 1. Every wrk run prints its own summary line from a Lua `done` hook, which this
//! module parses (no scraping of wrk's human report).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::{self, Launcher, Server};

/// One wrk summary.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Load {
    pub(super) rps: f64,
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
    /// Socket errors and timeouts.
    pub(super) errors: u64,
    /// Answers with a status outside 2xx and 3xx.
    pub(super) bad_status: u64,
}

/// One row of the HTTP table: the limit and the proxy on the same workload.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) name: String,
    pub(super) bare: Load,
    pub(super) larder: Load,
    /// The proxy's hits over its requests during the run, from `/metrics`.
    pub(super) hit_ratio: Option<f64>,
    pub(super) note: String,
}

/// The proxy's memory after filling its cache.
#[derive(Debug, Clone, Default)]
pub(super) struct Memory {
    pub(super) cache_size: u64,
    pub(super) body: usize,
    pub(super) urls: usize,
    pub(super) rss: Option<u64>,
    pub(super) rss_empty: Option<u64>,
    pub(super) cache_bytes: Option<u64>,
    pub(super) entries: Option<u64>,
}

/// Everything the HTTP part measured.
#[derive(Debug, Clone, Default)]
pub(super) struct Results {
    pub(super) rows: Vec<Row>,
    pub(super) memory: Option<Memory>,
    pub(super) pinned: bool,
    pub(super) connections: u32,
    pub(super) duration: Duration,
}

impl Load {
    fn fields(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}",
            self.rps, self.p50_us, self.p99_us, self.errors, self.bad_status
        )
    }

    fn from_fields(f: &[&str]) -> Option<Self> {
        Some(Self {
            rps: f.first()?.parse().ok()?,
            p50_us: f.get(1)?.parse().ok()?,
            p99_us: f.get(2)?.parse().ok()?,
            errors: f.get(3)?.parse().ok()?,
            bad_status: f.get(4)?.parse().ok()?,
        })
    }
}

impl Results {
    /// Tab-separated lines that [`Results::from_tsv`] reads back, so `--report-only` can render
    /// the last run's HTTP figures.
    pub(super) fn to_tsv(&self) -> String {
        let mut out = format!(
            "setup\t{}\t{}\t{}\n",
            self.pinned,
            self.connections,
            self.duration.as_secs()
        );
        for r in &self.rows {
            let hit = r.hit_ratio.map_or_else(String::new, |h| h.to_string());
            let _ = writeln!(
                out,
                "row\t{}\t{}\t{}\t{hit}\t{}",
                r.name,
                r.bare.fields(),
                r.larder.fields(),
                r.note.replace(['\t', '\n'], " ")
            );
        }
        if let Some(m) = &self.memory {
            let opt = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
            let _ = writeln!(
                out,
                "memory\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                m.cache_size,
                m.body,
                m.urls,
                opt(m.rss),
                opt(m.rss_empty),
                opt(m.cache_bytes),
                opt(m.entries)
            );
        }
        out
    }

    /// Reads [`Results::to_tsv`]'s lines; `None` when there is no `setup` line.
    pub(super) fn from_tsv(text: &str) -> Option<Self> {
        let mut results: Option<Results> = None;
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.first().copied() {
                Some("setup") if f.len() >= 4 => {
                    results = Some(Results {
                        pinned: f[1] == "true",
                        connections: f[2].parse().ok()?,
                        duration: Duration::from_secs(f[3].parse().ok()?),
                        ..Results::default()
                    });
                }
                Some("row") if f.len() >= 14 => {
                    results.as_mut()?.rows.push(Row {
                        name: f[1].to_owned(),
                        bare: Load::from_fields(&f[2..7])?,
                        larder: Load::from_fields(&f[7..12])?,
                        hit_ratio: f[12].parse().ok(),
                        note: f[13].to_owned(),
                    });
                }
                Some("memory") if f.len() >= 8 => {
                    results.as_mut()?.memory = Some(Memory {
                        cache_size: f[1].parse().ok()?,
                        body: f[2].parse().ok()?,
                        urls: f[3].parse().ok()?,
                        rss: f[4].parse().ok(),
                        rss_empty: f[5].parse().ok(),
                        cache_bytes: f[6].parse().ok(),
                        entries: f[7].parse().ok(),
                    });
                }
                _ => {}
            }
        }
        results
    }
}

/// What to run.
pub(super) struct Plan {
    pub(super) quick: bool,
    pub(super) cores: usize,
    /// `bare_server`.
    pub(super) bare: PathBuf,
    /// The release `larder` binary.
    pub(super) larder: PathBuf,
    /// Scripts and logs go here.
    pub(super) work: PathBuf,
}

const CONNECTIONS: u32 = 64;
/// The measured server's core, and the core of wrk and the origin.
const SERVER_CORE: usize = 0;
const CLIENT_CORE: usize = 1;

/// wrk's Lua hook printing the summary this module parses.
const DONE: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "LARDER_WRK requests=%.0f duration_us=%.0f p50_us=%.0f p99_us=%.0f errors=%.0f status=%.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"#;

/// Which URLs a wrk run requests.
enum Urls<'a> {
    /// The same path each time.
    Fixed(&'a str),
    /// `prefix` followed by a counter: every request a new URL.
    Unique(&'a str),
    /// `prefix` followed by a uniformly random number below `n`.
    Random(&'a str, usize),
    /// `prefix` followed by a counter modulo `n`: a cycle through `n` URLs.
    Cycle(&'a str, usize),
    /// `prefix` followed by a counter halved: each new URL requested twice in a row, so on
    /// separate connections at about the same time (a miss with a second concurrent reader).
    Pairs(&'a str),
}

impl Urls<'_> {
    fn script(&self) -> String {
        let request = match self {
            Urls::Fixed(_) => String::new(),
            Urls::Unique(prefix) => format!(
                "local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, \"{prefix}\" .. n)\nend\n"
            ),
            Urls::Random(prefix, n) => format!(
                "math.randomseed(7)\nrequest = function()\n  return wrk.format(nil, \"{prefix}\" .. math.random(0, {}))\nend\n",
                n - 1
            ),
            Urls::Cycle(prefix, n) => format!(
                "local n = 0\nrequest = function()\n  n = (n + 1) % {n}\n  return wrk.format(nil, \"{prefix}\" .. n)\nend\n"
            ),
            Urls::Pairs(prefix) => format!(
                "local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, \"{prefix}\" .. math.floor(n / 2))\nend\n"
            ),
        };
        format!("{request}{DONE}")
    }

    fn path(&self) -> &str {
        match self {
            Urls::Fixed(p) => p,
            _ => "/",
        }
    }
}

/// Runs every HTTP row and the memory fill.
pub(super) fn run(plan: &Plan) -> Result<Results, String> {
    std::fs::create_dir_all(&plan.work)
        .map_err(|e| format!("cannot create {:?}: {e}", plan.work))?;
    let launcher = Launcher::detect(plan.cores);
    let duration = if plan.quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    };
    let run = Runner {
        plan,
        launcher,
        duration,
    };
    let mut results = Results {
        pinned: launcher.pins(),
        connections: CONNECTIONS,
        duration,
        ..Results::default()
    };

    let (_limit, limit_port) = run.bare("bare-limit", SERVER_CORE)?;
    let (_origin, origin_port) = run.bare("bare-origin", CLIENT_CORE)?;
    let mut proxy = run.larder("larder", origin_port, &[])?;

    let sizes: &[&str] = if plan.quick {
        &["1k"]
    } else {
        &["1k", "64k", "1m"]
    };
    for size in sizes {
        let path = format!("/{size}");
        warm_hit(proxy.port, &path)?;
        results.rows.push(run.row(
            &format!("hit {}", label(size)),
            limit_port,
            &mut proxy,
            &Urls::Fixed(&path),
            None,
        )?);
    }

    // Conditional requests answered from the cache: the stored ETag matches.
    let inm = ("If-None-Match", "\"1024\"");
    let answer = process::get(proxy.port, "/1k", &[inm])?;
    let note = if answer.status == 304 {
        String::new()
    } else {
        format!(
            "larder answered {} to a matching If-None-Match",
            answer.status
        )
    };
    let mut row = run.row(
        "304 (If-None-Match) 1 KiB",
        limit_port,
        &mut proxy,
        &Urls::Fixed("/1k"),
        Some(inm),
    )?;
    row.note = note;
    results.rows.push(row);

    // The miss path: every request a new URL, fetched from the origin and stored.
    results.rows.push(run.row(
        "miss 1 KiB (unique URLs, stored)",
        limit_port,
        &mut proxy,
        &Urls::Unique("/1k/miss-"),
        None,
    )?);
    // A miss read by two clients at once: one fill, read back by both at their own pace.
    results.rows.push(run.row(
        "miss 1 MiB, 2 readers each (unique URLs, stored)",
        limit_port,
        &mut proxy,
        &Urls::Pairs("/1m/pair-"),
        None,
    )?);
    drop(proxy);

    // Churn: 16 384 URLs of 1 KiB drawn at random through a cache of 8 MiB (a little under half
    // of them fit once per-entry metadata is counted).
    let mut small = run.larder(
        "larder-churn",
        origin_port,
        &["--cache-size".into(), "8388608".into()],
    )?;
    let _ = run.wrk(
        "churn warm-up",
        small.port,
        &Urls::Random("/1k/churn-", 16_384),
        None,
        Duration::from_secs(2),
    )?;
    results.rows.push(run.row(
        "churn 1 KiB (16 Ki URLs, 8 MiB cache)",
        limit_port,
        &mut small,
        &Urls::Random("/1k/churn-", 16_384),
        None,
    )?);
    drop(small);

    results.memory = Some(run.memory(origin_port)?);
    Ok(results)
}

/// `1k` → `1 KiB`.
fn label(size: &str) -> String {
    match size.split_at(size.len() - 1) {
        (n, "k") => format!("{n} KiB"),
        (n, "m") => format!("{n} MiB"),
        _ => format!("{size} B"),
    }
}

/// Fetches `path` twice through the proxy and checks that the second answer was a hit.
fn warm_hit(port: u16, path: &str) -> Result<(), String> {
    let first = process::get(port, path, &[])?;
    if first.status != 200 {
        return Err(format!("warming {path}: larder answered {}", first.status));
    }
    let second = process::get(port, path, &[])?;
    let status = second.header("cache-status").unwrap_or_default().to_owned();
    if second.status != 200 || !status.contains("hit") {
        return Err(format!(
            "warming {path}: the second request was not a hit (status {}, Cache-Status {status:?})",
            second.status
        ));
    }
    if second.body.len() != first.body.len() {
        return Err(format!("warming {path}: the hit's body differs in length"));
    }
    Ok(())
}

/// A running proxy with its ports.
struct Proxy {
    server: Server,
    port: u16,
    admin: u16,
}

impl Proxy {
    /// Counters from `/metrics` by name (lines `name value`, labels left out).
    fn metrics(&self) -> Result<Vec<(String, f64)>, String> {
        let answer = process::get(self.admin, "/metrics", &[])?;
        let text = String::from_utf8_lossy(&answer.body);
        Ok(text
            .lines()
            .filter(|l| l.starts_with("larder_") && !l.contains('{'))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect())
    }

    fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .ok()?
            .into_iter()
            .find_map(|(n, v)| (n == name).then_some(v))
    }
}

struct Runner<'a> {
    plan: &'a Plan,
    launcher: Launcher,
    duration: Duration,
}

impl Runner<'_> {
    /// Starts a bare server pinned to `core`; returns it with its port.
    fn bare(&self, name: &str, core: usize) -> Result<(Server, u16), String> {
        let port = crate::util::free_port()?;
        let cmd = self.launcher.command(
            &self.plan.bare,
            &["--listen".into(), format!("127.0.0.1:{port}")],
            Some(core),
            self.limit(),
        );
        let mut server = Server::spawn(name, cmd, &self.plan.work.join(format!("{name}.log")))?;
        server.wait_for_port(port, Duration::from_secs(10))?;
        Ok((server, port))
    }

    /// Starts the proxy on core 0 in front of the origin on `origin`.
    fn larder(&self, name: &str, origin: u16, extra: &[String]) -> Result<Proxy, String> {
        let port = crate::util::free_port()?;
        let admin = crate::util::free_port()?;
        let mut args = vec![
            "--upstream".into(),
            format!("http://127.0.0.1:{origin}"),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--admin".into(),
            format!("127.0.0.1:{admin}"),
        ];
        args.extend(extra.iter().cloned());
        let cmd = self
            .launcher
            .command(&self.plan.larder, &args, Some(SERVER_CORE), self.limit());
        let mut server = Server::spawn(name, cmd, &self.plan.work.join(format!("{name}.log")))?;
        server.wait_for_port(port, Duration::from_secs(20))?;
        server.wait_for_port(admin, Duration::from_secs(5))?;
        Ok(Proxy {
            server,
            port,
            admin,
        })
    }

    /// An upper bound for any one server's life: every run of the plan, with room to spare.
    fn limit(&self) -> Duration {
        self.duration * 30 + Duration::from_mins(5)
    }

    /// The bare server, then the proxy, on the same URLs.
    fn row(
        &self,
        name: &str,
        limit_port: u16,
        proxy: &mut Proxy,
        urls: &Urls<'_>,
        header: Option<(&str, &str)>,
    ) -> Result<Row, String> {
        let bare = self.wrk(
            &format!("{name}: bare"),
            limit_port,
            urls,
            header,
            self.duration,
        )?;
        let hits_before = proxy.metric("larder_cache_hits_total");
        let requests_before = proxy.metric("larder_requests_total");
        let larder = self.wrk(
            &format!("{name}: larder"),
            proxy.port,
            urls,
            header,
            self.duration,
        )?;
        proxy.server.check_running()?;
        let hit_ratio = match (
            hits_before,
            requests_before,
            proxy.metric("larder_cache_hits_total"),
            proxy.metric("larder_requests_total"),
        ) {
            (Some(h0), Some(r0), Some(h1), Some(r1)) if r1 > r0 => Some((h1 - h0) / (r1 - r0)),
            _ => None,
        };
        Ok(Row {
            name: name.to_owned(),
            bare,
            larder,
            hit_ratio,
            note: String::new(),
        })
    }

    /// One wrk run from core 1.
    fn wrk(
        &self,
        name: &str,
        port: u16,
        urls: &Urls<'_>,
        header: Option<(&str, &str)>,
        duration: Duration,
    ) -> Result<Load, String> {
        let script = self.plan.work.join(format!("{}.lua", slug(name)));
        std::fs::write(&script, urls.script())
            .map_err(|e| format!("cannot write {script:?}: {e}"))?;
        let mut args = vec![
            "-t1".to_owned(),
            format!("-c{CONNECTIONS}"),
            format!("-d{}s", duration.as_secs()),
            "--latency".into(),
            "--timeout".into(),
            "10s".into(),
            "-s".into(),
            script.display().to_string(),
        ];
        if let Some((h, v)) = header {
            args.extend(["-H".into(), format!("{h}: {v}")]);
        }
        args.push(format!("http://127.0.0.1:{port}{}", urls.path()));
        let cmd = self.launcher.command(
            Path::new("wrk"),
            &args,
            Some(CLIENT_CORE),
            duration + Duration::from_secs(30),
        );
        let out = process::output(name, cmd)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let load =
            parse_wrk(&stdout).ok_or_else(|| format!("{name}: no summary from wrk:\n{stdout}"))?;
        eprintln!(
            "<== {name}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, {} errors, {} bad statuses",
            load.rps, load.p50_us, load.p99_us, load.errors, load.bad_status
        );
        Ok(load)
    }

    /// Fills a 256 MiB cache with 16 KiB bodies and reads the proxy's RSS and cache gauges.
    fn memory(&self, origin: u16) -> Result<Memory, String> {
        const CACHE: u64 = 256 * 1024 * 1024;
        const BODY: usize = 16 * 1024;
        // 1.5 times what fits, so the cache ends full and evicting.
        let urls = usize::try_from(CACHE * 3 / 2 / BODY as u64).unwrap_or(usize::MAX);
        let mut proxy = self.larder(
            "larder-memory",
            origin,
            &["--cache-size".into(), CACHE.to_string()],
        )?;
        let pid = process::worker_pid(proxy.server.id());
        let rss_empty = process::rss_bytes(pid);
        let fill = if self.plan.quick {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(15)
        };
        let _ = self.wrk(
            "memory fill",
            proxy.port,
            &Urls::Cycle("/16k/fill-", urls),
            None,
            fill,
        )?;
        proxy.server.check_running()?;
        Ok(Memory {
            cache_size: CACHE,
            body: BODY,
            urls,
            rss: process::rss_bytes(pid),
            rss_empty,
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // gauges are counts
            cache_bytes: proxy.metric("larder_cache_bytes").map(|v| v as u64),
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            entries: proxy.metric("larder_cache_entries").map(|v| v as u64),
        })
    }
}

/// A file-name-safe form of a run's name.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// Parses the `LARDER_WRK key=value ...` line of the [`DONE`] hook.
fn parse_wrk(stdout: &str) -> Option<Load> {
    let line = stdout.lines().find(|l| l.starts_with("LARDER_WRK "))?;
    let field = |key: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    let duration_us = field("duration_us")?;
    let requests = field("requests")?;
    if duration_us <= 0.0 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // wrk prints counts
    Some(Load {
        rps: requests / (duration_us / 1e6),
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        errors: field("errors")? as u64,
        bad_status: field("status")? as u64,
    })
}

/// A one-line description of the set-up, for the report.
pub(super) fn describe(results: &Results) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "wrk -t1 -c{} -d{}s --latency on 127.0.0.1",
        results.connections,
        results.duration.as_secs()
    );
    if results.pinned {
        s.push_str("; the measured server (bare or larder) pinned to core 0 with taskset, wrk and the origin behind larder on core 1");
    } else {
        s.push_str("; not pinned (taskset missing or a single core)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_summary_parses() {
        let out = "Running 2s test\nLARDER_WRK requests=20000 duration_us=2000000 p50_us=150 p99_us=900 errors=1 status=2\n";
        let load = parse_wrk(out).expect("a summary");
        assert!((load.rps - 10_000.0).abs() < 1e-6);
        assert!((load.p99_us - 900.0).abs() < 1e-6);
        assert_eq!((load.errors, load.bad_status), (1, 2));
        assert!(parse_wrk("no summary").is_none());
    }

    #[test]
    fn results_round_trip_through_tsv() {
        let load = Load {
            rps: 1234.5,
            p50_us: 100.0,
            p99_us: 900.0,
            errors: 1,
            bad_status: 0,
        };
        let results = Results {
            rows: vec![Row {
                name: "hit 1 KiB".into(),
                bare: load,
                larder: load,
                hit_ratio: Some(0.5),
                note: String::new(),
            }],
            memory: Some(Memory {
                cache_size: 8,
                body: 2,
                urls: 3,
                rss: Some(5),
                ..Memory::default()
            }),
            pinned: true,
            connections: 64,
            duration: Duration::from_secs(10),
        };
        let back = Results::from_tsv(&results.to_tsv()).expect("readable");
        assert_eq!(back.to_tsv(), results.to_tsv());
        assert_eq!(back.rows[0].hit_ratio, Some(0.5));
        assert!(Results::from_tsv("").is_none());
    }

    #[test]
    fn labels_and_slugs() {
        assert_eq!(label("64k"), "64 KiB");
        assert_eq!(label("1m"), "1 MiB");
        assert_eq!(slug("hit 1 KiB: bare"), "hit-1-kib-bare");
    }
}
