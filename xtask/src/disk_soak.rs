//! `cargo xtask disk-soak`: the disk tier's long tests: the `kill -9` loop with many rounds, a
//! 1 GiB object with bounded memory, and a start over 100 000 stored objects, each printing
//! its figures. CI runs the same tests in their bounded forms (`cargo xtask ci`).

use crate::util::{cargo, run};

const USAGE: &str = "\
usage: cargo xtask disk-soak [--rounds N] [--big-bytes N] [--objects N] [--release]

  --rounds N      kill -9 rounds during concurrent fills (default 30; CI runs 4)
  --big-bytes N   size of the large object, in bytes (default 1 GiB; CI uses 256 MiB)
  --objects N     objects stored before the start-up measurement (default 100000; CI 10000)
  --release       build and run the tests optimised (start-up figures worth recording)
";

/// The tests it runs, as libtest filters on `larder-server`'s `it` suite.
const TESTS: &[&str] = &["disk::crash::", "disk::large::", "disk::startup::"];

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let mut rounds = "30".to_owned();
    let mut big = (1u64 << 30).to_string();
    let mut objects = "100000".to_owned();
    let mut release = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<String, String> {
            let v = it.next().ok_or(format!("{name} needs a value\n{USAGE}"))?;
            v.parse::<u64>()
                .map_err(|_| format!("{name} {v}: not a number\n{USAGE}"))?;
            Ok(v.clone())
        };
        match arg.as_str() {
            "--rounds" => rounds = value("--rounds")?,
            "--big-bytes" => big = value("--big-bytes")?,
            "--objects" => objects = value("--objects")?,
            "--release" => release = true,
            "--help" | "-h" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    let mut cmd = cargo();
    cmd.args(["test", "-p", "larder-server", "--test", "it", "--locked"]);
    if release {
        cmd.arg("--release");
    }
    // One test at a time: each measures the machine, and the figures are printed.
    cmd.args(["--", "--test-threads=1", "--nocapture"])
        .args(TESTS)
        .env("LARDER_DISK_KILL_ROUNDS", &rounds)
        .env("LARDER_DISK_BIG_BYTES", &big)
        .env("LARDER_DISK_STARTUP_OBJECTS", &objects);
    run(
        &format!("disk soak: {rounds} kill rounds, {big} byte object, {objects} objects"),
        &mut cmd,
    )
}
