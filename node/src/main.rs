//! The `quorra` command: the peer daemon and the operator's tools.
//!
//! Each subcommand lives in its own module under `cli/`; this file only
//! parses the command line and maps errors to exit codes (0 ok, 1 failed,
//! 2 bad usage, as clap does).

mod cli;

/// mimalloc rather than the system allocator: measured faster on the
/// node's many small allocations (decoded objects, messages, engine
/// blocks); see the workspace manifest.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(cli::CliError::BrokenPipe) => ExitCode::SUCCESS,
        Err(e @ cli::CliError::Usage(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
