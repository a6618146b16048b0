//! Command-line interface: argument definitions and dispatch.

mod ring_plan;

use clap::{Parser, Subcommand};

/// Quorra: a masterless, Dynamo-style key-value store.
#[derive(Parser, Debug)]
#[command(name = "quorra", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Inspect and plan the placement ring.
    #[command(subcommand)]
    Ring(RingCommand),
}

#[derive(Subcommand, Debug)]
enum RingCommand {
    /// Preview a cluster: per-node share of partition-replicas, balance, and
    /// what adding nodes would move.
    Plan(ring_plan::PlanArgs),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Arguments that parse but make no sense together.
    #[error("{0}")]
    Usage(String),
    /// The ring could not be built.
    #[error(transparent)]
    Ring(#[from] quorra_ring::RingError),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(std::io::Error),
    /// The reader of our output went away (e.g. `| head`): not an error.
    #[error("broken pipe")]
    BrokenPipe,
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Output(e)
        }
    }
}

/// Runs a parsed command line.
pub(crate) fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Ring(RingCommand::Plan(args)) => ring_plan::run(&args),
    }
}
