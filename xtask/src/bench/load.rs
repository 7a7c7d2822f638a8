//! What every HTTP load run shares: starting the servers (the bare hyper server, the `larder`
//! proxy), wrk pinned to its core with a Lua hook printing a summary line, and the parsing of
//! that line.
//!
//! Cores: the measured server (bare, proxy or peer) runs on core 0; wrk and the origin behind
//! the proxy share core 1. Every wrk run prints its own summary line from a Lua `done` hook,
//! which this module parses (no scraping of wrk's human report).

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

impl Load {
    /// The load as tab-separated fields (see [`Load::from_fields`]).
    pub(super) fn fields(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}",
            self.rps, self.p50_us, self.p99_us, self.errors, self.bad_status
        )
    }

    /// Reads [`Load::fields`] back.
    pub(super) fn from_fields(f: &[&str]) -> Option<Self> {
        Some(Self {
            rps: f.first()?.parse().ok()?,
            p50_us: f.get(1)?.parse().ok()?,
            p99_us: f.get(2)?.parse().ok()?,
            errors: f.get(3)?.parse().ok()?,
            bad_status: f.get(4)?.parse().ok()?,
        })
    }
}

/// What to run.
pub(super) struct Plan {
    pub(super) quick: bool,
    pub(super) cores: usize,
    /// `bare_server`.
    pub(super) bare: PathBuf,
    /// The `larder` binary (release, or debug for a quick run).
    pub(super) larder: PathBuf,
    /// The `nginx` binary, for the disk-hit peer (`None` in a quick run).
    pub(super) nginx: Option<PathBuf>,
    /// `h2load`, for the HTTP/2 rows over TLS (`None` in a quick run).
    pub(super) h2load: Option<PathBuf>,
    /// Scripts and logs go here.
    pub(super) work: PathBuf,
}

/// wrk's connections in every run.
pub(super) const CONNECTIONS: u32 = 64;
/// The measured server's core, and the core of wrk and the origin.
pub(super) const SERVER_CORE: usize = 0;
pub(super) const CLIENT_CORE: usize = 1;

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
pub(super) enum Urls<'a> {
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

    pub(super) fn path(&self) -> &str {
        match self {
            Urls::Fixed(p) => p,
            _ => "/",
        }
    }
}

/// Fetches `path` twice through the proxy and checks that the second answer was a hit.
pub(super) fn warm_hit(port: u16, path: &str) -> Result<(), String> {
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
pub(super) struct Proxy {
    pub(super) server: Server,
    pub(super) port: u16,
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

    /// Cache hits and requests so far (`larder_cache_hits_total`, `larder_requests_total`),
    /// read from one `/metrics`.
    pub(super) fn hit_counts(&self) -> Option<(f64, f64)> {
        let metrics = self.metrics().ok()?;
        let get = |name: &str| metrics.iter().find_map(|(n, v)| (n == name).then_some(*v));
        Some((
            get("larder_cache_hits_total")?,
            get("larder_requests_total")?,
        ))
    }

    /// One counter or gauge of `/metrics`.
    pub(super) fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .ok()?
            .into_iter()
            .find_map(|(n, v)| (n == name).then_some(v))
    }
}

/// Hits over requests between two [`Proxy::hit_counts`] readings; `None` when either is
/// missing or no request came in between.
pub(super) fn hit_ratio(before: Option<(f64, f64)>, after: Option<(f64, f64)>) -> Option<f64> {
    match (before, after) {
        (Some((h0, r0)), Some((h1, r1))) if r1 > r0 => Some((h1 - h0) / (r1 - r0)),
        _ => None,
    }
}

