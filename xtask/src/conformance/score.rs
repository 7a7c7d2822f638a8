//! Pass counts by kind and by group, from the lines `conformance/score.mjs` prints.
//!
//! Classifying each result is left to the suite's own code (`determineTestResult`, run by
//! `score.mjs`), so a test whose dependency failed counts exactly as cache-tests.fyi counts it.
//! This module only reads those verdicts and adds them up.

use std::collections::{BTreeSet, HashMap};

/// What a test checks, as the suite labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Conformance: failing it breaks a requirement of the specification.
    Required,
    /// Optimal behaviour, usually reusing a stored response when allowed.
    Optimal,
    /// A question about behaviour; "yes" counts as passed for dependencies.
    Check,
}

impl Kind {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "required" => Ok(Kind::Required),
            "optimal" => Ok(Kind::Optimal),
            "check" => Ok(Kind::Check),
            other => Err(format!("unknown test kind `{other}`")),
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Required => "required",
            Kind::Optimal => "optimal",
            Kind::Check => "check",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Required => 0,
            Kind::Optimal => 1,
            Kind::Check => 2,
        }
    }
}

/// A test group: one file of the suite.
#[derive(Debug)]
pub(super) struct Suite {
    pub(super) id: String,
    pub(super) name: String,
}

/// One test of the suite.
#[derive(Debug)]
pub(super) struct Test {
    pub(super) suite: usize,
    pub(super) id: String,
    pub(super) kind: Kind,
    pub(super) depends_on: Vec<String>,
    pub(super) name: String,
}

/// One test's verdict for one implementation.
#[derive(Debug, Clone)]
pub(super) struct Verdict {
    /// The suite's result type: `pass`, `fail`, `optional_fail`, `yes`, `no`, `setup_fail`,
    /// `harness_fail`, `dependency_fail`, `retry` or `untested`.
    pub(super) outcome: String,
    /// The failure message, or which dependencies failed.
    pub(super) message: String,
}

impl Verdict {
    /// Passed as cache-tests.fyi counts it (a check answered "yes" counts too).
    pub(super) fn is_pass(&self) -> bool {
        self.outcome == "pass" || self.outcome == "yes"
    }
}

/// An implementation's verdicts: larder's run first, then the published peers.
#[derive(Debug)]
pub(super) struct Implementation {
    pub(super) name: String,
    pub(super) version: String,
    pub(super) verdicts: HashMap<String, Verdict>,
}

/// Passes and totals per kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    pub(super) passed: [usize; 3],
    pub(super) total: [usize; 3],
}

impl Tally {
    pub(super) fn passed(&self, kind: Kind) -> usize {
        self.passed[kind.index()]
    }

    pub(super) fn total(&self, kind: Kind) -> usize {
        self.total[kind.index()]
    }

    pub(super) fn passed_all(&self) -> usize {
        self.passed.iter().sum()
    }

    pub(super) fn total_all(&self) -> usize {
        self.total.iter().sum()
    }
}

/// The suite's tests and every implementation's verdicts.
#[derive(Debug)]
pub(super) struct Scores {
    pub(super) suites: Vec<Suite>,
    pub(super) tests: Vec<Test>,
    pub(super) impls: Vec<Implementation>,
}

