//! The HTTP load runs: wrk on loopback against the bare hyper server (the limit) and the
//! `larder` proxy, back to back for each row, so the ratios come from one moment of the machine;
//! then the disk-hit rows (see [`super::disk`]) and the memory fill. How servers start and wrk
//! runs is [`super::load`]'s.

use std::fmt::Write as _;
use std::time::Duration;

use super::disk::{self, Measured};
use super::load::{
    CLIENT_CORE, CONNECTIONS, Load, Plan, Proxy, Runner, SERVER_CORE, Urls, hit_ratio, warm_hit,
};
use super::process::{self, Launcher};

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
    /// The disk-hit rows, every server at every size.
    pub(super) disk: Vec<Measured>,
    /// The hits over TLS (see [`super::tls`]).
    pub(super) tls: Vec<Measured>,
    /// nginx's version (`nginx/1.22.1`) when it ran as the disk-hit peer.
    pub(super) nginx: Option<String>,
    pub(super) pinned: bool,
    pub(super) connections: u32,
    pub(super) duration: Duration,
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
        for m in &self.disk {
            let hit = m.hit_ratio.map_or_else(String::new, |h| h.to_string());
            let _ = writeln!(
                out,
                "disk\t{}\t{}\t{}\t{hit}",
                m.size,
                m.subject,
                m.load.fields()
            );
        }
        for m in &self.tls {
            let hit = m.hit_ratio.map_or_else(String::new, |h| h.to_string());
            let _ = writeln!(
                out,
                "tls\t{}\t{}\t{}\t{hit}",
                m.size,
                m.subject,
                m.load.fields()
            );
        }
        if let Some(v) = &self.nginx {
            let _ = writeln!(out, "nginx\t{v}");
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
                Some(kind @ ("disk" | "tls")) if f.len() >= 9 => {
                    let m = Measured {
                        size: f[1].to_owned(),
                        subject: f[2].to_owned(),
                        load: Load::from_fields(&f[3..8])?,
                        hit_ratio: f[8].parse().ok(),
                    };
                    let r = results.as_mut()?;
                    if kind == "disk" {
                        r.disk.push(m);
                    } else {
                        r.tls.push(m);
                    }
                }
                Some("nginx") if f.len() >= 2 => results.as_mut()?.nginx = Some(f[1].to_owned()),
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
        results.rows.push(measure_row(
            &run,
            &format!("hit {}", label(size)),
            limit_port,
            &mut proxy,
            &Urls::Fixed(&path),
            None,
        )?);
    }

    // Disk hits beside memory hits and nginx's, with the memory proxy of the rows above.
    let labelled: Vec<(&str, String)> = sizes.iter().map(|s| (*s, label(s))).collect();
    results.disk = disk::run(&run, &labelled, limit_port, origin_port, &proxy)?;
    // Hits over TLS, HTTP/1.1 and h2, beside nginx terminating TLS.
    results.tls = super::tls::run(
        &run,
        origin_port,
        plan.nginx.as_deref(),
        plan.h2load.as_deref(),
    )?;
    results.nginx = plan
        .nginx
        .as_deref()
        .filter(|_| !plan.quick)
        .and_then(super::nginx::version);

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
    let mut row = measure_row(
        &run,
        "304 (If-None-Match) 1 KiB",
        limit_port,
        &mut proxy,
        &Urls::Fixed("/1k"),
        Some(inm),
    )?;
    row.note = note;
    results.rows.push(row);

    // The miss path: every request a new URL, fetched from the origin and stored.
    results.rows.push(measure_row(
        &run,
        "miss 1 KiB (unique URLs, stored)",
        limit_port,
        &mut proxy,
        &Urls::Unique("/1k/miss-"),
        None,
    )?);
    // A miss read by two clients at once: one fill, read back by both at their own pace.
    results.rows.push(measure_row(
        &run,
        "miss 1 MiB, 2 readers each (unique URLs, stored)",
        limit_port,
        &mut proxy,
        &Urls::Pairs("/1m/pair-"),
        None,
    )?);
    drop(proxy);

    results.rows.push(churn(&run, limit_port, origin_port)?);
    results.memory = Some(memory(&run, origin_port)?);
    Ok(results)
}

