//! Each node's expiry sweeper, as the daemon runs it
//! ([`quorra_node::resp::keyspace`]): every [`SWEEP_INTERVAL`] a running
//! node walks the partitions it is the first primary of, by its own ring,
//! and for every key whose latest value has expired by its clock
//! ([`expired_in`], the daemon's own choice) sends a purge through itself
//! at quorum. The purges are operations of the history (client
//! [`SWEEPER`]), so the checks see what they replaced.
//!
//! The interval is shorter than the daemon's default (60 s), as every
//! interval of the simulator is: values expire within seconds here.

use std::time::Duration;

use bytes::Bytes;

use quorra_client::{Consistency, Request};
use quorra_node::resp::keyspace::expired_in;
use quorra_node::resp::update::{Op, Update};
use quorra_node::storage::Store;
use quorra_ring::PartitionId;
use rand::RngExt;

use super::{SWEEPER, Workload};
use crate::history::{Kind, RespOp};
use crate::sim::{Event, Sim};
use crate::updater::tagged;

/// Pause between two walks of a node's sweeper.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The key number of a key name (`k12` is 12).
fn key_number(name: &[u8]) -> Option<usize> {
    std::str::from_utf8(name.strip_prefix(b"k")?)
        .ok()?
        .parse()
        .ok()
}

/// What node `node`'s sweeper would purge now: the keys of the partitions
/// it is the first primary of (by its own ring) whose latest value has
/// expired by its clock. Nothing while it is crashed or paused.
pub fn expired_keys(sim: &Sim, node: usize) -> Vec<Bytes> {
    let n = &sim.nodes[node];
    let Some(core) = n.node.as_ref().filter(|_| n.running()) else {
        return Vec::new();
    };
    let ring = core.ring();
    let store = Store::new(n.engine.clone());
    let now_ms = n.local(sim.now).as_millis() as u64;
    let mut expired = Vec::new();
    for partition in (0..ring.config().partitions).map(PartitionId) {
        if ring.primaries(partition).next() != Some(n.id) {
            continue;
        }
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (keys, next) = expired_in(&store, partition, after.as_deref(), now_ms);
            expired.extend(keys);
            match next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
    }
    expired
}

impl Workload {
    /// Starts every node's sweeper, each at its own moment.
    pub fn start_sweepers(&mut self, sim: &mut Sim) {
        for node in 0..sim.nodes.len() {
            let at = sim.now + SWEEP_INTERVAL.mul_f64(sim.rng.random_range(0.0..1.0));
            sim.schedule(at, Event::Sweep { node });
        }
    }

    /// Node `node`'s sweeper walks its partitions.
    pub fn on_sweep(&mut self, sim: &mut Sim, node: usize) {
        if sim.nodes[node].departed {
            return;
        }
        sim.schedule(sim.now + SWEEP_INTERVAL, Event::Sweep { node });
        for name in expired_keys(sim, node) {
            let Some(key) = key_number(&name) else {
                continue;
            };
            // One purge of a key at a time, as the daemon's walk.
            let pending = self
                .in_flight
                .values()
                .any(|f| f.client == SWEEPER && f.node == node && f.key == key);
            if pending {
                continue;
            }
            let consistency = Consistency::QUORUM;
            self.send_to(
                sim,
                SWEEPER,
                node,
                sim.now,
                key,
                consistency,
                |sent_ms, tag| {
                    let update = Update {
                        op: Op::Purge,
                        now_ms: sent_ms,
                    };
                    let request = Request::Update {
                        key: name,
                        update: tagged(tag, &update.encode()),
                        consistency,
                    };
                    let kind = Kind::Resp {
                        op: RespOp::Purge,
                        sent_ms,
                    };
                    (kind, request)
                },
            );
        }
    }
}
