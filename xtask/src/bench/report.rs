//! The report: criterion results paired with their peers, the extra figures benches recorded,
//! the HTTP rows and the goals, as Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::disk;
use super::http::Results;
use super::load::Load;

/// The machine and the moment, for the report's header.
#[derive(Debug, Clone, Default)]
pub(super) struct Machine {
    pub(super) cores: usize,
    pub(super) cpu: String,
    pub(super) load_before: String,
    pub(super) load_after: String,
    pub(super) date: String,
    pub(super) command: String,
    /// Parts that failed; the report names them instead of their figures.
    pub(super) failures: Vec<String>,
}

/// The workload the goals are judged on, as the benches label it (`larder_benches::HEADLINE`:
/// Zipf 1.0, a cache of 1 % of the keys).
const HEADLINE: &str = "s=1.0 1%";

/// One criterion benchmark, from `criterion_summary`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bench {
    pub(super) group: String,
    pub(super) function: String,
    pub(super) value: String,
    pub(super) median_ns: f64,
    /// Elements (or bytes) per iteration, when the group declared a throughput.
    pub(super) per_iter: Option<(String, u64)>,
    /// The hit ratio the bench recorded for this row (see [`attach_hit_ratios`]).
    pub(super) hit_ratio: Option<f64>,
}

impl Bench {
    /// The implementation: the function name up to its first `/`.
    fn subject(&self) -> &str {
        self.function.split('/').next().unwrap_or_default()
    }

    /// What of the group's workload this is: the function name after its first `/`.
    fn variant(&self) -> &str {
        self.function.split_once('/').map_or("", |(_, v)| v)
    }

    /// The row in the metrics protocol's spelling: `group/function/value`, empty parts left out.
    fn metric_row(&self) -> String {
        [
            self.group.as_str(),
            self.function.as_str(),
            self.value.as_str(),
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
    }

    /// The suite the row comes from, by its group's name.
    fn suite(&self) -> Suite {
        if self.group.starts_with("cache_control") {
            Suite::CacheControl
        } else if self.group.starts_with("eviction") {
            Suite::Eviction
        } else {
            Suite::MemoryCache
        }
    }

    fn is_larder(&self) -> bool {
        self.subject().starts_with("larder")
    }

    /// Higher is better: operations (or bytes) per second, else iterations per second.
    fn speed(&self) -> f64 {
        let per_iter = self.per_iter.as_ref().map_or(1, |(_, n)| *n);
        #[allow(clippy::cast_precision_loss)] // element counts far below 2^52
        let per_iter = per_iter as f64;
        per_iter / (self.median_ns / 1e9)
    }

    fn figure(&self) -> String {
        match &self.per_iter {
            Some((kind, _)) if kind == "bytes" => format!("{}B/s", si(self.speed())),
            Some(_) => format!("{} ops/s", si(self.speed())),
            None => time(self.median_ns),
        }
    }
}

/// Parses `criterion_summary`'s lines.
pub(super) fn parse_summary(text: &str) -> Vec<Bench> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 7 {
                return None;
            }
            let median_ns: f64 = f[3].parse().ok().filter(|m: &f64| *m > 0.0)?;
            let per_iter = match (f[5], f[6].parse::<u64>()) {
                ("elements" | "bytes", Ok(n)) if n > 0 => Some((f[5].to_owned(), n)),
                _ => None,
            };
            Some(Bench {
                group: f[0].to_owned(),
                function: f[1].to_owned(),
                value: f[2].to_owned(),
                median_ns,
                per_iter,
                hit_ratio: None,
            })
        })
        .collect()
}

/// Gives each bench the `hit_ratio` the benches recorded for its row (under any suite) and
/// returns the metrics that no bench took, for the table of other figures.
pub(super) fn attach_hit_ratios(benches: &mut [Bench], extra: &Metrics) -> Metrics {
    let mut rest = extra.clone();
    for b in benches.iter_mut() {
        let row = b.metric_row();
        let key = extra
            .keys()
            .find(|(_, r, metric)| *r == row && metric == "hit_ratio")
            .cloned();
        if let Some(key) = key {
            b.hit_ratio = rest.remove(&key).or_else(|| extra.get(&key).copied());
        }
    }
    rest
}