/// Measures `n` targets with `measure(i, duration)` in `rounds` rounds of `total / rounds`
/// each, every other round in the opposite order, and keeps each target's run with the most
/// requests per second (in target order): on a machine shared with other work, a run that
/// another process displaced says nothing about the server, and the reversed order keeps a
/// drift of the load from favouring whichever server runs first.
pub(super) fn best_of_rounds<T>(
    n: usize,
    rounds: u32,
    total: Duration,
    rps: impl Fn(&T) -> f64,
    mut measure: impl FnMut(usize, Duration) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let duration = total / rounds.max(1);
    let mut best: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for round in 0..rounds.max(1) {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..n).collect()
        } else {
            (0..n).rev().collect()
        };
        for i in order {
            let m = measure(i, duration)?;
            if best[i].as_ref().is_none_or(|b| rps(&m) > rps(b)) {
                best[i] = Some(m);
            }
        }
    }
    Ok(best.into_iter().flatten().collect())
}

/// Starts servers and runs wrk for a [`Plan`].
pub(super) struct Runner<'a> {
    pub(super) plan: &'a Plan,
    pub(super) launcher: Launcher,
    /// How long each measured wrk run lasts.
    pub(super) duration: Duration,
}

impl Runner<'_> {
    /// Starts a bare server pinned to `core`; returns it with its port.
    pub(super) fn bare(&self, name: &str, core: usize) -> Result<(Server, u16), String> {
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
    pub(super) fn larder(
        &self,
        name: &str,
        origin: u16,
        extra: &[String],
    ) -> Result<Proxy, String> {
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

    /// Starts the proxy on core 0 with the configuration file `config`, which must name
    /// `port` among its listeners and `admin` as its admin address; waits for every port of
    /// `ports`.
    pub(super) fn larder_config(
        &self,
        name: &str,
        config: &Path,
        port: u16,
        admin: u16,
        ports: &[u16],
    ) -> Result<Proxy, String> {
        let args = vec!["--config".to_owned(), config.display().to_string()];
        let cmd = self
            .launcher
            .command(&self.plan.larder, &args, Some(SERVER_CORE), self.limit());
        let mut server = Server::spawn(name, cmd, &self.plan.work.join(format!("{name}.log")))?;
        for p in ports.iter().chain([&port, &admin]) {
            server.wait_for_port(*p, Duration::from_secs(20))?;
        }
        Ok(Proxy {
            server,
            port,
            admin,
        })
    }

    /// An upper bound for any one server's life: every run of the plan, with room to spare.
    pub(super) fn limit(&self) -> Duration {
        self.duration * 30 + Duration::from_mins(5)
    }

    /// One wrk run from core 1 against `http://127.0.0.1:<port>`.
    pub(super) fn wrk(
        &self,
        name: &str,
        port: u16,
        urls: &Urls<'_>,
        header: Option<(&str, &str)>,
        duration: Duration,
    ) -> Result<Load, String> {
        self.wrk_at(
            name,
            &format!("http://127.0.0.1:{port}"),
            urls,
            header,
            duration,
        )
    }

    /// One wrk run from core 1 against `base` (`http://…` or `https://…`, no path).
    pub(super) fn wrk_at(
        &self,
        name: &str,
        base: &str,
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
        args.push(format!("{base}{}", urls.path()));
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
}

/// A file-name-safe form of a run's name.
pub(super) fn slug(name: &str) -> String {
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
pub(super) fn parse_wrk(stdout: &str) -> Option<Load> {
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
    fn slugs() {
        assert_eq!(slug("hit 1 KiB: bare"), "hit-1-kib-bare");
        assert_eq!(
            slug("disk hit 64 KiB: nginx-proxy_cache"),
            "disk-hit-64-kib-nginx-proxy-cache"
        );
    }

    #[test]
    fn load_fields_round_trip() {
        let load = Load {
            rps: 1234.5,
            p50_us: 100.0,
            p99_us: 900.0,
            errors: 1,
            bad_status: 3,
        };
        let text = load.fields();
        let back = Load::from_fields(&text.split('\t').collect::<Vec<_>>()).expect("readable");
        assert_eq!(back.fields(), text);
        assert!(Load::from_fields(&["1", "2"]).is_none());
    }
}
