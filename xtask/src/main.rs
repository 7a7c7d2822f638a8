//! `cargo xtask`: the one entry point for the project's routine jobs.
//!
//! Each subcommand lives in its own module; `ci` is what `.ci/run` runs.

mod bench;
mod ci;
mod conformance;
mod disk_soak;
mod fuzz;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  bench         criterion suites and HTTP load runs beside their peers; writes docs/benchmarks.md
  ci            formatting, lints, tests (with doc tests), docs, conformance, feature checks,
                examples, benchmarks as a smoke test (bench --quick), fuzzing, cargo-deny
  conformance   the HTTP caching test suite against the larder proxy (see docs/conformance.md)
  disk-soak     the disk tier's long tests: many kill -9 rounds, a 1 GiB object, a start over
                100 000 stored objects; prints their figures (--help for the sizes)
  fuzz          every cargo-fuzz target for a bounded time (--time SECS, default 60)
  help          this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "bench" => bench::main(rest),
        "ci" => ci::main(rest),
        "conformance" => conformance::main(rest),
        "disk-soak" => disk_soak::main(rest),
        "fuzz" => fuzz::main(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
