//! `quorra-netem`: holds, reorders and duplicates the packets a network
//! namespace's `NFQUEUE` rule hands it, until its standard input closes.
//! `quorra-chaos` starts it inside a node's namespace for a packet-delay
//! fault (see `quorra_simulations::chaos::netem`); by hand:
//!
//! ```text
//! ip netns exec NS iptables -A INPUT -p udp -m mark ! --mark 0x71 -j NFQUEUE --queue-num 0 --queue-bypass
//! ip netns exec NS quorra-netem --delay-ms 40 --jitter-ms 30 --duplicate-percent 5
//! ```
//!
//! Needs root (CAP_NET_ADMIN for the queue, CAP_NET_RAW for copies).

// Its last words are its output.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;
use quorra_simulations::chaos::netem::{Shape, serve};

#[derive(Parser, Debug)]
#[command(
    name = "quorra-netem",
    version,
    about = "Delays, reorders and duplicates the packets an NFQUEUE rule (queue 0) hands it, \
             until standard input closes"
)]
struct Args {
    /// Mean hold per packet, milliseconds.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    delay_ms: u32,
    /// Holds spread uniformly over delay ± jitter, milliseconds.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    jitter_ms: u32,
    /// Percent of packets also sent a second time.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    duplicate_percent: u32,
    /// Seed of the per-packet draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let shape = Shape {
        delay_ms: args.delay_ms,
        jitter_ms: args.jitter_ms,
        duplicate_percent: args.duplicate_percent,
    };
    match serve(shape, args.seed) {
        Ok(tally) => {
            eprintln!(
                "quorra-netem: {} packets held and let through, {} copies sent, {} copies refused, \
                 {} dropped by the kernel meanwhile",
                tally.packets, tally.copies, tally.copy_errors, tally.gone
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quorra-netem: {e}");
            ExitCode::FAILURE
        }
    }
}