/// The criterion suites, for the report's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    CacheControl,
    Eviction,
    MemoryCache,
}

impl Suite {
    const ALL: [Suite; 3] = [Suite::CacheControl, Suite::Eviction, Suite::MemoryCache];

    fn title(self) -> &'static str {
        match self {
            Suite::CacheControl => "Cache-Control parsing (`cache_control`)",
            Suite::Eviction => "Eviction core (`eviction`)",
            Suite::MemoryCache => "Memory cache (`memory_cache`)",
        }
    }

    /// Whether the suite's rows carry hit ratios.
    fn has_hit_ratios(self) -> bool {
        !matches!(self, Suite::CacheControl)
    }
}

/// Extra figures by `(suite, row, metric)`.
pub(super) type Metrics = BTreeMap<(String, String, String), f64>;

/// The metrics protocol's lines, last one winning.
pub(super) fn parse_metrics(text: &str) -> Metrics {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if let [suite, row, metric, value] = f[..]
            && let Ok(value) = value.trim().parse()
        {
            out.insert((suite.to_owned(), row.to_owned(), metric.to_owned()), value);
        }
    }
    out
}

/// A larder benchmark beside a peer's on the same workload.
#[derive(Debug)]
struct Pair<'a> {
    larder: &'a Bench,
    peer: Option<&'a Bench>,
}

impl Pair<'_> {
    /// How many times faster larder is.
    fn ratio(&self) -> Option<f64> {
        self.peer.map(|p| self.larder.speed() / p.speed())
    }
}

/// Pairs each peer of a group (and parameter) with the larder benchmark it answers: same
/// variant, and the larder subject whose suffix the peer's name contains (`larder_lru` for
/// `pingora_lru`), else plain `larder`, else the fastest larder subject. Larder subjects that
/// answer no peer get a row of their own.
fn pairs(benches: &[Bench]) -> Vec<Pair<'_>> {
    let mut out = Vec::new();
    let mut keys: Vec<(&str, &str, &str)> = benches
        .iter()
        .map(|b| (b.group.as_str(), b.value.as_str(), b.variant()))
        .collect();
    keys.dedup();
    let mut seen = std::collections::BTreeSet::new();
    keys.retain(|k| seen.insert(*k));
    for (group, value, variant) in keys {
        let same: Vec<&Bench> = benches
            .iter()
            .filter(|b| b.group == group && b.value == value && b.variant() == variant)
            .collect();
        let larders: Vec<&Bench> = same.iter().copied().filter(|b| b.is_larder()).collect();
        let mut used = vec![false; larders.len()];
        for peer in same.iter().copied().filter(|b| !b.is_larder()) {
            let suffix = |b: &Bench| {
                b.subject()["larder".len()..]
                    .trim_start_matches(['_', '-'])
                    .to_owned()
            };
            let pick = larders
                .iter()
                .enumerate()
                .filter(|(_, l)| {
                    let s = suffix(l);
                    !s.is_empty() && peer.subject().contains(s.as_str())
                })
                .max_by_key(|(_, l)| suffix(l).len())
                .or_else(|| {
                    larders
                        .iter()
                        .enumerate()
                        .find(|(_, l)| suffix(l).is_empty())
                })
                .or_else(|| {
                    larders
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.speed().total_cmp(&b.1.speed()))
                });
            if let Some((i, larder)) = pick {
                used[i] = true;
                out.push(Pair {
                    larder,
                    peer: Some(peer),
                });
            }
        }
        for (i, larder) in larders.iter().enumerate() {
            if !used[i] {
                out.push(Pair { larder, peer: None });
            }
        }
    }
    out
}

