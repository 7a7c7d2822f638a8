//! Hits over TLS: `larder` with a TLS listener beside its plain one, against nginx terminating
//! TLS in front of its `proxy_cache`, over HTTP/1.1 keep-alive (wrk) and HTTP/2 (h2load), with
//! larder's plain HTTP/1.1 hit on the same object as the reference, back to back.
//!
//! Both servers get one certificate (ECDSA P-256, made by `openssl req` in the run's directory)
//! and serve the object from their cache after a warm-up through their plain listener (checked
//! to be a hit). wrk keeps 64 connections for the whole run and h2load opens 64 connections of
//! one stream each, so the figures are the cost of TLS records on hits, not of handshakes.
//!
//! A quick run (CI) measures only larder over TLS with HTTP/1.1, a smoke test of the TLS
//! listener under load; it needs neither nginx nor h2load.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::disk::{Measured, TempDir};
use super::load::{
    CLIENT_CORE, CONNECTIONS, Load, Proxy, Runner, Urls, best_of_rounds, hit_ratio, warm_hit,
};
use super::nginx;
use super::process;

/// larder's plain HTTP/1.1 hit: the reference of every ratio to plain.
pub(super) const LARDER_PLAIN: &str = "larder, HTTP/1.1";
/// larder over TLS, HTTP/1.1 keep-alive (wrk).
pub(super) const LARDER_TLS: &str = "larder, TLS HTTP/1.1";
/// larder over TLS, HTTP/2 (h2load).
pub(super) const LARDER_H2: &str = "larder, TLS h2";
/// nginx over TLS, HTTP/1.1 keep-alive (wrk).
pub(super) const NGINX_TLS: &str = "nginx, TLS HTTP/1.1";
/// nginx over TLS, HTTP/2 (h2load).
pub(super) const NGINX_H2: &str = "nginx, TLS h2";

/// The body size of the TLS rows.
const SIZE: &str = "1k";

/// Runs per target in a full run; the second round in the opposite order, the better run kept.
const ROUNDS: u32 = 2;

/// The load tool of a target.
#[derive(Clone, Copy)]
enum Tool {
    Wrk,
    H2load,
}

/// Runs the TLS rows in front of the origin on `origin`: `nginx` and `h2load` are the binaries
/// of a full run (`None` in a quick one).
pub(super) fn run(
    run: &Runner<'_>,
    origin: u16,
    nginx_binary: Option<&Path>,
    h2load: Option<&Path>,
) -> Result<Vec<Measured>, String> {
    let dir = TempDir::new("tls")?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    certificate(&cert, &key)?;
    let quick = run.plan.quick;

    let (plain, tls, admin) = (
        crate::util::free_port()?,
        crate::util::free_port()?,
        crate::util::free_port()?,
    );
    let config = dir.join("larder.toml");
    std::fs::write(
        &config,
        larder_config(origin, plain, tls, admin, &cert, &key),
    )
    .map_err(|e| format!("cannot write {config:?}: {e}"))?;
    let mut larder = run.larder_config("larder-tls", &config, tls, admin, &[plain])?;
    let path = format!("/{SIZE}");
    warm_hit(plain, &path)?;

    let mut nginx = match (nginx_binary, quick) {
        (Some(binary), false) => {
            let (n, port) =
                nginx::start_with(run, binary, origin, &dir.join("nginx"), Some((&cert, &key)))?;
            nginx::warm_hit(n.port, &path)?;
            Some((n, port.ok_or("nginx started without its TLS port")?))
        }
        _ => None,
    };

    let mut targets: Vec<(&str, Tool, String, Option<&Proxy>)> = Vec::new();
    if !quick {
        targets.push((
            LARDER_PLAIN,
            Tool::Wrk,
            format!("http://127.0.0.1:{plain}"),
            Some(&larder),
        ));
    }
    targets.push((
        LARDER_TLS,
        Tool::Wrk,
        format!("https://127.0.0.1:{tls}"),
        Some(&larder),
    ));
    if h2load.is_some() && !quick {
        targets.push((
            LARDER_H2,
            Tool::H2load,
            format!("https://127.0.0.1:{tls}"),
            Some(&larder),
        ));
        if let Some((_, port)) = &nginx {
            targets.push((
                NGINX_H2,
                Tool::H2load,
                format!("https://127.0.0.1:{port}"),
                None,
            ));
        }
    }
    if let Some((_, port)) = &nginx {
        targets.push((
            NGINX_TLS,
            Tool::Wrk,
            format!("https://127.0.0.1:{port}"),
            None,
        ));
    }

    let rounds = if quick { 1 } else { ROUNDS };
    let best = best_of_rounds(
        targets.len(),
        rounds,
        run.duration,
        |m: &Measured| m.load.rps,
        |i, duration| {
            let (subject, tool, base, proxy) = &targets[i];
            measure(run, subject, *tool, base, &path, *proxy, h2load, duration)
        },
    )?;
    drop(targets);
    larder.server.check_running()?;
    if let Some((n, _)) = &mut nginx {
        n.server.check_running()?;
    }
    drop(larder);
    drop(nginx);
    drop(dir);
    Ok(best)
}

