//! Architecture invariants, checked as ordinary tests (run by `cargo test --workspace`, so by
//! `cargo xtask ci`):
//!
//! - [`no_import_circles`]: no source file of a crate imports a file that imports it, through
//!   any chain.
//! - [`crate_graph_matches_architecture_md`]: the dependencies among workspace crates are the
//!   ones ARCHITECTURE.md draws.
//! - [`no_long_files`]: no source file over [`MAX_LINES`] lines.
//!
//! Each has an allowlist of today's exceptions; a list may only shrink, and an entry that no
//! longer applies fails the test so that it is removed.

mod tidy {
    pub(crate) mod crates;
    pub(crate) mod imports;
}

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tidy::crates::{DEV_ONLY, drawn_graph, manifest_graph};
use tidy::imports::{circles, module_tree};

/// Import circles that exist today, as `crate: [files]` (paths under the crate's `src/`, in
/// any order). This list must only shrink: remove an entry when its circle is broken, never
/// add one.
const KNOWN_CIRCLES: &[(&str, &[&str])] = &[];

/// The longest a source file may be.
const MAX_LINES: usize = 600;

/// Source files allowed over [`MAX_LINES`] today, with the reason. This list must only shrink:
/// remove a file once it is split, never add one without a reason a reviewer accepts.
const LONG_FILES: &[(&str, &str)] = &[
    (
        "crates/larder-proxy/tests/it/cache.rs",
        "integration tests; moving onto the shared test kit",
    ),
    (
        "crates/larder-storage-redis/tests/it/storage.rs",
        "integration tests; moving onto the shared test kit",
    ),
    (
        "crates/larder-cache/tests/it/flows.rs",
        "integration tests; moving onto the shared test kit",
    ),
    (
        "crates/larder/tests/reliability/framing.rs",
        "reliability suite; moving onto the shared test kit",
    ),
    (
        "fuzz/fuzz_targets/request_flow.rs",
        "one fuzz target must be one file; it models the whole request flow",
    ),
    (
        "xtask/src/conformance.rs",
        "the conformance runner (start, run, score); to split by step",
    ),
    (
        "xtask/src/bench/report.rs",
        "benchmark report tables; to split by table",
    ),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The workspace members: (package name, directory).
fn members() -> Vec<(String, PathBuf)> {
    let root = root();
    tidy::crates::members(&read(&root.join("Cargo.toml")))
        .into_iter()
        .map(|dir| {
            let dir = root.join(dir);
            let name = tidy::crates::package_name(&read(&dir.join("Cargo.toml")));
            (name, dir)
        })
        .collect()
}

/// No file of any crate imports a file that imports it: `crate::`, `super::` and `self::`
/// paths (grouped ones too) and paths through a child module count as imports; comments,
/// doc links, strings and `mod child;` declarations do not.
#[test]
fn no_import_circles() {
    let mut found: BTreeMap<String, Vec<BTreeSet<String>>> = BTreeMap::new();
    for (name, dir) in members() {
        let src = dir.join("src");
        let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .filter(|p| p.exists())
            .collect();
        if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
            roots.extend(bins.filter_map(Result::ok).map(|e| e.path()));
        }
        for root in roots {
            let tree = module_tree(&root);
            for circle in circles(&tree) {
                let files = circle
                    .iter()
                    .map(|f| {
                        f.strip_prefix(&src)
                            .unwrap_or(f)
                            .to_string_lossy()
                            .replace('\\', "/")
                    })
                    .collect();
                found.entry(name.clone()).or_default().push(files);
            }
        }
    }
    let known: BTreeMap<String, Vec<BTreeSet<String>>> =
        KNOWN_CIRCLES
            .iter()
            .fold(BTreeMap::new(), |mut map, (krate, files)| {
                map.entry((*krate).to_owned())
                    .or_insert_with(Vec::new)
                    .push(files.iter().map(|f| (*f).to_owned()).collect());
                map
            });
    let show = |m: &BTreeMap<String, Vec<BTreeSet<String>>>| {
        let mut out = String::new();
        for (k, circles) in m {
            for c in circles {
                let _ = writeln!(out, "  {k}: {c:?}");
            }
        }
        out
    };
    assert!(
        found == known,
        "import circles (files that import each other, through any chain) differ from \
         KNOWN_CIRCLES, which may only shrink.\nfound:\n{}known:\n{}",
        show(&found),
        show(&known)
    );
}

/// The normal dependencies among workspace crates (from each `Cargo.toml`: `[dependencies]`
/// and target-specific ones, optional ones included; not dev- or build-dependencies) are the
/// edges of the `crate-graph` block of ARCHITECTURE.md. Dev-only crates ([`DEV_ONLY`]: test
/// kits and tools that no crate has as a normal dependency) need not be drawn.
#[test]
fn crate_graph_matches_architecture_md() {
    let members = members();
    let names: BTreeSet<String> = members.iter().map(|(n, _)| n.clone()).collect();
    let actual = manifest_graph(&members, &names, read);
    let drawn = drawn_graph(&read(&root().join("ARCHITECTURE.md")));
    for dev in DEV_ONLY {
        for (krate, deps) in &actual {
            assert!(
                !deps.contains(*dev),
                "{krate} depends on {dev}, listed as dev-only in DEV_ONLY"
            );
        }
    }
    let actual: BTreeMap<_, _> = actual
        .into_iter()
        .filter(|(k, _)| !DEV_ONLY.contains(&k.as_str()) || drawn.contains_key(k))
        .collect();
    let show = |g: &BTreeMap<String, BTreeSet<String>>| {
        g.iter().fold(String::new(), |mut out, (k, deps)| {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            let _ = writeln!(out, "  {k} -> {}", deps.join(", "));
            out
        })
    };
    assert!(
        actual == drawn,
        "ARCHITECTURE.md's crate-graph block differs from the Cargo.toml files.\n\
         Cargo.toml files:\n{}ARCHITECTURE.md:\n{}",
        show(&actual),
        show(&drawn)
    );
}

/// Every `.rs` file of the repository, except build output and fuzz corpora.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !matches!(
                name.to_str(),
                Some("target" | ".git" | "node_modules" | "corpus" | "artifacts")
            ) {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// No source file is longer than [`MAX_LINES`] lines, except those in [`LONG_FILES`], each
/// of which still is (so the list shrinks as files are split).
#[test]
fn no_long_files() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut too_long = Vec::new();
    let mut over: BTreeSet<String> = BTreeSet::new();
    for file in files {
        let rel = file
            .strip_prefix(&root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        let lines = read(&file).lines().count();
        if lines > MAX_LINES {
            over.insert(rel.clone());
            if !LONG_FILES.iter().any(|(f, _)| *f == rel) {
                too_long.push(format!("  {rel}: {lines} lines"));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "files over {MAX_LINES} lines (split them by concern):\n{}",
        too_long.join("\n")
    );
    let stale: Vec<&str> = LONG_FILES
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| !over.contains(*f))
        .collect();
    assert!(
        stale.is_empty(),
        "LONG_FILES entries now within {MAX_LINES} lines (or gone): remove them: {stale:?}"
    );
}
