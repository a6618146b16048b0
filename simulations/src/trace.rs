//! A fingerprint of everything that happened in a run.
//!
//! With `--check-determinism` the simulator runs a seed twice and compares
//! the fingerprints: every input handed to a node (time, node, message or
//! request encoded with rmp-serde), every client reply and every fault
//! transition is hashed with blake3. Any hidden source of nondeterminism
//! (hash-map order, a clock read, an unseeded RNG) changes the hash.

use std::time::Duration;

use quorra_client::Outcome;

use crate::sim::Event;

/// A running hash of a run's events.
#[derive(Default)]
pub struct Trace {
    hasher: blake3::Hasher,
    events: u64,
}

impl Trace {
    fn header(&mut self, now: Duration, node: usize, kind: u8) {
        self.events += 1;
        self.hasher.update(&(now.as_nanos() as u64).to_le_bytes());
        self.hasher.update(&(node as u64).to_le_bytes());
        self.hasher.update(&[kind]);
    }

    /// An input handed to a node.
    pub fn input(&mut self, now: Duration, node: usize, event: &Event) {
        match event {
            Event::Deliver { from, message, .. } => {
                self.header(now, node, 1);
                self.hasher.update(&(*from as u64).to_le_bytes());
                let _ = rmp_serde::encode::write(&mut self.hasher, message);
            }
            Event::Request { tag, request, .. } => {
                self.header(now, node, 2);
                self.hasher.update(&tag.to_le_bytes());
                let _ = rmp_serde::encode::write(&mut self.hasher, request);
            }
            Event::Timer { .. } => self.header(now, node, 3),
            Event::FlushDone { upto, .. } => {
                self.header(now, node, 4);
                self.hasher.update(&upto.to_le_bytes());
            }
            _ => self.header(now, node, 5),
        }
    }

    /// A reply leaving a node for its client.
    pub fn reply(&mut self, now: Duration, tag: u64, outcome: &Outcome) {
        self.header(now, usize::MAX, 6);
        self.hasher.update(&tag.to_le_bytes());
        let _ = rmp_serde::encode::write(&mut self.hasher, outcome);
    }

    /// A fault or recovery.
    pub fn transition(&mut self, now: Duration, node: usize, what: &str) {
        self.header(now, node, 7);
        self.hasher.update(what.as_bytes());
    }

    /// The fingerprint so far, and how many events it covers.
    pub fn digest(&self) -> (String, u64) {
        (self.hasher.finalize().to_hex().to_string(), self.events)
    }
}
