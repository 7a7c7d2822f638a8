//! `criterion_summary`: criterion's JSON results as tab-separated lines, for `cargo xtask bench`.
//!
//! ```text
//! criterion_summary <target>/criterion [--since <unix seconds>]
//! ```
//!
//! Walks the directory for `new/benchmark.json` (criterion's description of one benchmark) and
//! the `new/estimates.json` beside it, and prints one line per benchmark:
//!
//! ```text
//! group<TAB>function<TAB>value<TAB>median_ns<TAB>mean_ns<TAB>throughput_kind<TAB>throughput_n
//! ```
//!
//! `function` and `value` are empty when the benchmark has none; `throughput_kind` is
//! `elements`, `bytes` or empty. With `--since`, results written before that time (earlier runs)
//! are left out.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

fn find(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "new") {
                let json = path.join("benchmark.json");
                if json.is_file() {
                    out.push(path);
                }
            } else {
                find(&path, out)?;
            }
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .replace(['\t', '\n'], " ")
}

fn line(new: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let bench = read(&new.join("benchmark.json"))?;
    let est = read(&new.join("estimates.json"))?;
    let point = |name: &str| {
        est.get(name)
            .and_then(|e| e.get("point_estimate"))
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("{}: no {name} estimate", new.display()))
    };
    let (kind, n) = match bench.get("throughput").and_then(Value::as_object) {
        Some(t) => {
            let (kind, n) = t.iter().next().ok_or("empty throughput")?;
            let kind = if kind.starts_with("Bytes") {
                "bytes"
            } else {
                "elements"
            };
            (kind, n.as_u64().unwrap_or_default().to_string())
        }
        None => ("", String::new()),
    };
    Ok(format!(
        "{}\t{}\t{}\t{}\t{}\t{kind}\t{n}",
        text(&bench, "group_id"),
        text(&bench, "function_id"),
        text(&bench, "value_str"),
        point("median")?,
        point("mean")?,
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut since = UNIX_EPOCH;
    while let Some(arg) = args.next() {
        if arg == "--since" {
            let secs: u64 = args.next().ok_or("--since needs seconds")?.parse()?;
            since = UNIX_EPOCH + Duration::from_secs(secs);
        } else {
            dir = Some(PathBuf::from(arg));
        }
    }
    let dir = dir.ok_or("usage: criterion_summary <criterion dir> [--since SECS]")?;
    let mut found = Vec::new();
    if dir.is_dir() {
        find(&dir, &mut found)?;
    }
    found.sort();
    for new in found {
        let written = std::fs::metadata(new.join("estimates.json"))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if written < since {
            continue;
        }
        match line(&new) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("criterion_summary: skipped: {e}"),
        }
    }
    Ok(())
}
