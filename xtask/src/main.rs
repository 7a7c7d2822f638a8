//! `cargo xtask`: the one entry point for the project's routine jobs.
//!
//! Each subcommand lives in its own module; `ci` is what `.ci/run` runs.

mod ci;
mod conformance;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  ci            formatting, lints, tests (with doc tests), docs, cargo-deny, feature checks
  conformance   the HTTP caching test suite against the larder proxy (see docs/conformance.md)
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
        "ci" => ci::main(rest),
        "conformance" => conformance::main(rest),
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
