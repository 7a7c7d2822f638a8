//! The disk-hit rows: `larder --storage disk:<dir>` beside the memory `larder`, the tiered
//! `memory+disk` one, nginx `proxy_cache` and the bare server, on the same URL, back to back for
//! each body size, so that the ratios come from one moment of the machine.
//!
//! Each server runs twice per size for half the usual duration, the second round in the
//! opposite order, and keeps its better run (see [`rounds`]).
//!
//! "Disk hits" here are warm: every object was requested until it was a hit before the run, so
//! its file is in the page cache, and the figure is the storage's read path plus the proxy, not
//! the device. A quick run (CI) measures only `larder-disk` at 1 KiB, to prove that the disk path
//! answers hits under load; it needs no nginx.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::load::{Load, Proxy, Runner, Urls, best_of_rounds, hit_ratio};
use super::nginx;
use super::process;

/// The bare hyper server: the limit.
pub(super) const BARE: &str = "bare";
/// nginx `proxy_cache`: the peer.
pub(super) const NGINX: &str = "nginx-proxy_cache";
/// `larder --storage disk:<dir>`.
pub(super) const DISK: &str = "larder-disk";
/// `larder --storage memory+disk:<dir>`: a hit is served by the memory tier once promoted.
pub(super) const TIERED: &str = "larder-memory+disk";
/// `larder` with its default memory storage.
pub(super) const MEMORY: &str = "larder-memory";

/// Runs per server and size in a full run (see [`rounds`]).
const ROUNDS: u32 = 2;

/// The disk tier's bound in every run: far more than the three bodies.
const DISK_SIZE: &str = "1GiB";

/// One server's run at one body size.
#[derive(Debug, Clone)]
pub(super) struct Measured {
    /// `1 KiB`, `64 KiB`, `1 MiB`.
    pub(super) size: String,
    /// One of [`BARE`], [`NGINX`], [`DISK`], [`TIERED`], [`MEMORY`].
    pub(super) subject: String,
    pub(super) load: Load,
    /// larder's hits over its requests during the run, from `/metrics`.
    pub(super) hit_ratio: Option<f64>,
}

/// The servers of the disk rows, started for the whole of them.
struct Servers {
    disk: Proxy,
    tiered: Option<Proxy>,
    nginx: Option<nginx::Nginx>,
}

/// The run's directory, removed when dropped (after the servers that use it).
pub(super) struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory `larder-bench-<what>-<pid>` in the system's temporary directory.
    pub(super) fn new(what: &str) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("larder-bench-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {path:?}: {e}"))?;
        Ok(Self(path))
    }

    /// `name` inside the directory.
    pub(super) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `--storage <kind>:<dir> --disk-size 1GiB`.
fn storage_args(kind: &str, dir: &Path) -> Vec<String> {
    vec![
        "--storage".into(),
        format!("{kind}:{}", dir.display()),
        "--disk-size".into(),
        DISK_SIZE.into(),
    ]
}

/// Runs the disk rows for `sizes` (`1k`, `64k`, `1m`): the bare server on `limit_port`, the
/// memory proxy `memory` (already running), and the disk, tiered and nginx servers started here
/// in front of the origin on `origin`. Each size comes with its label in the report.
pub(super) fn run(
    run: &Runner<'_>,
    sizes: &[(&str, String)],
    limit_port: u16,
    origin: u16,
    memory: &Proxy,
) -> Result<Vec<Measured>, String> {
    let dir = TempDir::new("disk")?;
    let quick = run.plan.quick;
    let mut servers = Servers {
        disk: run.larder(
            DISK,
            origin,
            &storage_args("disk", &dir.join("larder-disk")),
        )?,
        tiered: if quick {
            None
        } else {
            Some(run.larder(
                TIERED,
                origin,
                &storage_args("memory+disk", &dir.join("larder-tiered")),
            )?)
        },
        nginx: match (&run.plan.nginx, quick) {
            (Some(binary), false) => Some(nginx::start(run, binary, origin, &dir.join("nginx"))?),
            _ => None,
        },
    };
    let mut out = Vec::new();
    for (size, label) in sizes {
        let path = format!("/{size}");
        let urls = Urls::Fixed(&path);
        // Warm every server first: the object stored, read back once, so its file is in the
        // page cache.
        warm_larder(servers.disk.port, &path)?;
        if let Some(tiered) = &servers.tiered {
            warm_larder(tiered.port, &path)?;
        }
        if let Some(n) = &servers.nginx {
            nginx::warm_hit(n.port, &path)?;
        }
        // Every server of the size, in the order of the first round.
        let mut targets: Vec<(&str, u16, Option<&Proxy>)> = Vec::new();
        if !quick {
            targets.push((BARE, limit_port, None));
        }
        if let Some(n) = &servers.nginx {
            targets.push((NGINX, n.port, None));
        }
        targets.push((DISK, servers.disk.port, Some(&servers.disk)));
        if let Some(tiered) = &servers.tiered {
            targets.push((TIERED, tiered.port, Some(tiered)));
        }
        if !quick {
            targets.push((MEMORY, memory.port, Some(memory)));
        }
        out.extend(rounds(run, label, &urls, &targets)?);
        servers.disk.server.check_running()?;
        if let Some(tiered) = &mut servers.tiered {
            tiered.server.check_running()?;
        }
        if let Some(n) = &mut servers.nginx {
            n.server.check_running()?;
            // Still answering from its cache after the load.
            nginx::warm_hit(n.port, &path)?;
        }
    }
    drop(servers);
    drop(dir);
    Ok(out)
}

