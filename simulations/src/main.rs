//! `quorra-sim`: run deterministic simulations of Quorra clusters.
//!
//! ```text
//! quorra-sim --seed S            one seed, printing every drawn parameter
//! quorra-sim --seeds A..B        seeds A to B inclusive; ends with "N passed, M failed"
//!     [--nodes N] [--ops N] [--faults none|light|heavy]
//!     [--disable read-repair,hinted-handoff] [--check-determinism] [--jobs J] [--quiet]
//!     [--changes N] (membership changes in the safety phase; default 1 to 4)
//! ```
//!
//! Exit codes: 0 all passed, 2 bad usage, 10 a safety check failed, 11
//! liveness failed (no progress, not quiet, no convergence), 12 the code
//! panicked. A range exits with the most severe verdict among its seeds:
//! safety, then panic, then liveness, so a script that sees 11 knows that
//! no seed lost or resurrected anything.

// The simulator's report is its output.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use quorra_simulations::params::{FaultLevel, Overrides, Params};
use quorra_simulations::runner::{Report, run};

const EXIT_SAFETY: u8 = 10;
const EXIT_LIVENESS: u8 = 11;
const EXIT_PANIC: u8 = 12;

#[derive(Parser, Debug)]
#[command(
    name = "quorra-sim",
    version,
    about = "Deterministic chaos simulation of Quorra clusters",
    after_help = "Exit codes: 0 all passed, 2 bad usage, 10 safety check failed, \
                  11 liveness failed (no progress, not quiet, no convergence), 12 panic. \
                  A range exits with its most severe verdict: safety, then panic, then liveness."
)]
struct Args {
    /// Run one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a range of seeds, inclusive: A..B (or A..=B).
    #[arg(long, value_parser = parse_range)]
    seeds: Option<(u64, u64)>,
    /// Fix the cluster size instead of drawing it (3 to 64).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    nodes: Option<u64>,
    /// Client operations in the safety phase (default 2000).
    #[arg(long)]
    ops: Option<usize>,
    /// Fix the fault level instead of drawing it.
    #[arg(long)]
    faults: Option<FaultLevel>,
    /// Mechanisms to switch off, comma-separated: read-repair,
    /// hinted-handoff, anti-entropy.
    #[arg(long, value_delimiter = ',')]
    disable: Vec<Mechanism>,
    /// Run each seed twice and fail if the traces differ.
    #[arg(long)]
    check_determinism: bool,
    /// Seeds run in parallel (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print only failures and the summary.
    #[arg(long)]
    quiet: bool,
    /// Print to stderr every change of key kK on any node's disk, with the
    /// input that caused it (for one seed: the output is long).
    #[arg(long, value_name = "K")]
    watch_key: Option<usize>,
    /// Membership changes (joins, leaves, removes) in the safety phase,
    /// instead of drawing 1 to 4 (0: none).
    #[arg(long, value_name = "N")]
    changes: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mechanism {
    ReadRepair,
    HintedHandoff,
    AntiEntropy,
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text
        .split_once("..=")
        .or_else(|| text.split_once(".."))
        .ok_or_else(|| format!("expected A..B, got {text:?}"))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("bad start in {text:?}"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("bad end in {text:?}"))?;
    if b < a {
        return Err(format!("empty range {text:?}"));
    }
    Ok((a, b))
}

/// How one seed ended.
enum Verdict {
    Passed(Box<Report>),
    Failed(Box<Report>, String),
    Panicked(String),
}

impl Verdict {
    fn code(&self) -> u8 {
        match self {
            Verdict::Passed(_) => 0,
            // Hidden nondeterminism breaks replay, the basis of every check.
            Verdict::Failed(r, extra) if r.safety_failed() || !extra.is_empty() => EXIT_SAFETY,
            Verdict::Failed(..) => EXIT_LIVENESS,
            Verdict::Panicked(_) => EXIT_PANIC,
        }
    }
}

/// How bad an exit code is, for a range's: a broken promise outranks a
/// crash of the code, which outranks a cluster that did not get through
/// its phases.
fn severity(code: u8) -> u8 {
    match code {
        0 => 0,
        EXIT_LIVENESS => 1,
        EXIT_PANIC => 2,
        _ => 3,
    }
}

/// The more severe of two exit codes.
fn worse(a: u8, b: u8) -> u8 {
    if severity(b) > severity(a) { b } else { a }
}

fn run_seed(seed: u64, overrides: &Overrides, determinism: bool) -> Verdict {
    let params = Params::draw(seed, overrides);
    let outcome = std::panic::catch_unwind(|| {
        let report = run(params.clone(), determinism);
        let mismatch = if determinism {
            let again = run(params.clone(), true);
            (again.trace != report.trace).then(|| {
                format!(
                    "nondeterminism: traces differ between two runs ({:?} vs {:?})",
                    report.trace, again.trace
                )
            })
        } else {
            None
        };
        (report, mismatch)
    });
    match outcome {
        Ok((report, Some(mismatch))) => Verdict::Failed(Box::new(report), mismatch),
        Ok((report, None)) if report.safety_failed() || report.liveness_failed() => {
            Verdict::Failed(Box::new(report), String::new())
        }
        Ok((report, None)) => Verdict::Passed(Box::new(report)),
        Err(payload) => Verdict::Panicked(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic with a non-string payload".into()),
        ),
    }
}

fn reproduce(seed: u64, args: &Args) -> String {
    let mut cmd = format!("quorra-sim --seed {seed}");
    if let Some(n) = args.nodes {
        cmd += &format!(" --nodes {n}");
    }
    if let Some(o) = args.ops {
        cmd += &format!(" --ops {o}");
    }
    if let Some(f) = args.faults {
        cmd += &format!(" --faults {f}");
    }
    if !args.disable.is_empty() {
        let names: Vec<&str> = args
            .disable
            .iter()
            .map(|m| match m {
                Mechanism::ReadRepair => "read-repair",
                Mechanism::HintedHandoff => "hinted-handoff",
                Mechanism::AntiEntropy => "anti-entropy",
            })
            .collect();
        cmd += &format!(" --disable {}", names.join(","));
    }
    cmd
}

/// RESP commands on string keys and their successes, and the sweepers'
/// purges that deleted something.
fn resp_counts(r: &Report) -> (usize, usize, usize) {
    use quorra_simulations::history::{Kind, Outcome, RespOp};
    let mut counts = (0, 0, 0);
    for rec in &r.history.records {
        let Kind::Resp { op, .. } = &rec.kind else {
            continue;
        };
        if matches!(op, RespOp::Purge) {
            let purged = matches!(&rec.outcome, Outcome::Ok { answer: Some(a), .. }
                if quorra_node::resp::update::Answer::decode(a)
                    == Some(quorra_node::resp::update::Answer::Changed(true)));
            counts.2 += usize::from(purged);
        } else {
            counts.0 += 1;
            counts.1 += usize::from(rec.ok());
        }
    }
    counts
}

fn summary(r: &Report) -> String {
    let (resp, resp_ok, purged) = resp_counts(r);
    format!(
        "{} ops ({} ok, {:.0}%), {:.1}s simulated in {:.0}ms (safety phase {:.1}s, nodes down {:.0}% of it); {} msgs, {} dropped, {} crashes ({} disks lost), {} pauses, {} partitions; \
         {} hints stored/{} delivered, {} read repairs, {} reserve reads, {} purged, {} forwarded; \
         anti-entropy {} exchanges ({} in sync), {} keys repaired; \
         gossip {} msgs, {} down verdicts; RESP {resp} commands ({resp_ok} ok), {purged} expired keys swept",
        r.ops,
        r.ops_ok,
        r.ok_share() * 100.0,
        r.sim_time.as_secs_f64(),
        r.wall.as_secs_f64() * 1e3,
        r.safety_time.as_secs_f64(),
        r.down_share * 100.0,
        r.world.delivered,
        r.world.dropped,
        r.world.crashes,
        r.world.disk_losses,
        r.world.pauses,
        r.world.partitions,
        r.nodes.hints_stored,
        r.nodes.hints_delivered,
        r.nodes.read_repairs,
        r.nodes.reserve_reads,
        r.nodes.tombstones_purged,
        r.nodes.forwarded,
        r.nodes.ae_exchanges,
        r.nodes.ae_in_sync,
        r.nodes.ae_keys_repaired,
        r.world.gossip_messages,
        r.world.gossip_downs,
    )
}

fn print_verdict(seed: u64, verdict: &Verdict, args: &Args, verbose: bool) {
    match verdict {
        Verdict::Passed(r) => {
            if verbose {
                println!("seed={seed} passed: {}", summary(r));
            }
        }
        Verdict::Failed(r, extra) => {
            println!("seed={seed} FAILED: {}", summary(r));
            println!("  parameters: {}", r.params.describe());
            if !extra.is_empty() {
                println!("  {extra}");
            }
            for (at, change) in &r.changes {
                println!("  membership at {:.1}s: {change}", at.as_secs_f64());
            }
            for stuck in &r.stuck {
                println!("  liveness: {stuck}");
            }
            print!(
                "{}",
                quorra_simulations::check::describe_violations(&r.history, &r.violations)
            );
            println!("  reproduce: {}", reproduce(seed, args));
        }
        Verdict::Panicked(message) => {
            println!("seed={seed} PANICKED: {message}");
            println!("  reproduce: {}", reproduce(seed, args));
        }
    }
}

/// Results gathered from the worker threads, printed in seed order.
#[derive(Default)]
struct Progress {
    next_print: u64,
    pending: BTreeMap<u64, Verdict>,
    passed: u64,
    failed: u64,
    /// The exit code of the most severe verdict so far.
    worst: u8,
    ops: u64,
    /// Membership changes made, by kind (see [`change_kind`]).
    changes: BTreeMap<&'static str, u64>,
}

/// The kind of a logged membership change, for the range's tally.
fn change_kind(change: &str) -> &'static str {
    if change.contains(" refused: ") {
        "refusals"
    } else if change.contains(" replaces ") {
        "replacements"
    } else if change.contains(" removed by ") {
        "removals"
    } else if change.ends_with(" dies for good") {
        "deaths"
    } else if change.ends_with(" joins") {
        "joins"
    } else if change.ends_with(" leaves") {
        "leaves"
    } else {
        "other"
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The nodes' own log lines, for debugging one seed:
    // QUORRA_SIM_LOG=quorra_node=debug quorra-sim --seed S --jobs 1.
    if let Ok(filter) = std::env::var("QUORRA_SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
    let overrides = Overrides {
        nodes: args.nodes.map(|n| n as usize),
        ops: args.ops,
        faults: args.faults,
        no_read_repair: args.disable.contains(&Mechanism::ReadRepair),
        no_hinted_handoff: args.disable.contains(&Mechanism::HintedHandoff),
        no_anti_entropy: args.disable.contains(&Mechanism::AntiEntropy),
        watch_key: args.watch_key,
        changes: args.changes,
    };
    let (first, last) = match (args.seed, args.seeds) {
        (Some(s), None) => (s, s),
        (None, Some(range)) => range,
        _ => {
            eprintln!("error: give --seed S or --seeds A..B");
            return ExitCode::from(2);
        }
    };
    if args.seed.is_some() {
        println!("{}", Params::draw(first, &overrides).describe());
    }
    // Panics are reported per seed; keep the default hook's noise for --seed.
    if args.seeds.is_some() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let started = Instant::now();
    let next = AtomicU64::new(first);
    let done = Mutex::new(Progress {
        next_print: first,
        ..Progress::default()
    });
    let verbose = !args.quiet;
    std::thread::scope(|scope| {
        for _ in 0..jobs.min((last - first + 1) as usize) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed > last {
                        break;
                    }
                    let verdict = run_seed(seed, &overrides, args.check_determinism);
                    let mut guard = done.lock().unwrap_or_else(|p| p.into_inner());
                    let p = &mut *guard;
                    p.pending.insert(seed, verdict);
                    while let Some(v) = p.pending.remove(&p.next_print) {
                        print_verdict(p.next_print, &v, &args, verbose);
                        let report = match &v {
                            Verdict::Passed(r) => {
                                p.passed += 1;
                                Some(r)
                            }
                            Verdict::Failed(r, _) => {
                                p.failed += 1;
                                Some(r)
                            }
                            Verdict::Panicked(_) => {
                                p.failed += 1;
                                None
                            }
                        };
                        if let Some(r) = report {
                            p.ops += r.ops as u64;
                            for (_, change) in &r.changes {
                                *p.changes.entry(change_kind(change)).or_default() += 1;
                            }
                        }
                        p.worst = worse(p.worst, v.code());
                        p.next_print += 1;
                    }
                }
            });
        }
    });
    let Progress {
        passed,
        failed,
        worst,
        ops,
        changes,
        ..
    } = done.into_inner().unwrap_or_else(|p| p.into_inner());
    let wall = started.elapsed().as_secs_f64();
    let changes: Vec<String> = changes.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "{passed} passed, {failed} failed ({ops} client ops in {wall:.1}s: {:.0} ops/s on {jobs} thread(s)); membership changes: {}",
        ops as f64 / wall.max(1e-9),
        if changes.is_empty() {
            "none".to_string()
        } else {
            changes.join(", ")
        }
    );
    ExitCode::from(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_exits_with_its_most_severe_verdict() {
        let range = |codes: &[u8]| codes.iter().fold(0, |w, &c| worse(w, c));
        assert_eq!(range(&[0, 0]), 0);
        assert_eq!(range(&[0, EXIT_LIVENESS, 0]), EXIT_LIVENESS);
        // A safety violation is never hidden behind a liveness failure
        // (or a panic) of another seed, whichever order they come in.
        assert_eq!(range(&[EXIT_SAFETY, EXIT_LIVENESS]), EXIT_SAFETY);
        assert_eq!(
            range(&[EXIT_LIVENESS, EXIT_SAFETY, EXIT_LIVENESS]),
            EXIT_SAFETY
        );
        assert_eq!(range(&[EXIT_PANIC, EXIT_SAFETY]), EXIT_SAFETY);
        assert_eq!(range(&[EXIT_LIVENESS, EXIT_PANIC]), EXIT_PANIC);
    }
}