/// `group · value · variant`, leaving out the empty parts.
fn row_name(b: &Bench) -> String {
    [b.group.as_str(), b.value.as_str(), b.variant()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A number with an SI prefix: `12.3 M`.
fn si(x: f64) -> String {
    let (v, p) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    format!("{v:.3} {p}").replace("  ", " ")
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1e3)
}

/// A goal's line: what, the figure, and whether it is met.
fn goal(out: &mut String, what: &str, figure: Option<f64>, target: f64, higher_is_better: bool) {
    let (shown, status) = match figure {
        Some(f) => {
            let met = if higher_is_better {
                f >= target
            } else {
                f <= target
            };
            (format!("{f:.2}"), if met { "met" } else { "**missed**" })
        }
        None => ("—".to_owned(), "not measured in this run"),
    };
    let _ = writeln!(out, "| {what} | {target} | {shown} | {status} |");
}

fn find<'a>(
    pairs: &'a [Pair<'a>],
    group: &str,
    value: &str,
    larder: &str,
    peer: &str,
) -> Option<f64> {
    // `value` is matched whole: `HEADLINE` against `s=1.0 1%`.
    pairs
        .iter()
        .find(|p| {
            p.larder.group == group
                && p.larder.value == value
                && p.larder.function == larder
                && p.peer.is_some_and(|q| q.function == peer)
        })
        .and_then(Pair::ratio)
}

/// The fastest larder subject of `group` and `value` whose name starts with `prefix`, over
/// `peer`.
fn best_ratio<'a>(
    pairs: &'a [Pair<'a>],
    group: &str,
    value: &str,
    prefix: &str,
    peer: &str,
) -> Option<(&'a str, f64)> {
    let peer = pairs
        .iter()
        .filter_map(|p| p.peer)
        .find(|q| q.group == group && q.value == value && q.function == peer)?;
    let best = pairs
        .iter()
        .map(|p| p.larder)
        .filter(|b| b.group == group && b.value == value && b.function.starts_with(prefix))
        .max_by(|a, b| a.speed().total_cmp(&b.speed()))?;
    Some((best.function.as_str(), best.speed() / peer.speed()))
}