/// The configuration of the measured larder: the origin, a plain listener (for warming), a TLS
/// listener, the admin listener.
fn larder_config(origin: u16, plain: u16, tls: u16, admin: u16, cert: &Path, key: &Path) -> String {
    format!(
        "upstream = \"http://127.0.0.1:{origin}\"\n\
         admin = \"127.0.0.1:{admin}\"\n\
         \n\
         [[listener]]\n\
         address = \"127.0.0.1:{plain}\"\n\
         \n\
         [[listener]]\n\
         address = \"127.0.0.1:{tls}\"\n\
         tls_cert = \"{}\"\n\
         tls_key = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

/// A self-signed ECDSA P-256 certificate for `localhost` and 127.0.0.1, valid two days.
fn certificate(cert: &Path, key: &Path) -> Result<(), String> {
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert);
    process::output("openssl req (the TLS rows' certificate)", cmd).map(|_| ())
}

/// One run of `tool` against `base` + `path`; with a proxy, its hit ratio over the run.
#[allow(clippy::too_many_arguments)] // one call site, every argument a different thing
fn measure(
    run: &Runner<'_>,
    subject: &str,
    tool: Tool,
    base: &str,
    path: &str,
    proxy: Option<&Proxy>,
    h2load: Option<&Path>,
    duration: Duration,
) -> Result<Measured, String> {
    let before = proxy.and_then(Proxy::hit_counts);
    let name = format!("TLS hit 1 KiB: {subject}");
    let load = match (tool, h2load) {
        (Tool::Wrk, _) => run.wrk_at(&name, base, &Urls::Fixed(path), None, duration)?,
        (Tool::H2load, Some(binary)) => {
            h2load_run(run, &name, binary, &format!("{base}{path}"), duration)?
        }
        (Tool::H2load, None) => return Err(format!("{name}: h2load is not installed")),
    };
    let hit_ratio = hit_ratio(before, proxy.and_then(Proxy::hit_counts));
    Ok(Measured {
        size: "1 KiB".to_owned(),
        subject: subject.to_owned(),
        load,
        hit_ratio,
    })
}

/// One h2load run from core 1: [`CONNECTIONS`] connections of one stream each, for `duration`
/// after a one-second warm-up; latencies from its per-request log.
fn h2load_run(
    run: &Runner<'_>,
    name: &str,
    binary: &Path,
    url: &str,
    duration: Duration,
) -> Result<Load, String> {
    let log = run
        .plan
        .work
        .join(format!("{}.h2load.tsv", super::load::slug(name)));
    let args = vec![
        "-t1".to_owned(),
        format!("-c{CONNECTIONS}"),
        "-m1".to_owned(),
        format!("-D{}", duration.as_secs().max(1)),
        "--warm-up-time=1".to_owned(),
        format!("--log-file={}", log.display()),
        url.to_owned(),
    ];
    let cmd = run.launcher.command(
        binary,
        &args,
        Some(CLIENT_CORE),
        duration + Duration::from_secs(30),
    );
    let out = process::output(name, cmd)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let durations = std::fs::read_to_string(&log).map_err(|e| format!("{name}: {log:?}: {e}"))?;
    let _ = std::fs::remove_file(&log);
    let load = parse_h2load(&stdout, &durations)
        .ok_or_else(|| format!("{name}: no summary from h2load:\n{stdout}"))?;
    eprintln!(
        "<== {name}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, {} errors, {} bad statuses",
        load.rps, load.p50_us, load.p99_us, load.errors, load.bad_status
    );
    Ok(load)
}

/// Reads h2load's summary (`finished in …, N req/s`, the `requests:` and `status codes:` lines)
/// and its per-request log (tab-separated: start, status, microseconds) into a [`Load`].
pub(super) fn parse_h2load(stdout: &str, log: &str) -> Option<Load> {
    let rps: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))?
        .split(", ")
        .find_map(|f| f.strip_suffix(" req/s"))?
        .parse()
        .ok()?;
    // `requests: 10 total, 10 started, 10 done, 9 succeeded, 1 failed, 0 errored, 0 timeout`
    let count = |line: &str, what: &str| -> Option<u64> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(line))?
            .split(", ")
            .find_map(|f| f.trim().strip_suffix(what))?
            .trim()
            .parse()
            .ok()
    };
    let errors = count("requests: ", " errored")? + count("requests: ", " timeout")?;
    let bad_status = count("status codes: ", " 4xx")? + count("status codes: ", " 5xx")?;
    let mut micros: Vec<f64> = log
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    if micros.is_empty() {
        return None;
    }
    micros.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )] // an index into a non-empty list
        let i = ((micros.len() as f64 - 1.0) * q).round() as usize;
        micros[i.min(micros.len() - 1)]
    };
    Some(Load {
        rps,
        p50_us: pick(0.5),
        p99_us: pick(0.99),
        errors,
        bad_status,
    })
}

