//! `docs/conformance.md`, the committed baseline and the hand-written failure reasons.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::score::{Kind, Scores, Verdict};

/// Facts about the run that the report states.
pub(super) struct RunInfo {
    /// When it ran, UTC.
    pub(super) date: String,
    /// larder's commit, with a note when the working tree differs.
    pub(super) commit: String,
    /// The suite's snapshot commit.
    pub(super) suite: String,
    /// How the proxy was started.
    pub(super) proxy: String,
    /// Whole command and the suite run alone, in seconds; `None` when re-scoring an old run.
    pub(super) seconds: Option<(f64, f64)>,
    /// Baseline tests that failed the first run and passed when re-run.
    pub(super) passed_on_retry: Vec<String>,
}

impl RunInfo {
    /// The facts as `key<TAB>value` lines, kept beside the results so `--report-only` can
    /// restate them.
    pub(super) fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "date\t{}", self.date);
        let _ = writeln!(out, "commit\t{}", self.commit);
        let _ = writeln!(out, "suite\t{}", self.suite);
        let _ = writeln!(out, "proxy\t{}", self.proxy);
        if let Some((all, suite)) = self.seconds {
            let _ = writeln!(out, "seconds\t{all}\t{suite}");
        }
        let _ = writeln!(out, "retried\t{}", self.passed_on_retry.join(" "));
        out
    }

    /// Reads what [`RunInfo::to_text`] wrote; `None` when something is missing.
    pub(super) fn from_text(text: &str) -> Option<Self> {
        let mut info = RunInfo {
            date: String::new(),
            commit: String::new(),
            suite: String::new(),
            proxy: String::new(),
            seconds: None,
            passed_on_retry: Vec::new(),
        };
        for line in text.lines() {
            let (key, value) = line.split_once('\t')?;
            match key {
                "date" => value.clone_into(&mut info.date),
                "commit" => value.clone_into(&mut info.commit),
                "suite" => value.clone_into(&mut info.suite),
                "proxy" => value.clone_into(&mut info.proxy),
                "seconds" => {
                    let (all, suite) = value.split_once('\t')?;
                    info.seconds = Some((all.parse().ok()?, suite.parse().ok()?));
                }
                "retried" => {
                    info.passed_on_retry = value.split_whitespace().map(str::to_owned).collect();
                }
                _ => return None,
            }
        }
        (!info.date.is_empty() && !info.commit.is_empty()).then_some(info)
    }
}

/// Reads `id: reason` lines; `#` starts a comment line.
pub(super) fn read_reasons(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot read {path:?}: {e}")),
    };
    let mut reasons = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, reason) = line.split_once(':').ok_or_else(|| {
            format!(
                "{}:{}: expected `<test id>: <reason>`",
                path.display(),
                n + 1
            )
        })?;
        let (id, reason) = (id.trim(), reason.trim());
        if id.is_empty() || reason.is_empty() {
            return Err(format!(
                "{}:{}: expected `<test id>: <reason>`",
                path.display(),
                n + 1
            ));
        }
        reasons.insert(id.to_owned(), reason.to_owned());
    }
    Ok(reasons)
}

/// Reads the baseline: one test id per line, `#` comments.
pub(super) fn read_baseline(path: &Path) -> Result<Option<BTreeSet<String>>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {path:?}: {e}")),
    }
}

/// The baseline file's text for a set of passing tests.
pub(super) fn baseline_text(ids: &BTreeSet<String>) -> String {
    let mut out = String::from(
        "# Required and optimal tests of the HTTP caching test suite that larder passes.\n\
         # `cargo xtask conformance` fails when one of them no longer passes;\n\
         # `cargo xtask conformance --bless` rewrites this file from the latest run.\n",
    );
    for id in ids {
        out.push_str(id);
        out.push('\n');
    }
    out
}

/// How a verdict reads in the report.
fn outcome_label(outcome: &str) -> &str {
    match outcome {
        "pass" => "pass",
        "fail" => "fail",
        "optional_fail" => "not optimal",
        "yes" => "yes",
        "no" => "no",
        "setup_fail" => "setup failed",
        "harness_fail" => "harness error",
        "dependency_fail" => "dependency failed",
        "retry" => "request retried",
        "untested" => "not run",
        other => other,
    }
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;")
}

/// The reason shown for a failing test: the hand-written one, else the suite's message.
fn reason<'a>(reasons: &'a BTreeMap<String, String>, id: &str, verdict: &'a Verdict) -> &'a str {
    reasons.get(id).map_or_else(
        || {
            if verdict.message.is_empty() {
                "(no message)"
            } else {
                verdict.message.as_str()
            }
        },
        String::as_str,
    )
}

fn fraction(passed: usize, total: usize) -> String {
    format!("{passed}/{total}")
}

