//! `quorra-chaos`: real `quorra node` processes in network namespaces under
//! real packet and process faults, judged by the simulator's checks.
//!
//! ```text
//! quorra-chaos --seed S              one schedule, printing every drawn parameter
//! quorra-chaos --seeds A..B          schedules A to B inclusive, one after another
//!     [--nodes N] [--duration SECS] [--nemesis all|network|process|none] [--changes N]
//!     [--bin PATH] [--keep DIR] [--plan-only]
//! ```
//!
//! Needs root. Exit codes: 0 all passed, 1 the harness could not run, 2 bad
//! usage, 10 a safety check failed, 11 the cluster did not settle (or a
//! node exited by itself), 130 interrupted. Logs and data of a failed
//! schedule are kept and their directory printed.

// The harness's report is its output.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use quorra_simulations::chaos::net::remove_stale;
use quorra_simulations::chaos::run::{Report, run};
use quorra_simulations::chaos::schedule::{Nemesis, Plan};

const EXIT_ERROR: u8 = 1;
const EXIT_SAFETY: u8 = 10;
const EXIT_LIVENESS: u8 = 11;
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser, Debug)]
#[command(
    name = "quorra-chaos",
    version,
    about = "Real quorra processes in network namespaces under partitions, packet loss, \
             kill -9, pauses, lost and slow disks, checked for lost or resurrected writes",
    after_help = "Needs root (ip netns, iptables). Exit codes: 0 all passed, 1 the harness \
                  could not run, 2 bad usage, 10 safety check failed, 11 the cluster did not \
                  settle, 130 interrupted."
)]
struct Args {
    /// Run one schedule.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run schedules A to B, inclusive: A..B.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<(u64, u64)>,
    /// Nodes (3 to 9; drawn from 3 to 5 if not given).
    #[arg(long, value_parser = clap::value_parser!(u64).range(3..=9))]
    nodes: Option<u64>,
    /// Seconds of workload per schedule (the faults fall within it).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=3600))]
    duration: u64,
    /// Which faults to draw.
    #[arg(long, value_enum, default_value_t = Nemesis::All)]
    nemesis: Nemesis,
    /// Membership changes (joins and leaves) beside the faults (drawn: 1
    /// or 2; 0 for none, which gives the plans of earlier versions).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=8))]
    changes: Option<u64>,
    /// The `quorra` binary (default: next to this one).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Keep every schedule's logs and data under this directory (default:
    /// a temporary directory, kept only when the schedule fails).
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Run every node on the real clock (by default about half the nodes
    /// of a plan get a skewed one, through libfaketime).
    #[arg(long)]
    no_clock_skew: bool,
    /// Print the schedules and run nothing (needs no root).
    #[arg(long)]
    plan_only: bool,
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..=")
        .or_else(|| s.split_once(".."))
        .ok_or_else(|| format!("expected A..B, got {s:?}"))?;
    let a: u64 = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u64 = b.parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a > b {
        return Err(format!("empty range {s:?}"));
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (first, last) = match (args.seed, args.seeds) {
        (Some(s), _) => (s, s),
        (None, Some(r)) => r,
        (None, None) => (1, 1),
    };
    let plan = |seed| {
        let mut plan = Plan::draw(
            seed,
            args.nodes.map(|n| n as usize),
            Duration::from_secs(args.duration),
            args.nemesis,
            args.changes.map(|n| n as usize),
        );
        if args.no_clock_skew {
            plan.clocks.fill(None);
        }
        plan
    };
    if args.plan_only {
        for seed in first..=last {
            print!("{}", plan(seed).describe());
        }
        return ExitCode::SUCCESS;
    }
    let bin = match args.bin.clone().or_else(sibling_quorra) {
        Some(b) if b.exists() => b,
        other => {
            println!(
                "no quorra binary at {}: build it (cargo build --release -p quorra-node --bin quorra) or pass --bin",
                other.map_or("(none found)".to_string(), |p| p.display().to_string())
            );
            return ExitCode::from(EXIT_ERROR);
        }
    };
    for gone in remove_stale() {
        println!("removed {gone}, left by an earlier harness");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            println!("cannot start a runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let began = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    let mut verdict = 0u8;
    let (mut ops, mut owed, mut faults, mut changes) = (0usize, 0usize, 0usize, 0usize);
    for seed in first..=last {
        let plan = plan(seed);
        print!("{}", plan.describe());
        let (dir, temp) = match schedule_dir(args.keep.as_deref(), seed) {
            Ok(d) => d,
            Err(e) => {
                println!("seed={seed}: cannot make a directory: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        };
        let outcome = runtime.block_on(async {
            tokio::select! {
                r = run(&plan, &bin, &dir) => Some(r),
                _ = tokio::signal::ctrl_c() => None,
            }
        });
        let Some(outcome) = outcome else {
            // The run's future is dropped: its nodes are killed and its
            // namespaces removed.
            println!("interrupted; logs in {}", keep(temp, &dir).display());
            return ExitCode::from(EXIT_INTERRUPTED);
        };
        match outcome {
            Err(e) => {
                println!("seed={seed}: the harness could not run: {e}");
                println!("  logs in {}", keep(temp, &dir).display());
                return ExitCode::from(EXIT_ERROR);
            }
            Ok(report) => {
                ops += report.history.records.len();
                owed += report.owed_writes;
                faults += report.plan.faults.len();
                changes += report.plan.changes.len();
                if report.passed() {
                    passed += 1;
                    print_events(&report);
                    println!("seed={seed} passed: {}", report.summary());
                } else {
                    failed += 1;
                    let code = if report.safety_failed() {
                        EXIT_SAFETY
                    } else {
                        EXIT_LIVENESS
                    };
                    verdict = verdict.max(code);
                    print_failure(&report, &args, seed);
                    println!("  logs and data in {}", keep(temp, &dir).display());
                }
            }
        }
    }
    println!(
        "{passed} passed, {failed} failed: {ops} operations, {faults} faults, {changes} membership changes, {owed} acknowledged writes checked, in {:.0?}",
        began.elapsed()
    );
    ExitCode::from(verdict)
}

fn print_failure(r: &Report, args: &Args, seed: u64) {
    print_events(r);
    println!("seed={seed} FAILED: {}", r.summary());
    for s in &r.stuck {
        println!("  liveness: {s}");
    }
    print!(
        "{}",
        quorra_simulations::check::describe_violations(&r.history, &r.violations)
    );
    let nodes = args
        .nodes
        .map(|n| format!(" --nodes {n}"))
        .unwrap_or_default();
    let changes = args
        .changes
        .map(|n| format!(" --changes {n}"))
        .unwrap_or_default();
    println!(
        "  rerun the schedule: quorra-chaos --seed {seed}{nodes} --duration {} --nemesis {}{changes}",
        args.duration,
        clap::ValueEnum::to_possible_value(&args.nemesis)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    );
}

fn print_events(r: &Report) {
    for (at, what) in &r.events {
        println!("  {:>6.1}s {what}", at.as_secs_f64());
    }
}

/// `quorra` next to this executable.
fn sibling_quorra() -> Option<PathBuf> {
    Some(std::env::current_exe().ok()?.parent()?.join("quorra"))
}

/// The directory of one schedule, and whether it is temporary.
fn schedule_dir(
    keep: Option<&Path>,
    seed: u64,
) -> std::io::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match keep {
        Some(base) => {
            let dir = base.join(format!("seed-{seed}"));
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            Ok((dir, None))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix(&format!("quorra-chaos-{seed}-"))
                .tempdir()?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

/// Keeps a temporary directory (a failure's logs); returns its path.
fn keep(temp: Option<tempfile::TempDir>, dir: &Path) -> PathBuf {
    match temp {
        Some(t) => t.keep(),
        None => dir.to_path_buf(),
    }
}