/// The row each subject is compared with: larder's TLS rows with nginx's of the same protocol.
fn peer(subject: &str) -> Option<&'static str> {
    match subject {
        LARDER_TLS => Some(NGINX_TLS),
        LARDER_H2 => Some(NGINX_H2),
        _ => None,
    }
}

/// `subject`'s figure over `other`'s in `rows`.
pub(super) fn ratio(
    rows: &[Measured],
    subject: &str,
    other: &str,
    figure: impl Fn(&Load) -> f64,
) -> Option<f64> {
    let find = |name: &str| {
        rows.iter()
            .find(|m| m.subject == name)
            .map(|m| figure(&m.load))
    };
    Some(find(subject)? / find(other)?)
}

/// The TLS rows with their ratios to larder's plain hit and to nginx on the same protocol.
pub(super) fn render(out: &mut String, rows: &[Measured], quick: bool) {
    let _ = writeln!(out, "## Hits over TLS (wrk, h2load)\n");
    if quick {
        let _ = writeln!(
            out,
            "**Quick run**: only the debug `larder` over TLS with HTTP/1.1 at 1 KiB, a smoke \
             test of the TLS listener under load, without nginx or h2load.\n"
        );
    } else {
        let _ = writeln!(
            out,
            "One 1 KiB object served from the cache by `larder` (a plain and a TLS `[[listener]]` \
             in one process) and by nginx (the configuration of the disk rows with a TLS \
             `listen … ssl http2` beside its plain one, `ssl_protocols TLSv1.2 TLSv1.3`, a shared \
             session cache), both with the same self-signed ECDSA P-256 certificate (`openssl \
             req`), both warmed through their plain listener until the object was a hit. \
             HTTP/1.1 rows are wrk (64 keep-alive connections), h2 rows are h2load (`-t1 -c64 -m1`, \
             64 connections of one stream each, a one-second warm-up; p50/p99 from its \
             per-request log). Servers on core 0, the load and the origin on core 1; two rounds \
             of half-length runs in opposite orders, each row its better run. Ratios: req/s over \
             larder's plain HTTP/1.1 hit of the same run, and over nginx on the same protocol.\n"
        );
    }
    let _ = writeln!(
        out,
        "| Server | req/s | p50 / p99 | over larder plain | over nginx | p99 over nginx | hit ratio |\n\
         |---|---|---|---|---|---|---|"
    );
    for m in rows {
        let to = |other: Option<&str>, figure: fn(&Load) -> f64| {
            other
                .filter(|o| *o != m.subject)
                .and_then(|o| ratio(rows, &m.subject, o, figure))
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
            "| {} | {:.0}{flag} | {:.2} ms / {:.2} ms | {} | {} | {} | {} |",
            m.subject,
            m.load.rps,
            m.load.p50_us / 1e3,
            m.load.p99_us / 1e3,
            to(Some(LARDER_PLAIN), |l| l.rps),
            to(peer(&m.subject), |l| l.rps),
            to(peer(&m.subject), |l| l.p99_us),
            m.hit_ratio
                .map_or_else(|| "—".to_owned(), |x| format!("{:.1} %", x * 100.0)),
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2load_output_parses() {
        let stdout = "starting benchmark...\n\
            finished in 2.00s, 51234.50 req/s, 55.12MB/s\n\
            requests: 102469 total, 102533 started, 102469 done, 102460 succeeded, 9 failed, 2 errored, 1 timeout\n\
            status codes: 102460 2xx, 0 3xx, 3 4xx, 4 5xx\n";
        let log = "1700000000000000\t200\t100\n1700000000000100\t200\t300\n\
                   1700000000000200\t200\t200\n1700000000000300\t200\t900\n";
        let load = parse_h2load(stdout, log).expect("a summary");
        assert!((load.rps - 51_234.5).abs() < 1e-6);
        assert_eq!((load.errors, load.bad_status), (3, 7));
        assert!((load.p50_us - 300.0).abs() < 1e-6, "{}", load.p50_us);
        assert!((load.p99_us - 900.0).abs() < 1e-6);
        assert!(parse_h2load("nothing", log).is_none());
        assert!(parse_h2load(stdout, "").is_none());
    }

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
            hit_ratio: subject.starts_with("larder").then_some(1.0),
        }
    }

    #[test]
    fn rows_compare_with_plain_and_with_nginx_on_the_same_protocol() {
        let rows = [
            row(LARDER_PLAIN, 400.0, 1000.0),
            row(LARDER_TLS, 300.0, 1000.0),
            row(NGINX_TLS, 200.0, 2000.0),
            row(LARDER_H2, 250.0, 1000.0),
        ];
        assert_eq!(ratio(&rows, LARDER_TLS, NGINX_TLS, |l| l.rps), Some(1.5));
        assert_eq!(ratio(&rows, LARDER_H2, NGINX_H2, |l| l.rps), None);
        let mut out = String::new();
        render(&mut out, &rows, false);
        assert!(
            out.contains("| larder, TLS HTTP/1.1 | 300 | 0.10 ms / 1.00 ms | 0.75× | 1.50× | 0.50× | 100.0 % |"),
            "{out}"
        );
        assert!(
            out.contains("| larder, TLS h2 | 250 | 0.10 ms / 1.00 ms | 0.62× | — | — | 100.0 % |"),
            "{out}"
        );
        assert!(
            out.contains("| nginx, TLS HTTP/1.1 | 200 | 0.10 ms / 2.00 ms | 0.50× | — | — | — |"),
            "{out}"
        );
    }

    #[test]
    fn the_larder_configuration_has_both_listeners() {
        let text = larder_config(1, 2, 3, 4, Path::new("/c.pem"), Path::new("/k.pem"));
        assert!(text.contains("upstream = \"http://127.0.0.1:1\""), "{text}");
        assert_eq!(text.matches("[[listener]]").count(), 2, "{text}");
        assert!(text.contains("tls_cert = \"/c.pem\""), "{text}");
    }
}
