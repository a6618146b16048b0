//! `quorra-gossip-sim`: measured figures of gossip membership.
//!
//! ```text
//! quorra-gossip-sim [--seed S]
//! ```
//! Prints convergence rounds (10, 50, 200 nodes from 3 seeds), detection
//! time of a crash (every observer), false suspicions per node-hour with 5%
//! message loss over 10 simulated minutes, and bytes per node per second in
//! a stable 50-node cluster.

// The report is this program's output.
#![allow(clippy::print_stdout)]

use clap::Parser;
use quorra_simulations::gossip_sim::{
    bytes_per_node_second, convergence_rounds, detection_seconds, false_positives_per_node_hour,
};

#[derive(Parser, Debug)]
#[command(
    name = "quorra-gossip-sim",
    about = "Measured figures of Quorra's gossip membership"
)]
struct Args {
    /// Seed of the simulations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() {
    let args = Args::parse();
    let s = args.seed;
    println!("convergence from 3 seeds (rounds of 1 s until every node holds the same table):");
    for n in [10, 50, 200] {
        match convergence_rounds(n, s) {
            Some(r) => println!("  {n:>3} nodes: {r} rounds"),
            None => println!("  {n:>3} nodes: no agreement within 60 rounds"),
        }
    }
    println!("detection of a crash (seconds until every other node sees it down):");
    for (n, loss) in [(5, 0.0), (10, 0.0), (10, 0.05), (50, 0.0), (50, 0.05)] {
        match detection_seconds(n, loss, s) {
            Some(t) => println!("  {n:>3} nodes, {:>2.0}% loss: {t:.1} s", loss * 100.0),
            None => println!(
                "  {n:>3} nodes, {:>2.0}% loss: not detected by everyone within 60 s",
                loss * 100.0
            ),
        }
    }
    println!("false suspicions with 5% loss over 10 minutes:");
    for n in [5, 10, 50] {
        let (count, rate) = false_positives_per_node_hour(n, 0.05, 10, s);
        println!("  {n:>3} nodes: {count} false down events ({rate:.2} per node-hour)");
    }
    println!(
        "cost in a stable 50-node cluster: {:.0} bytes per node per second",
        bytes_per_node_second(50, s)
    );
}