/// The whole report.
pub(super) fn render(
    machine: &Machine,
    benches: &[Bench],
    extra: &Metrics,
    http: Option<&Results>,
    quick: bool,
    analysis: Option<&str>,
) -> String {
    let pairs = pairs(benches);
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Generated by `{}` on {}. Regenerate with `cargo xtask bench` (about 25 minutes plus the \
         builds); `--quick` is a smoke test whose report goes beside the build.\n",
        machine.command, machine.date
    );
    if quick {
        let _ = writeln!(
            out,
            "**Quick run**: each benchmark ran only briefly; these figures are a smoke test, not \
             measurements.\n"
        );
    }
    for failure in &machine.failures {
        let _ = writeln!(out, "**Failed in this run:** {failure}\n");
    }
    let _ = writeln!(out, "- Machine: {} cores, {}", machine.cores, machine.cpu);
    let _ = writeln!(
        out,
        "- Load average (1, 5, 15 min) before: {}, after: {}.{}",
        machine.load_before,
        machine.load_after,
        if is_shared(&machine.load_before, machine.cores) {
            " **The machine was shared with other work during the run**, so absolute figures \
             are noisy; the ratios come from runs back to back and are what count."
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "- In-process figures are criterion medians; ratios are larder's speed over the peer's \
         (above 1: larder is faster).\n"
    );

    render_goals(&mut out, &pairs, extra, http);

    if let Some(h) = http {
        render_http(&mut out, h, quick);
        if !h.disk.is_empty() {
            disk::render(&mut out, &h.disk, h.nginx.as_deref(), quick);
        }
        if !h.tls.is_empty() {
            super::tls::render(&mut out, &h.tls, quick);
        }
    }

    if !pairs.is_empty() {
        render_criterion(&mut out, &pairs);
    }

    if !extra.is_empty() {
        let _ = writeln!(out, "## Other figures\n");
        let _ = writeln!(
            out,
            "Recorded by the benches through `larder_benches::record_metric` (hit ratios are \
             fractions of lookups) and by `mem_overhead` (heap bytes per entry beyond the payload, \
             from a counting allocator; the payload is the 1 KiB body for MemCache and the 16 \
             bytes of key and value for `MemoryCache<u64, u64>`). Hit ratios of criterion rows \
             stand in their tables above.\n"
        );
        let _ = writeln!(out, "| Suite | Row | Metric | Value |\n|---|---|---|---|");
        for ((suite, row, metric), value) in extra {
            let _ = writeln!(out, "| {suite} | {row} | {metric} | {value:.4} |");
        }
        out.push('\n');
    }
    if let Some(text) = analysis {
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// The criterion rows, one table per suite; the eviction and memory cache tables carry each
/// subject's hit ratio beside its speed.
fn render_criterion(out: &mut String, pairs: &[Pair<'_>]) {
    let _ = writeln!(out, "## In-process benchmarks (criterion)\n");
    let _ = writeln!(
        out,
        "`cargo bench --manifest-path benches/Cargo.toml --bench <suite>`; each row pairs a \
         larder subject with a peer on the same workload. Workloads `s=<exponent> <size>%` are \
         Zipf streams over 1 M keys through a cache holding that share of them; a hit ratio is \
         the fraction of lookups that hit, measured outside the timed loop on a warmed cache \
         with the row's threads.\n"
    );
    for suite in Suite::ALL {
        let rows: Vec<&Pair<'_>> = pairs.iter().filter(|p| p.larder.suite() == suite).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {}\n", suite.title());
        if suite.has_hit_ratios() {
            let _ = writeln!(
                out,
                "| Row | larder | figure | hit ratio | peer | figure | hit ratio | ratio |\n\
                 |---|---|---|---|---|---|---|---|"
            );
        } else {
            let _ = writeln!(
                out,
                "| Row | larder | figure | peer | figure | ratio |\n|---|---|---|---|---|---|"
            );
        }
        for p in rows {
            let hits = |b: &Bench| {
                if suite.has_hit_ratios() {
                    format!(" {} |", percent(b.hit_ratio))
                } else {
                    String::new()
                }
            };
            let (peer, peer_figure, peer_hits, ratio) = match p.peer {
                Some(q) => (
                    q.subject().to_owned(),
                    q.figure(),
                    hits(q),
                    p.ratio().map_or_else(String::new, |r| format!("{r:.2}×")),
                ),
                None => (
                    "—".to_owned(),
                    String::new(),
                    if suite.has_hit_ratios() {
                        " |".to_owned()
                    } else {
                        String::new()
                    },
                    String::new(),
                ),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} |{} {peer} | {peer_figure} |{peer_hits} {ratio} |",
                row_name(p.larder),
                p.larder.subject(),
                p.larder.figure(),
                hits(p.larder),
            );
        }
        out.push('\n');
    }
}

/// A fraction as a percentage, or a dash when not recorded.
fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |x| format!("{:.1} %", x * 100.0))
}