/// Churn: 16 384 URLs of 1 KiB drawn at random through a cache of 8 MiB (a little under half of
/// them fit once per-entry metadata is counted), in a proxy of its own.
fn churn(run: &Runner<'_>, limit_port: u16, origin_port: u16) -> Result<Row, String> {
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
    let row = measure_row(
        run,
        "churn 1 KiB (16 Ki URLs, 8 MiB cache)",
        limit_port,
        &mut small,
        &Urls::Random("/1k/churn-", 16_384),
        None,
    )?;
    drop(small);
    Ok(row)
}

/// `1k` → `1 KiB`.
fn label(size: &str) -> String {
    match size.split_at(size.len() - 1) {
        (n, "k") => format!("{n} KiB"),
        (n, "m") => format!("{n} MiB"),
        _ => format!("{size} B"),
    }
}

/// The bare server, then the proxy, on the same URLs.
fn measure_row(
    run: &Runner<'_>,
    name: &str,
    limit_port: u16,
    proxy: &mut Proxy,
    urls: &Urls<'_>,
    header: Option<(&str, &str)>,
) -> Result<Row, String> {
    let bare = run.wrk(
        &format!("{name}: bare"),
        limit_port,
        urls,
        header,
        run.duration,
    )?;
    let before = proxy.hit_counts();
    let larder = run.wrk(
        &format!("{name}: larder"),
        proxy.port,
        urls,
        header,
        run.duration,
    )?;
    proxy.server.check_running()?;
    let hit_ratio = hit_ratio(before, proxy.hit_counts());
    Ok(Row {
        name: name.to_owned(),
        bare,
        larder,
        hit_ratio,
        note: String::new(),
    })
}

/// Fills a 256 MiB cache with 16 KiB bodies and reads the proxy's RSS and cache gauges.
fn memory(run: &Runner<'_>, origin: u16) -> Result<Memory, String> {
    const CACHE: u64 = 256 * 1024 * 1024;
    const BODY: usize = 16 * 1024;
    // 1.5 times what fits, so the cache ends full and evicting.
    let urls = usize::try_from(CACHE * 3 / 2 / BODY as u64).unwrap_or(usize::MAX);
    let mut proxy = run.larder(
        "larder-memory",
        origin,
        &["--cache-size".into(), CACHE.to_string()],
    )?;
    let pid = process::worker_pid(proxy.server.id());
    let rss_empty = process::rss_bytes(pid);
    let fill = if run.plan.quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(15)
    };
    let _ = run.wrk(
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
            tls: vec![Measured {
                size: "1 KiB".into(),
                subject: super::super::tls::LARDER_H2.into(),
                load,
                hit_ratio: Some(1.0),
            }],
            disk: vec![
                Measured {
                    size: "1 KiB".into(),
                    subject: disk::DISK.into(),
                    load,
                    hit_ratio: Some(1.0),
                },
                Measured {
                    size: "1 KiB".into(),
                    subject: disk::NGINX.into(),
                    load,
                    hit_ratio: None,
                },
            ],
            nginx: Some("nginx/1.22.1".into()),
            pinned: true,
            connections: 64,
            duration: Duration::from_secs(10),
        };
        let back = Results::from_tsv(&results.to_tsv()).expect("readable");
        assert_eq!(back.to_tsv(), results.to_tsv());
        assert_eq!(back.rows[0].hit_ratio, Some(0.5));
        assert_eq!(back.disk.len(), 2);
        assert_eq!(back.tls.len(), 1);
        assert_eq!(back.tls[0].subject, super::super::tls::LARDER_H2);
        assert_eq!(back.disk[0].subject, "larder-disk");
        assert_eq!(
            (back.disk[0].hit_ratio, back.disk[1].hit_ratio),
            (Some(1.0), None)
        );
        assert_eq!(back.nginx.as_deref(), Some("nginx/1.22.1"));
        assert!(Results::from_tsv("").is_none());
    }

    #[test]
    fn labels() {
        assert_eq!(label("1k"), "1 KiB");
        assert_eq!(label("64k"), "64 KiB");
        assert_eq!(label("1m"), "1 MiB");
    }
}