/// Runs wrk against every target in [`ROUNDS`] rounds of half the plan's duration (one in a
/// quick run), keeping each target's best run ([`best_of_rounds`]).
fn rounds(
    run: &Runner<'_>,
    size: &str,
    urls: &Urls<'_>,
    targets: &[(&str, u16, Option<&Proxy>)],
) -> Result<Vec<Measured>, String> {
    let rounds = if run.plan.quick { 1 } else { ROUNDS };
    best_of_rounds(
        targets.len(),
        rounds,
        run.duration,
        |m: &Measured| m.load.rps,
        |i, duration| {
            let (subject, port, proxy) = targets[i];
            measure(run, size, subject, port, proxy, urls, duration)
        },
    )
}

/// One wrk run against `port`; with a proxy, its hit ratio over the run from `/metrics`.
fn measure(
    run: &Runner<'_>,
    size: &str,
    subject: &str,
    port: u16,
    proxy: Option<&Proxy>,
    urls: &Urls<'_>,
    duration: Duration,
) -> Result<Measured, String> {
    let before = proxy.and_then(Proxy::hit_counts);
    let load = run.wrk(
        &format!("disk hit {size}: {subject}"),
        port,
        urls,
        None,
        duration,
    )?;
    let hit_ratio = hit_ratio(before, proxy.and_then(Proxy::hit_counts));
    Ok(Measured {
        size: size.to_owned(),
        subject: subject.to_owned(),
        load,
        hit_ratio,
    })
}

/// Requests `path` until larder answers it as a hit, for up to five seconds: a disk entry
/// becomes visible once complete, which may be a moment after the first answer ends.
fn warm_larder(port: u16, path: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let first = process::get(port, path, &[])?;
    if first.status != 200 {
        return Err(format!("warming {path}: larder answered {}", first.status));
    }
    loop {
        let answer = process::get(port, path, &[])?;
        let status = answer.header("cache-status").unwrap_or_default().to_owned();
        if answer.status == 200 && status.contains("hit") {
            if answer.body.len() != first.body.len() {
                return Err(format!("warming {path}: the hit's body differs in length"));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "warming {path}: larder did not answer a hit within 5 s (status {}, \
                 Cache-Status {status:?})",
                answer.status
            ));
        }
        sleep(Duration::from_millis(100));
    }
}

/// `subject`'s figure over `peer`'s at body size `size` in the disk rows `rows`.
pub(super) fn ratio(
    rows: &[Measured],
    size: &str,
    subject: &str,
    peer: &str,
    figure: impl Fn(&Load) -> f64,
) -> Option<f64> {
    let find = |name: &str| {
        rows.iter()
            .find(|m| m.size == size && m.subject == name)
            .map(|m| figure(&m.load))
    };
    Some(find(subject)? / find(peer)?)
}

