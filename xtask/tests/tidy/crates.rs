//! The crate dependency graph: read from the `Cargo.toml` files and from ARCHITECTURE.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Workspace crates that are only ever dev-dependencies or tools (test kits, `xtask`): the
/// crate graph of ARCHITECTURE.md need not draw them (when it does, their edges must match),
/// and no crate may have them as a normal dependency.
pub(crate) const DEV_ONLY: &[&str] = &["xtask", "larder-testkit"];

/// The marker on the line before the fenced block of ARCHITECTURE.md that lists the graph.
const MARKER: &str = "<!-- crate-graph";

/// A dependency graph: crate → the workspace crates it depends on.
pub(crate) type Graph = BTreeMap<String, BTreeSet<String>>;

/// The `members` of the root `Cargo.toml`'s `[workspace]`.
pub(crate) fn members(root_toml: &str) -> Vec<String> {
    let start = root_toml
        .find("members")
        .and_then(|i| root_toml[i..].find('[').map(|j| i + j + 1))
        .expect("[workspace] members = [...]");
    let end = start + root_toml[start..].find(']').expect("closing ]");
    root_toml[start..end]
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(|l| l.split(','))
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The sections of a TOML file as (header, lines).
fn sections(toml: &str) -> Vec<(String, Vec<&str>)> {
    let mut out = vec![(String::new(), Vec::new())];
    for line in toml.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && !trimmed.starts_with("[[") {
            let header = trimmed.trim_start_matches('[');
            let header = header.split(']').next().unwrap_or_default().trim();
            out.push((header.replace(['"', '\''], ""), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push(trimmed);
        }
    }
    out
}

/// The `name` of `[package]`.
pub(crate) fn package_name(toml: &str) -> String {
    sections(toml)
        .into_iter()
        .find(|(h, _)| h == "package")
        .and_then(|(_, lines)| {
            lines.into_iter().find_map(|l| {
                let (key, value) = l.split_once('=')?;
                (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
            })
        })
        .expect("[package] name")
}

/// The packages a manifest has as normal dependencies (`[dependencies]`,
/// `[target.'…'.dependencies]`, and their `[dependencies.name]` table forms), renamed ones
/// by their `package`.
pub(crate) fn normal_dependencies(toml: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    for (header, lines) in sections(toml) {
        let parts: Vec<&str> = header.split('.').collect();
        let at = if parts.first() == Some(&"target") {
            parts
                .iter()
                .skip(2)
                .position(|p| *p == "dependencies")
                .map(|i| i + 2)
        } else {
            (parts.first() == Some(&"dependencies")).then_some(0)
        };
        let Some(at) = at else { continue };
        if let Some(name) = parts.get(at + 1) {
            // `[dependencies.name]`: the table is one dependency.
            let package = lines.iter().find_map(|l| package_key(l));
            deps.insert(package.unwrap_or_else(|| (*name).to_owned()));
            continue;
        }
        for line in lines {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let name = key.split('.').next().unwrap_or_default().trim();
            if name.is_empty() || name.starts_with('#') {
                continue;
            }
            let package = value
                .split(',')
                .find_map(|kv| package_key(kv.trim().trim_start_matches('{')));
            deps.insert(package.unwrap_or_else(|| name.trim_matches('"').to_owned()));
        }
    }
    deps
}

/// `package = "name"` → `name`.
fn package_key(kv: &str) -> Option<String> {
    let (key, value) = kv.split_once('=')?;
    (key.trim() == "package").then(|| value.trim().trim_matches(['"', '}', ' ']).to_owned())
}

/// The graph among `names` of the `members` manifests, read with `read`.
pub(crate) fn manifest_graph(
    members: &[(String, PathBuf)],
    names: &BTreeSet<String>,
    read: impl Fn(&Path) -> String,
) -> Graph {
    members
        .iter()
        .map(|(name, dir)| {
            let deps = normal_dependencies(&read(&dir.join("Cargo.toml")))
                .into_iter()
                .filter(|d| names.contains(d) && d != name)
                .collect();
            (name.clone(), deps)
        })
        .collect()
}

/// Text without its `( … )` remarks.
fn without_remarks(s: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The graph ARCHITECTURE.md draws: the fenced block after the `<!-- crate-graph` marker,
/// one line a crate, `crate -> dep, dep`; text in parentheses is a remark.
pub(crate) fn drawn_graph(md: &str) -> Graph {
    let after = &md[md
        .find(MARKER)
        .expect("ARCHITECTURE.md has a crate-graph block")..];
    let mut lines = after.lines().skip_while(|l| !l.starts_with("```")).skip(1);
    let mut graph = Graph::new();
    for line in lines.by_ref().take_while(|l| !l.starts_with("```")) {
        let line = without_remarks(line);
        let Some((krate, deps)) = line.split_once("->") else {
            continue;
        };
        let deps = deps
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect();
        let previous = graph.insert(krate.trim().to_owned(), deps);
        assert!(previous.is_none(), "{} drawn twice", krate.trim());
    }
    graph
}

#[test]
fn reads_manifests_and_the_drawing() {
    let manifest = r#"
[package]
name = "a"

[dependencies]
b.workspace = true
c = { workspace = true, optional = true }
renamed = { package = "d", path = "../d" }

[target.'cfg(unix)'.dependencies]
e = "1"

[dependencies.f]
workspace = true

[dev-dependencies]
g.workspace = true

[build-dependencies]
h = "1"
"#;
    assert_eq!(package_name(manifest), "a");
    let deps: Vec<String> = normal_dependencies(manifest).into_iter().collect();
    assert_eq!(deps, ["b", "c", "d", "e", "f"]);

    let md = "text\n<!-- crate-graph: checked -->\n```text\n\
              a (facade) -> b, c (optional)\nb          -> (nothing)\n```\n";
    let graph = drawn_graph(md);
    assert_eq!(graph.len(), 2);
    assert_eq!(graph["a"], BTreeSet::from(["b".to_owned(), "c".to_owned()]));
    assert!(graph["b"].is_empty());

    let root = "[workspace]\nmembers = [\n  \"crates/a\", # the core\n  \"xtask\",\n]\n";
    assert_eq!(members(root), ["crates/a", "xtask"]);
}