impl Scores {
    /// Parses `score.mjs` output.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let mut scores = Scores {
            suites: Vec::new(),
            tests: Vec::new(),
            impls: Vec::new(),
        };
        for (n, line) in text.lines().enumerate() {
            scores
                .parse_line(line)
                .map_err(|e| format!("score.mjs output line {}: {e}: {line:?}", n + 1))?;
        }
        if scores.tests.is_empty() {
            return Err("score.mjs printed no tests".to_owned());
        }
        scores.sort_peers();
        Ok(scores)
    }

    fn parse_line(&mut self, line: &str) -> Result<(), String> {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            [""] => {}
            ["suite", id, name] => self.suites.push(Suite {
                id: (*id).to_owned(),
                name: (*name).to_owned(),
            }),
            ["test", suite, id, kind, depends_on, name] => {
                let suite = self
                    .suites
                    .iter()
                    .position(|s| s.id == *suite)
                    .ok_or_else(|| format!("test of unknown group `{suite}`"))?;
                self.tests.push(Test {
                    suite,
                    id: (*id).to_owned(),
                    kind: Kind::parse(kind)?,
                    depends_on: depends_on
                        .split(',')
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    name: (*name).to_owned(),
                });
            }
            ["impl", index, name, version, _kind] => {
                if index.parse::<usize>().ok() != Some(self.impls.len()) {
                    return Err("implementations out of order".to_owned());
                }
                self.impls.push(Implementation {
                    name: (*name).to_owned(),
                    version: (*version).to_owned(),
                    verdicts: HashMap::new(),
                });
            }
            ["result", index, id, outcome, message] => {
                let implementation = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.impls.get_mut(i))
                    .ok_or_else(|| format!("result for unknown implementation {index}"))?;
                implementation.verdicts.insert(
                    (*id).to_owned(),
                    Verdict {
                        outcome: (*outcome).to_owned(),
                        message: (*message).to_owned(),
                    },
                );
            }
            _ => return Err("unexpected line".to_owned()),
        }
        Ok(())
    }

    /// Orders the peers (every implementation after the first) by required, then optimal passes.
    fn sort_peers(&mut self) {
        if self.impls.len() < 2 {
            return;
        }
        let peers: Vec<Implementation> = self.impls.drain(1..).collect();
        let mut keyed: Vec<((usize, usize), Implementation)> = peers
            .into_iter()
            .map(|imp| {
                let t = self.tally_of(&imp.verdicts, None);
                ((t.passed(Kind::Required), t.passed(Kind::Optimal)), imp)
            })
            .collect();
        // Stable, so equal figures keep the suite's order.
        keyed.sort_by_key(|k| std::cmp::Reverse(k.0));
        self.impls.extend(keyed.into_iter().map(|(_, imp)| imp));
    }

    /// Counts of one implementation, over all tests or the tests of one group.
    pub(super) fn tally(&self, implementation: usize, suite: Option<usize>) -> Tally {
        self.tally_of(&self.impls[implementation].verdicts, suite)
    }

    fn tally_of(&self, verdicts: &HashMap<String, Verdict>, suite: Option<usize>) -> Tally {
        let mut tally = Tally::default();
        for test in &self.tests {
            if suite.is_some_and(|s| s != test.suite) {
                continue;
            }
            let k = test.kind.index();
            tally.total[k] += 1;
            if verdicts.get(&test.id).is_some_and(Verdict::is_pass) {
                tally.passed[k] += 1;
            }
        }
        tally
    }

    /// One implementation's verdict on a test (`untested` when it has none).
    pub(super) fn verdict(&self, implementation: usize, test: &str) -> Verdict {
        self.impls[implementation]
            .verdicts
            .get(test)
            .cloned()
            .unwrap_or_else(|| Verdict {
                outcome: "untested".to_owned(),
                message: "no result".to_owned(),
            })
    }

    /// The required and optimal tests an implementation passes: what the baseline holds.
    pub(super) fn baseline_ids(&self, implementation: usize) -> BTreeSet<String> {
        self.tests
            .iter()
            .filter(|t| t.kind != Kind::Check)
            .filter(|t| self.verdict(implementation, &t.id).is_pass())
            .map(|t| t.id.clone())
            .collect()
    }

    /// `ids` and everything they depend on, transitively.
    pub(super) fn with_dependencies(&self, ids: &BTreeSet<String>) -> BTreeSet<String> {
        let by_id: HashMap<&str, &Test> = self.tests.iter().map(|t| (t.id.as_str(), t)).collect();
        let mut out = BTreeSet::new();
        let mut todo: Vec<&str> = ids.iter().map(String::as_str).collect();
        while let Some(id) = todo.pop() {
            if out.insert(id.to_owned())
                && let Some(test) = by_id.get(id)
            {
                todo.extend(test.depends_on.iter().map(String::as_str));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
suite\tg\tGroup
test\tg\ta\tcheck\t\tA?
test\tg\tb\toptimal\ta\tB
test\tg\tc\trequired\tb\tC
impl\t0\tlarder\t\t
result\t0\ta\tyes\t
result\t0\tb\tpass\t
result\t0\tc\tfail\tResponse 2 does not come from cache
";

    #[test]
    fn tallies_count_passes_and_yes_answers_by_kind() {
        let scores = Scores::parse(SAMPLE).expect("sample parses");
        let tally = scores.tally(0, None);
        assert_eq!(tally.passed, [0, 1, 1]);
        assert_eq!(tally.total, [1, 1, 1]);
        assert_eq!(scores.tally(0, Some(0)), tally);
        assert_eq!(
            scores.baseline_ids(0).into_iter().collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn dependencies_are_followed_transitively() {
        let scores = Scores::parse(SAMPLE).expect("sample parses");
        let ids = scores.with_dependencies(&BTreeSet::from(["c".to_owned()]));
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(Scores::parse("test\tnowhere\tx\trequired\t\tX\n").is_err());
        assert!(Scores::parse("suite\tg\tG\ntest\tg\tx\tmaybe\t\tX\n").is_err());
        assert!(Scores::parse("bogus\n").is_err());
    }
}