/// The goals of the project's performance note and where each stands.
fn render_goals(out: &mut String, pairs: &[Pair<'_>], extra: &Metrics, http: Option<&Results>) {
    let _ = writeln!(out, "## Goals\n");
    let _ = writeln!(
        out,
        "| Goal | Target | Measured | Status |\n|---|---|---|---|"
    );
    http_goals(out, http);
    // The eviction core has more than one way to drive it (`larder_lru`, `larder_lru_one_call`,
    // ...); the goal takes the fastest.
    let eviction = best_ratio(
        pairs,
        "eviction/get_or_admit/1t",
        HEADLINE,
        "larder_lru",
        "pingora_lru",
    );
    goal(
        out,
        &format!(
            "eviction core ({}) over pingora_lru, get_or_admit, 1 thread, {HEADLINE}",
            eviction.map_or("larder_lru", |(name, _)| name)
        ),
        eviction.map(|(_, r)| r),
        2.0,
        true,
    );
    goal(
        out,
        &format!("MemoryCache over pingora-memory-cache, get_put, 1 thread, {HEADLINE}"),
        find(
            pairs,
            "get_put/1t",
            HEADLINE,
            "larder",
            "pingora-memory-cache",
        ),
        1.5,
        true,
    );
    goal(
        out,
        &format!("MemoryCache over moka (sync), get_put, 1 thread, {HEADLINE}"),
        find(pairs, "get_put/1t", HEADLINE, "larder", "moka-sync"),
        3.0,
        true,
    );
    let parse_ratios: Vec<f64> = pairs
        .iter()
        .filter(|p| p.larder.group.starts_with("cache_control/") && p.larder.variant().is_empty())
        .filter_map(Pair::ratio)
        .collect();
    goal(
        out,
        "Cache-Control parsing over pingora-cache's (the slowest case)",
        parse_ratios.iter().copied().reduce(f64::min),
        5.0,
        true,
    );
    goal(
        out,
        "MemCache bytes per entry beyond the body",
        extra
            .get(&(
                "memory".into(),
                "MemCache/larder".into(),
                "bytes_per_entry".into(),
            ))
            .copied(),
        200.0,
        false,
    );
    out.push('\n');
}

/// The goals of the HTTP runs: proxy hits against the bare server, disk hits and hits over TLS
/// against nginx.
fn http_goals(out: &mut String, http: Option<&Results>) {
    let hit = |name: &str| http.and_then(|h| h.rows.iter().find(|r| r.name == name));
    for (name, target) in [("hit 1 KiB", 0.85), ("hit 1 MiB", 0.9)] {
        let row = hit(name);
        goal(
            out,
            &format!("proxy {name}: req/s over the bare server's"),
            row.map(|r| r.larder.rps / r.bare.rps),
            target,
            true,
        );
        goal(
            out,
            &format!("proxy {name}: p99 over the bare server's"),
            row.map(|r| r.larder.p99_us / r.bare.p99_us),
            1.5,
            false,
        );
    }
    for size in ["1 KiB", "64 KiB", "1 MiB"] {
        goal(
            out,
            &format!("disk hit {size}: larder-disk req/s over nginx proxy_cache's"),
            http.and_then(|h| disk::ratio(&h.disk, size, disk::DISK, disk::NGINX, |l| l.rps)),
            1.0,
            true,
        );
    }
    for (larder, nginx, what) in [
        (super::tls::LARDER_TLS, super::tls::NGINX_TLS, "HTTP/1.1"),
        (super::tls::LARDER_H2, super::tls::NGINX_H2, "h2"),
    ] {
        goal(
            out,
            &format!("hit 1 KiB over TLS ({what}): larder req/s over nginx's"),
            http.and_then(|h| super::tls::ratio(&h.tls, larder, nginx, |l| l.rps)),
            1.0,
            true,
        );
    }
}

/// Whether the load average says other work was running (more than half a core busy).
fn is_shared(load: &str, cores: usize) -> bool {
    #[allow(clippy::cast_precision_loss)] // core counts are small
    load.split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .is_some_and(|l| l > 0.5 || l > cores as f64 / 2.0)
}

/// The HTTP rows; a quick run's `larder` is a debug build (see `bench.rs`).
fn render_http(out: &mut String, h: &Results, quick: bool) {
    let _ = writeln!(out, "## HTTP (wrk)\n");
    let _ = writeln!(
        out,
        "{}. \"bare\" is `benches/src/bin/bare_server.rs`, a bare hyper 1.x HTTP/1.1 server \
         answering the same bytes from memory: the limit on this machine. larder is the {} \
         `larder` binary in front of another bare server, serving from its cache after a warm-up \
         request (checked to be a hit). Ratios are larder over bare, measured back to back.\n",
        super::http::describe(h),
        if quick {
            "debug (unoptimised)"
        } else {
            "release"
        }
    );
    let _ = writeln!(
        out,
        "| Row | bare req/s | larder req/s | ratio | bare p50 / p99 | larder p50 / p99 | p99 ratio | larder hit ratio |\n|---|---|---|---|---|---|---|---|"
    );
    for r in &h.rows {
        let flag = |l: &Load| {
            if l.errors + l.bad_status > 0 {
                format!(" ({} errors, {} bad statuses)", l.errors, l.bad_status)
            } else {
                String::new()
            }
        };
        let _ = writeln!(
            out,
            "| {}{} | {:.0}{} | {:.0}{} | {:.2}× | {} / {} | {} / {} | {:.2}× | {} |",
            r.name,
            if r.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.note)
            },
            r.bare.rps,
            flag(&r.bare),
            r.larder.rps,
            flag(&r.larder),
            r.larder.rps / r.bare.rps,
            ms(r.bare.p50_us),
            ms(r.bare.p99_us),
            ms(r.larder.p50_us),
            ms(r.larder.p99_us),
            r.larder.p99_us / r.bare.p99_us,
            r.hit_ratio
                .map_or_else(|| "—".to_owned(), |x| format!("{:.1} %", x * 100.0)),
        );
    }
    out.push('\n');
    if let Some(m) = &h.memory {
        let mib = |b: u64| {
            #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
            let v = b as f64 / (1024.0 * 1024.0);
            format!("{v:.1} MiB")
        };
        let _ = writeln!(
            out,
            "**Memory.** larder with `--cache-size {}` after cycling through {} URLs of {} KiB \
             (1.5 times what fits): RSS {} (before the fill: {}); the cache reports {} in {} \
             entries.\n",
            m.cache_size,
            m.urls,
            m.body / 1024,
            m.rss.map_or_else(|| "unknown".to_owned(), mib),
            m.rss_empty.map_or_else(|| "unknown".to_owned(), mib),
            m.cache_bytes.map_or_else(|| "unknown".to_owned(), mib),
            m.entries
                .map_or_else(|| "unknown".to_owned(), |e| e.to_string()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(group: &str, function: &str, value: &str, median_ns: f64) -> Bench {
        Bench {
            group: group.into(),
            function: function.into(),
            value: value.into(),
            median_ns,
            per_iter: Some(("elements".into(), 1000)),
            hit_ratio: None,
        }
    }

    #[test]
    fn summary_lines_parse() {
        let b = parse_summary("g\tlarder\t1t\t2000\t2100\telements\t1000\nbad line\n");
        assert_eq!(b, vec![bench("g", "larder", "1t", 2000.0)]);
        assert!((b[0].speed() - 5e8).abs() < 1.0);
    }

    #[test]
    fn peers_pair_with_the_matching_larder_subject() {
        let benches = vec![
            bench("eviction/get_or_admit/1t", "larder_lru", "", 100.0),
            bench("eviction/get_or_admit/1t", "larder_tinyufo", "", 200.0),
            bench("eviction/get_or_admit/1t", "larder_lru_split", "", 150.0),
            bench("eviction/get_or_admit/1t", "pingora_lru", "", 400.0),
            bench("eviction/get_or_admit/1t", "tinyufo", "", 300.0),
        ];
        let pairs = pairs(&benches);
        let names: Vec<(&str, Option<&str>)> = pairs
            .iter()
            .map(|p| {
                (
                    p.larder.function.as_str(),
                    p.peer.map(|q| q.function.as_str()),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("larder_lru", Some("pingora_lru")),
                ("larder_tinyufo", Some("tinyufo")),
                ("larder_lru_split", None),
            ]
        );
        assert_eq!(
            best_ratio(
                &pairs,
                "eviction/get_or_admit/1t",
                "",
                "larder_lru",
                "pingora_lru"
            ),
            Some(("larder_lru", 4.0))
        );
        assert_eq!(
            find(
                &pairs,
                "eviction/get_or_admit/1t",
                "",
                "larder_lru",
                "pingora_lru"
            ),
            Some(4.0)
        );
    }

    #[test]
    fn variants_pair_with_variants() {
        let benches = vec![
            bench("cc/x", "larder", "", 10.0),
            bench("cc/x", "pingora-cache", "", 50.0),
            bench("cc/x", "larder/access_all", "", 20.0),
            bench("cc/x", "pingora-cache/access_all", "", 30.0),
        ];
        let ratios: Vec<f64> = pairs(&benches).iter().filter_map(Pair::ratio).collect();
        assert_eq!(ratios.len(), 2);
        assert!((ratios[0] - 5.0).abs() < 1e-9 && (ratios[1] - 1.5).abs() < 1e-9);
    }

    #[test]
    fn hit_ratios_join_their_rows_and_show_beside_the_speeds() {
        let mut benches = vec![
            bench("eviction/get_or_admit/1t", "larder_lru", HEADLINE, 100.0),
            bench("eviction/get_or_admit/1t", "pingora_lru", HEADLINE, 300.0),
            bench("eviction/get_or_admit/1t", "larder_lru", "s=1.2 10%", 50.0),
            bench(
                "eviction/get_or_admit/1t",
                "pingora_lru",
                "s=1.2 10%",
                200.0,
            ),
            bench("cache_control/typical", "larder", "", 10.0),
            bench("cache_control/typical", "pingora-cache", "", 50.0),
        ];
        let extra = parse_metrics(
            "eviction\teviction/get_or_admit/1t/larder_lru/s=1.0 1%\thit_ratio\t0.25\n\
             eviction\teviction/get_or_admit/1t/pingora_lru/s=1.0 1%\thit_ratio\t0.5\n\
             eviction\teviction/get_or_admit/1t/larder_lru/s=1.2 10%\thit_ratio\t0.75\n\
             memory\tMemCache/larder\tbytes_per_entry\t120\n",
        );
        let rest = attach_hit_ratios(&mut benches, &extra);
        let ratios: Vec<Option<f64>> = benches.iter().map(|b| b.hit_ratio).collect();
        assert_eq!(
            ratios,
            [Some(0.25), Some(0.5), Some(0.75), None, None, None]
        );
        // Only the figures no row took are left for the table of other figures.
        assert_eq!(rest.len(), 1);
        assert!(rest.contains_key(&(
            "memory".to_owned(),
            "MemCache/larder".to_owned(),
            "bytes_per_entry".to_owned()
        )));

        let text = render(&Machine::default(), &benches, &rest, None, true, None);
        assert!(text.contains("### Eviction core"), "{text}");
        assert!(
            text.contains(
                "| eviction/get_or_admit/1t · s=1.0 1% | larder_lru | 10.000 G ops/s | 25.0 % \
                 | pingora_lru | 3.333 G ops/s | 50.0 % | 3.00× |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| larder_lru | 20.000 G ops/s | 75.0 % | pingora_lru | 5.000 G ops/s | — | 4.00× |"
            ),
            "{text}"
        );
        // Parsing rows have no hit ratio columns.
        assert!(
            text.contains(
                "| cache_control/typical | larder | 100.000 G ops/s | pingora-cache | 20.000 G ops/s \
                 | 5.00× |"
            ),
            "{text}"
        );
        // The goal is judged on the headline workload, not the other one.
        assert!(
            text.contains("over pingora_lru, get_or_admit, 1 thread, s=1.0 1% | 2 | 3.00 | met |"),
            "{text}"
        );
    }

    #[test]
    fn metrics_last_line_wins() {
        let m = parse_metrics("s\tr\thit_ratio\t0.5\ns\tr\thit_ratio\t0.75\nbroken\n");
        assert_eq!(m.len(), 1);
        assert_eq!(m.values().next(), Some(&0.75));
    }
}
