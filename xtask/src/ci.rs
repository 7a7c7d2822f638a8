//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.

use std::time::Instant;

use crate::util::{cargo, has_command, run};

/// Facade features that must each compile alone.
const FACADE_FEATURES: &[&str] = &[
    "cache-control",
    "eviction",
    "storage",
    "cache",
    "memory-cache",
    "proxy",
    "redis",
    "disk",
    "full",
];

/// How long CI runs each fuzz target (`cargo xtask fuzz --time N` runs longer).
const FUZZ_SECONDS: &str = "10";

/// The facade's examples; each runs to completion and checks its own result.
const EXAMPLES: &[&str] = &[
    "memory_cache",
    "custom_storage",
    "layer",
    "port_storage",
    "port_cache_filter",
];

pub(crate) fn main(_args: &[String]) -> Result<(), String> {
    prerequisites()?;
    run("fmt", cargo().args(["fmt", "--all", "--check"]))?;
    run(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    if has_command("cargo", &["nextest", "--version"]) {
        run(
            "test",
            cargo().args([
                "nextest",
                "run",
                "--workspace",
                "--all-features",
                "--locked",
                "--no-fail-fast",
            ]),
        )?;
        run(
            "doctest",
            cargo().args(["test", "--workspace", "--all-features", "--locked", "--doc"]),
        )?;
    } else {
        run(
            "test",
            cargo().args(["test", "--workspace", "--all-features", "--locked"]),
        )?;
    }
    run(
        "doc",
        cargo()
            .args([
                "doc",
                "--workspace",
                "--all-features",
                "--no-deps",
                "--locked",
            ])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    eprintln!("==> conformance: the HTTP caching test suite against larder");
    crate::conformance::main(&["--check".to_owned()])?;
    run(
        "facade: no features",
        cargo().args(["check", "-p", "larder", "--no-default-features", "--locked"]),
    )?;
    for feature in FACADE_FEATURES {
        run(
            &format!("facade: feature {feature} alone"),
            cargo().args([
                "check",
                "-p",
                "larder",
                "--no-default-features",
                "--features",
                feature,
                "--locked",
            ]),
        )?;
    }
    for example in EXAMPLES {
        run(
            &format!("example {example}"),
            cargo().args([
                "run",
                "--quiet",
                "-p",
                "larder",
                "--features",
                "full",
                "--locked",
                "--example",
                example,
            ]),
        )?;
    }
    bench_smoke()?;
    eprintln!("==> fuzz: every target briefly, from its committed seeds");
    crate::fuzz::main(&["--time".to_owned(), FUZZ_SECONDS.to_owned()])?;
    deny()?;
    Ok(())
}

/// `cargo xtask bench --quick`: every benchmark builds and runs once, briefly (a smoke test;
/// its figures gate nothing and its report goes beside the benches' build, never to
/// `docs/benchmarks.md`). Fails when a bench does not build, panics or a server misbehaves.
fn bench_smoke() -> Result<(), String> {
    let step = "bench --quick";
    let started = Instant::now();
    eprintln!("==> {step}: the benchmarks as a smoke test");
    let result = crate::bench::main(&["--quick".to_owned()]);
    eprintln!(
        "<== {step}: {} in {:.1}s",
        if result.is_ok() { "ok" } else { "failed" },
        started.elapsed().as_secs_f64()
    );
    result.map_err(|e| format!("{step}: {e}"))
}

/// Programs the tests need that a fresh machine may lack: `redis-server` for the Redis tier's
/// tests. Installed with Debian's apt when missing (CI runs as root).
fn prerequisites() -> Result<(), String> {
    if has_command("redis-server", &["--version"]) {
        return Ok(());
    }
    if !has_command("apt-get", &["--version"]) {
        return Err("redis-server is missing and apt-get is not available to install it".into());
    }
    run(
        "apt-get update",
        std::process::Command::new("apt-get").args(["update", "-qq"]),
    )?;
    run(
        "install redis-server",
        std::process::Command::new("apt-get")
            .args(["install", "-y", "-qq", "redis-server"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// cargo-deny: licenses, bans and sources. Advisories need the network, so they are not checked.
fn deny() -> Result<(), String> {
    if !has_command("cargo", &["deny", "--version"]) {
        run(
            "install cargo-deny",
            cargo().args(["install", "--locked", "cargo-deny"]),
        )?;
    }
    run(
        "deny",
        cargo().args([
            "deny",
            "--all-features",
            "check",
            "licenses",
            "bans",
            "sources",
        ]),
    )
}
