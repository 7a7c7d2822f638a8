//! `cargo xtask fuzz`: every cargo-fuzz target in `fuzz/`, each for a bounded time.
//!
//! cargo-fuzz needs nightly-only compiler flags (sanitizers); the pinned stable toolchain
//! accepts them with `RUSTC_BOOTSTRAP=1`, which this command sets for the fuzz build only.
//! libFuzzer reads the committed seeds in `fuzz/corpus/<target>` and writes what it finds to
//! `fuzz/work-corpus/<target>` (not committed), so a run never changes the repository.

use std::fs;
use std::path::Path;

use crate::util::{cargo, has_command, root, run};

const USAGE: &str = "\
usage: cargo xtask fuzz [--time SECS] [--target NAME]... [--build-only]

  --time SECS     how long each target runs (default 60)
  --target NAME   run only this target (repeatable; default: every file in fuzz/fuzz_targets)
  --build-only    build the targets, run nothing
";

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let mut seconds: u64 = 60;
    let mut only: Vec<String> = Vec::new();
    let mut build_only = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--time" => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--time needs seconds\n{USAGE}"))?;
                seconds = value
                    .parse()
                    .map_err(|_| format!("--time: `{value}` is not a number of seconds"))?;
            }
            "--target" => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--target needs a name\n{USAGE}"))?;
                only.push(value.clone());
            }
            "--build-only" => build_only = true,
            "--help" | "-h" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }

    let fuzz_dir = root().join("fuzz");
    let targets = list_targets(&fuzz_dir.join("fuzz_targets"))?;
    for name in &only {
        if !targets.contains(name) {
            return Err(format!(
                "no fuzz target `{name}`; targets: {}",
                targets.join(", ")
            ));
        }
    }
    let selected: Vec<&String> = targets
        .iter()
        .filter(|t| only.is_empty() || only.contains(t))
        .collect();

    if !has_command("cargo", &["fuzz", "--version"]) {
        run(
            "install cargo-fuzz",
            cargo().args(["install", "--locked", "cargo-fuzz"]),
        )?;
    }
    run(
        "fuzz: build",
        cargo()
            .current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "build"]),
    )?;
    if build_only {
        return Ok(());
    }
    for target in selected {
        let seeds = fuzz_dir.join("corpus").join(target);
        let work = fuzz_dir.join("work-corpus").join(target);
        let artifacts = fuzz_dir.join("artifacts").join(target);
        for dir in [&seeds, &work, &artifacts] {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let mut cmd = cargo();
        cmd.current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", target])
            .arg(&work)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1");
        run(&format!("fuzz: {target} for {seconds}s"), &mut cmd)?;
    }
    Ok(())
}

/// The target names: one per `.rs` file in `fuzz/fuzz_targets`, sorted.
fn list_targets(dir: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    Ok(names)
}