/// `docs/conformance.md`. Implementation 0 is larder; the others are the published peers.
pub(super) fn markdown(
    scores: &Scores,
    reasons: &BTreeMap<String, String>,
    info: &RunInfo,
) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail, so the results of `writeln!` are ignored below.
    let _ = writeln!(
        out,
        "# Conformance\n\n\
         larder's HTTP caching is judged by the public HTTP caching test suite behind\n\
         [cache-tests.fyi](https://cache-tests.fyi), run against the `larder` proxy in front of the\n\
         suite's origin server. This file is written by `cargo xtask conformance`; do not edit it by\n\
         hand. A failure's reason is the suite's message unless `conformance/reasons.txt` gives one.\n"
    );
    out.push_str(HOW_TO_RUN);

    let _ = writeln!(out, "## Latest run\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Date | {} |", info.date);
    let _ = writeln!(out, "| larder commit | {} |", info.commit);
    let _ = writeln!(out, "| Suite | {} |", info.suite);
    let _ = writeln!(out, "| Proxy | `{}` |", info.proxy);
    match info.seconds {
        Some((all, suite)) => {
            let _ = writeln!(
                out,
                "| Run time | {all:.0} s in all, {suite:.0} s running the suite |"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| Run time | not recorded: re-scored from an earlier run (`--report-only`) |"
            );
        }
    }
    if !info.passed_on_retry.is_empty() {
        let _ = writeln!(
            out,
            "| Passed only when re-run | {} |",
            info.passed_on_retry
                .iter()
                .map(|id| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    summary_table(&mut out, scores);
    group_table(&mut out, scores);
    for kind in [Kind::Required, Kind::Optimal] {
        failing_table(&mut out, scores, reasons, kind);
    }
    checks_table(&mut out, scores);
    out
}

const HOW_TO_RUN: &str = "\
## Running it

```sh
cargo xtask conformance            # run, rewrite this file, compare with the baseline
cargo xtask conformance --bless    # the same, then rewrite conformance/baseline.txt
cargo xtask conformance --direct   # the suite against its origin alone (no cache), a harness check
cargo xtask conformance --report-only   # re-score the last run's results, rewrite this file
cargo xtask conformance --check    # what CI runs: the report goes to work-conformance/ instead
cargo xtask conformance --id vary-match   # one test, printing its requests and responses
```

It needs Node.js 20 or later (`node`, `npm`) on `PATH`. It copies the suite from `CACHE_TESTS_DIR` (default
`../shared/cache-tests`, beside the clone) to `work-conformance/cache-tests` and installs its
dependencies there with `npm ci` from the committed `conformance/package-lock.json` (only when they
changed). It then builds `larder` (debug; `--release` for an optimised build, `--larder PATH` to use a
binary already built), starts the suite's origin
server and `larder --upstream http://127.0.0.1:<origin> --listen 127.0.0.1:<proxy>` on free loopback
ports, and runs the suite's command-line client against the proxy. Results go to
`work-conformance/results.json`, logs beside them. Every child process is stopped when the command
ends, fails or is interrupted, and runs under a time limit (`--timeout`, 300 s by default).

Results are scored with the suite's own code, as cache-tests.fyi scores them: a test whose
dependency did not pass does not count as passed, and a check answered \"yes\" counts as passed.
Browser-only tests are not counted (the client does not run them). The peers' figures are scored
the same way from the published results in the suite's `results/` folder.

`conformance/baseline.txt` lists the required and optimal tests larder passes. A run fails when one
of them no longer passes; such tests are first re-run once, with their dependencies, so a single
timing hiccup does not fail CI. `cargo xtask ci` runs it with `--check`.

";

fn summary_table(out: &mut String, scores: &Scores) {
    let _ = writeln!(
        out,
        "\n## Summary\n\n\
         Passes of totals. \"All\" adds required and optimal passes and checks answered \"yes\", as\n\
         cache-tests.fyi counts them.\n\n\
         | Implementation | Required | Optimal | Check (yes) | All |\n\
         |---|--:|--:|--:|--:|"
    );
    for (i, implementation) in scores.impls.iter().enumerate() {
        let t = scores.tally(i, None);
        let name = if implementation.version.is_empty() {
            implementation.name.clone()
        } else {
            format!("{} {}", implementation.name, implementation.version)
        };
        let row = [
            cell(&name),
            fraction(t.passed(Kind::Required), t.total(Kind::Required)),
            fraction(t.passed(Kind::Optimal), t.total(Kind::Optimal)),
            fraction(t.passed(Kind::Check), t.total(Kind::Check)),
            fraction(t.passed_all(), t.total_all()),
        ];
        if i == 0 {
            let bold: Vec<String> = row.iter().map(|c| format!("**{c}**")).collect();
            let _ = writeln!(out, "| {} |", bold.join(" | "));
        } else {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
    }
}

fn group_table(out: &mut String, scores: &Scores) {
    let _ = writeln!(
        out,
        "\n## By group\n\n\
         Each cell is required/optimal/check passes; \"Tests\" gives the group's totals.\n"
    );
    let names: Vec<String> = scores.impls.iter().map(|i| cell(&i.name)).collect();
    let _ = writeln!(out, "| Group | Tests | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|--:|{}", "--:|".repeat(names.len()));
    let triple = |t: &super::score::Tally, passed: bool| {
        let pick = |k| if passed { t.passed(k) } else { t.total(k) };
        format!(
            "{}/{}/{}",
            pick(Kind::Required),
            pick(Kind::Optimal),
            pick(Kind::Check)
        )
    };
    for (s, suite) in scores.suites.iter().enumerate() {
        let totals = scores.tally(0, Some(s));
        if totals.total_all() == 0 {
            continue;
        }
        let cells: Vec<String> = (0..scores.impls.len())
            .map(|i| {
                let text = triple(&scores.tally(i, Some(s)), true);
                if i == 0 { format!("**{text}**") } else { text }
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            cell(&suite.name),
            triple(&totals, false),
            cells.join(" | ")
        );
    }
}

fn failing_table(
    out: &mut String,
    scores: &Scores,
    reasons: &BTreeMap<String, String>,
    kind: Kind,
) {
    let failing: Vec<_> = scores
        .tests
        .iter()
        .filter(|t| t.kind == kind)
        .map(|t| (t, scores.verdict(0, &t.id)))
        .filter(|(_, v)| !v.is_pass())
        .collect();
    let _ = writeln!(
        out,
        "\n## Failing {} tests ({})\n",
        kind.as_str(),
        failing.len()
    );
    if failing.is_empty() {
        let _ = writeln!(out, "None.");
        return;
    }
    let _ = writeln!(out, "| Group | Test | Result | Reason |\n|---|---|---|---|");
    for (test, verdict) in failing {
        let _ = writeln!(
            out,
            "| {} | `{}`: {} | {} | {} |",
            cell(&scores.suites[test.suite].name),
            test.id,
            cell(&test.name),
            outcome_label(&verdict.outcome),
            cell(reason(reasons, &test.id, &verdict)),
        );
    }
}

fn checks_table(out: &mut String, scores: &Scores) {
    let checks: Vec<_> = scores
        .tests
        .iter()
        .filter(|t| t.kind == Kind::Check)
        .collect();
    let _ = writeln!(
        out,
        "\n## Checks\n\n\
         Checks ask how a cache behaves where the specification leaves a choice; neither answer is a\n\
         failure.\n\n\
         <details><summary>larder's answers to the {} checks</summary>\n\n\
         | Group | Test | Answer |\n|---|---|---|",
        checks.len()
    );
    for test in checks {
        let verdict = scores.verdict(0, &test.id);
        let _ = writeln!(
            out,
            "| {} | `{}`: {} | {} |",
            cell(&scores.suites[test.suite].name),
            test.id,
            cell(&test.name),
            outcome_label(&verdict.outcome),
        );
    }
    let _ = writeln!(out, "\n</details>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_ids_and_text_and_reject_bare_lines() {
        let dir = std::env::temp_dir().join(format!("xtask-reasons-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("reasons.txt");
        std::fs::write(
            &path,
            "# comment\n\nvary-syntax-empty-star: by design: see RFC\n",
        )
        .expect("write");
        let reasons = read_reasons(&path).expect("parses");
        assert_eq!(
            reasons.get("vary-syntax-empty-star").map(String::as_str),
            Some("by design: see RFC")
        );
        std::fs::write(&path, "just words\n").expect("write");
        assert!(read_reasons(&path).is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn baseline_round_trips() {
        let ids = BTreeSet::from(["b".to_owned(), "a".to_owned()]);
        let dir = std::env::temp_dir().join(format!("xtask-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("baseline.txt");
        std::fs::write(&path, baseline_text(&ids)).expect("write");
        assert_eq!(read_baseline(&path).expect("reads"), Some(ids));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn run_info_round_trips() {
        let info = RunInfo {
            date: "2026-01-01 00:00 UTC".to_owned(),
            commit: "`abc`".to_owned(),
            suite: "suite".to_owned(),
            proxy: "larder --upstream x".to_owned(),
            seconds: Some((70.5, 61.0)),
            passed_on_retry: vec!["a".to_owned(), "b".to_owned()],
        };
        let back = RunInfo::from_text(&info.to_text()).expect("reads back");
        assert_eq!(back.to_text(), info.to_text());
        assert!(RunInfo::from_text("date\tx\n").is_none());
        assert!(RunInfo::from_text("bogus line\n").is_none());
    }

    #[test]
    fn cells_escape_pipes_and_tags() {
        assert_eq!(cell("a|b <c>"), "a\\|b &lt;c>");
    }
}