/// The disk-hit rows: each server at each size, with its ratios to nginx and to the bare
/// server; then nginx's configuration.
pub(super) fn render(
    out: &mut String,
    rows: &[Measured],
    nginx_version: Option<&str>,
    quick: bool,
) {
    let _ = writeln!(out, "## Disk hits (wrk)\n");
    if quick {
        let _ = writeln!(
            out,
            "**Quick run**: only the debug `{DISK}` (`larder --storage disk:<tmp> --disk-size \
             1GiB`) at 1 KiB, after a warm-up that made the object a hit: a smoke test of the \
             disk path under load, without nginx.\n"
        );
    } else {
        let _ = writeln!(
            out,
            "Same wrk set-up; every server on core 0 in turn, wrk and the origin on core 1. \
             `{DISK}` is `larder --storage disk:<tmp> --disk-size 1GiB`, `{TIERED}` is `larder \
             --storage memory+disk:<tmp> --disk-size 1GiB` (a disk hit is promoted to memory, so \
             its hits are the memory tier's), `{MEMORY}` is the `larder` of the table above, with \
             its default memory storage; `{NGINX}` is {} from Debian's package with the \
             configuration below, one worker process. Hits are warm: before each run the object \
             was requested until it was a hit (larder's `Cache-Status`, nginx's \
             `X-Cache-Status: HIT`), so its file is in the page cache. The servers of a size ran \
             back to back, in two rounds of runs half as long as above (the second round in the \
             opposite order), and each row is the server's better run; ratios are req/s over \
             nginx's and over the bare server's, and p99 over nginx's.\n",
            nginx_version.unwrap_or("nginx"),
        );
    }
    let _ = writeln!(
        out,
        "| Size | Server | req/s | p50 / p99 | over nginx | over bare | p99 over nginx | hit ratio |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for m in rows {
        let ratio = |peer: &str, figure: fn(&Load) -> f64| {
            if m.subject == peer {
                return "—".to_owned();
            }
            ratio(rows, &m.size, &m.subject, peer, figure)
                .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×"))
        };
        let flag = if m.load.errors + m.load.bad_status > 0 {
            format!(
                " ({} errors, {} bad statuses)",
                m.load.errors, m.load.bad_status
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.0}{flag} | {} / {} | {} | {} | {} | {} |",
            m.size,
            m.subject,
            m.load.rps,
            ms(m.load.p50_us),
            ms(m.load.p99_us),
            ratio(NGINX, |l| l.rps),
            ratio(BARE, |l| l.rps),
            ratio(NGINX, |l| l.p99_us),
            percent(m.hit_ratio),
        );
    }
    out.push('\n');
    if nginx_version.is_some() {
        let _ = writeln!(
            out,
            "nginx's configuration, as the bench writes it (`<tmp>` is the run's temporary \
             directory, the ports are free ones of 127.0.0.1; nginx starts with `-p <tmp> -e \
             <tmp>/error.log -c <tmp>/nginx.conf` under `taskset -c 0` and stops on SIGTERM to \
             its pid; see `xtask/src/bench/nginx.rs` for the reasons of each setting):\n"
        );
        let _ = writeln!(
            out,
            "```nginx\n{}```\n",
            nginx::config("<tmp>", "127.0.0.1:<port>", "127.0.0.1:<origin port>")
        );
    }
}

/// Microseconds as milliseconds, as the HTTP table shows them.
fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1e3)
}

/// A fraction as a percentage, or a dash when not recorded.
fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |x| format!("{:.1} %", x * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: &str, rps: f64, p99_us: f64) -> Measured {
        Measured {
            size: "1 KiB".into(),
            subject: subject.into(),
            load: Load {
                rps,
                p50_us: 100.0,
                p99_us,
                errors: 0,
                bad_status: 0,
            },
            hit_ratio: (subject != BARE && subject != NGINX).then_some(1.0),
        }
    }

    #[test]
    fn rows_show_their_ratios_to_nginx_and_to_the_bare_server() {
        let rows = [
            row(BARE, 400.0, 1000.0),
            row(NGINX, 200.0, 2000.0),
            row(DISK, 300.0, 1000.0),
        ];
        assert_eq!(ratio(&rows, "1 KiB", DISK, NGINX, |l| l.rps), Some(1.5));
        assert_eq!(ratio(&rows, "64 KiB", DISK, NGINX, |l| l.rps), None);
        let mut out = String::new();
        render(&mut out, &rows, Some("nginx/1.22.1"), false);
        assert!(
            out.contains("| 1 KiB | larder-disk | 300 | 0.10 ms / 1.00 ms | 1.50× | 0.75× | 0.50× | 100.0 % |"),
            "{out}"
        );
        assert!(
            out.contains(
                "| 1 KiB | nginx-proxy_cache | 200 | 0.10 ms / 2.00 ms | — | 0.50× | — | — |"
            ),
            "{out}"
        );
        // The configuration is quoted with placeholders, not a run's paths.
        assert!(out.contains("proxy_cache_path <tmp>/nginx-cache"), "{out}");
        // Without nginx (a quick run) there is no configuration to quote.
        let mut quick = String::new();
        render(&mut quick, &rows[2..], None, true);
        assert!(
            !quick.contains("```nginx") && quick.contains("Quick run"),
            "{quick}"
        );
    }
}
