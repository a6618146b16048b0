//! Command-line interface: argument definitions and dispatch.
//!
//! Output meant for people or scripts goes to stdout (tables, `--json`);
//! progress notes and errors go to stderr. Exit codes: 0 success, 1 the
//! operation failed, 2 bad usage.

// This module *is* the program's output.
#![allow(clippy::print_stdout)]

mod bench;
mod bench_resp;
mod cert;
mod client;
mod dev;
mod node;
mod ring_plan;

use clap::{Parser, Subcommand};

/// Quorra: a masterless, Dynamo-style key-value store.
#[derive(Parser, Debug)]
#[command(
    name = "quorra",
    version,
    about = "Quorra: a masterless, Dynamo-style key-value store",
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a local cluster on loopback, for a first try.
    Dev(dev::DevArgs),
    /// Run a node.
    Node(Box<node::NodeArgs>),
    /// Read a key.
    Get(client::GetArgs),
    /// Write a key.
    Put(client::PutArgs),
    /// Delete a key.
    Del(client::DelArgs),
    /// Show the cluster's members, their state and owned share.
    Status(client::StatusArgs),
    /// Show the data moves under way: layouts, who they wait for, and the node's pulls.
    Transfers(client::TransfersArgs),
    /// Generate load and report throughput and latency percentiles.
    Bench(bench::BenchArgs),
    /// Make the node at --peer leave the cluster: it announces leaving, its data moves to the
    /// new owners, then it announces left and stops.
    Leave(client::LeaveArgs),
    /// Announce, through the node at --peer, that a dead node is removed for good.
    Remove(client::RemoveArgs),
    /// Change, on the running node at --peer, how fast it pulls the partitions it gains (until
    /// it restarts; without options, shows the limits).
    Throttle(client::ThrottleArgs),
    /// Make the cluster CA and certificates.
    #[command(subcommand)]
    Cert(cert::CertCommand),
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
    /// The operation failed.
    #[error("{0}")]
    Failed(String),
    /// A client request failed.
    #[error(transparent)]
    Client(#[from] quorra_client::ClientError),
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
        Command::Dev(args) => dev::run(args),
        Command::Node(args) => node::run(*args),
        Command::Get(args) => client::get(args),
        Command::Put(args) => client::put(args),
        Command::Del(args) => client::del(args),
        Command::Status(args) => client::status(args),
        Command::Transfers(args) => client::transfers(args),
        Command::Bench(args) => bench::run(args),
        Command::Leave(args) => client::leave(args),
        Command::Remove(args) => client::remove(args),
        Command::Throttle(args) => client::throttle(args),
        Command::Cert(command) => cert::run(command),
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// For people: one line per event, coloured on a terminal.
    #[default]
    Text,
    /// For log shippers: one JSON object per line, with the span fields
    /// (node, request) of each event.
    Json,
}

/// Logs to stderr, filtered by `RUST_LOG` if set, else by `default`.
pub(crate) fn init_logging(default: &str) {
    init_logging_as(default, LogFormat::Text);
}

/// [`init_logging`] in `format`.
pub(crate) fn init_logging_as(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
