//! A hand-driven cluster for tests that show one mechanism at a time.
//!
//! [`Harness`] is the simulator with the random faults and the random
//! workload taken out: a test sends requests to chosen nodes, cuts and
//! heals links, crashes and restarts nodes, lets time pass, and looks at
//! what every node stores. Everything stays deterministic.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Consistency, Context, Outcome, Request, Response};
use quorra_node::core::{ClientTag, Node};
use quorra_node::membership::Membership;
use quorra_node::storage::Store;
use quorra_node::storage::store::Change;
use quorra_node::version::Object;
use quorra_ring::NodeId;

use crate::params::{FaultLevel, Overrides, Params};
use crate::runner::dispatch_world;
use crate::sim::{Event, Sim};

/// Longest a harness waits for a reply, in simulated time.
const REPLY_LIMIT: Duration = Duration::from_secs(30);

/// A cluster driven by a test.
pub struct Harness {
    /// The simulated cluster.
    pub sim: Sim,
    replies: BTreeMap<ClientTag, Outcome>,
    next_tag: ClientTag,
}

impl Harness {
    /// `nodes` nodes, a perfect 1 ms network, default node options.
    pub fn new(nodes: usize) -> Self {
        Self::with(nodes, |_| {})
    }

    /// Like [`Harness::new`], with parameters adjusted by `adjust`.
    pub fn with(nodes: usize, adjust: impl FnOnce(&mut Params)) -> Self {
        let mut params = Params::draw(
            7,
            &Overrides {
                nodes: Some(nodes),
                faults: Some(FaultLevel::None),
                ..Overrides::default()
            },
        );
        params.latency_min = Duration::from_millis(1);
        params.latency_max = Duration::from_millis(1);
        params.max_flush = Duration::from_micros(100);
        params.read_fanout = quorra_node::core::ReadFanout::Quorum;
        adjust(&mut params);
        let mut h = Self {
            sim: Sim::new(params, false),
            replies: BTreeMap::new(),
            next_tag: 1,
        };
        // The cluster forms by gossip from seeds, as in every run, and its
        // layouts come to rest.
        let limit = h.sim.now + crate::runner::BOOTSTRAP_LIMIT;
        while h.sim.agreed_ring().is_none() || !h.sim.moves_settled() {
            assert!(
                h.sim.now <= limit,
                "the cluster did not form from its seeds"
            );
            assert!(h.step(), "the cluster went idle while forming");
        }
        h.sim.ring = h.sim.agreed_ring().expect("agreed");
        h
    }

    fn step(&mut self) -> bool {
        let Some(event) = self.sim.next_event() else {
            return false;
        };
        if let Some(Event::Reply { tag, outcome }) = dispatch_world(&mut self.sim, event, false) {
            self.replies.insert(tag, outcome);
        }
        true
    }

    /// The simulated time now.
    pub fn now(&self) -> Duration {
        self.sim.now
    }

    /// Lets `duration` of simulated time pass.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.sim.now + duration;
        while self.sim.peek_time().is_some_and(|t| t <= until) {
            self.step();
        }
        self.sim.now = self.sim.now.max(until);
    }

    /// Sends `request` to node `node` (1-based id) and runs until its reply.
    pub fn request(&mut self, node: u64, request: Request) -> Outcome {
        let tag = self.next_tag;
        self.next_tag += 1;
        let index = self.sim.index_of(NodeId(node));
        self.sim.schedule(
            self.sim.now,
            Event::Request {
                node: index,
                tag,
                request,
            },
        );
        let limit = self.sim.now + REPLY_LIMIT;
        while !self.replies.contains_key(&tag) {
            assert!(
                self.sim.now <= limit,
                "no reply to request {tag} within {REPLY_LIMIT:?}"
            );
            assert!(
                self.step(),
                "the cluster went idle without replying to request {tag}"
            );
        }
        self.replies.remove(&tag).expect("present")
    }

    /// `put` through `node`.
    pub fn put(
        &mut self,
        node: u64,
        key: &str,
        value: &str,
        context: Context,
        c: Consistency,
    ) -> Outcome {
        self.request(
            node,
            Request::Put {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::copy_from_slice(value.as_bytes()),
                context,
                consistency: c,
            },
        )
    }

    /// `get` through `node`.
    pub fn get(&mut self, node: u64, key: &str, c: Consistency) -> Outcome {
        self.request(
            node,
            Request::Get {
                key: Bytes::copy_from_slice(key.as_bytes()),
                consistency: c,
            },
        )
    }

    /// `delete` through `node`.
    pub fn delete(&mut self, node: u64, key: &str, context: Context, c: Consistency) -> Outcome {
        self.request(
            node,
            Request::Delete {
                key: Bytes::copy_from_slice(key.as_bytes()),
                context,
                consistency: c,
            },
        )
    }

    /// Writes `key` through `coordinator` at quorum (values `{prefix}0`,
    /// `{prefix}1`, ...) until a fallback takes a write as a hint, as it
    /// does once the coordinator believes a primary down; returns that
    /// fallback and the owner it stood in for. Panics after 10 writes.
    pub fn put_until_hinted(&mut self, coordinator: u64, key: &str, prefix: &str) -> (u64, u64) {
        for i in 0..10 {
            let r = ok(self.put(
                coordinator,
                key,
                &format!("{prefix}{i}"),
                Context::empty(),
                Consistency::QUORUM,
            ));
            if let Some(a) = r.receipt.answered.iter().find(|a| a.fallback_for.is_some()) {
                return (a.node, a.fallback_for.expect("found"));
            }
            self.run_for(Duration::from_millis(600));
        }
        panic!("no fallback was used within 10 writes");
    }

    /// The primaries of `key`, in preference order (node ids).
    pub fn primaries(&self, key: &str) -> Vec<u64> {
        let p = self.sim.ring.partition_of_key(key.as_bytes());
        self.sim.ring.primaries(p).map(|n| n.0).collect()
    }

    /// The members that are not primaries of `key`, in preference order.
    pub fn fallbacks(&self, key: &str) -> Vec<u64> {
        let p = self.sim.ring.partition_of_key(key.as_bytes());
        let n = self.sim.ring.effective_replicas();
        self.sim
            .ring
            .preference_list(p)
            .skip(n)
            .map(|n| n.0)
            .collect()
    }

    /// What node `node` stores as owner of `key` (durable or not).
    pub fn stored(&self, node: u64, key: &str) -> Option<Object> {
        let n = &self.sim.nodes[self.sim.index_of(NodeId(node))];
        let p = self.sim.ring.partition_of_key(key.as_bytes());
        Store::new(n.engine.clone())
            .get(p, key.as_bytes())
            .expect("readable")
    }

    /// Writes `object` into node `node`'s store for `key` behind its core's
    /// back: a copy of a partition the node no longer owns that its
    /// cleanup has not reached yet (with a large partition, or many, that
    /// takes a while; here it stays until the node's placement changes).
    pub fn plant_leftover(&mut self, node: u64, key: &str, object: &Object) {
        let n = &self.sim.nodes[self.sim.index_of(NodeId(node))];
        let partition = self.sim.ring.partition_of_key(key.as_bytes());
        Store::new(n.engine.clone())
            .apply(&[Change::Put {
                partition,
                key: key.as_bytes(),
                object,
                encoded: None,
            }])
            .expect("writable");
    }

    /// The live values node `node` stores for `key`, sorted.
    pub fn stored_values(&self, node: u64, key: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .stored(node, key)
            .map(|o| {
                o.live_values()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The running core of node `node`.
    pub fn node(&self, node: u64) -> &Node {
        self.sim.nodes[self.sim.index_of(NodeId(node))]
            .node
            .as_ref()
            .expect("node is running")
    }

    /// Runs node `node`'s expiry sweeper once, as the daemon's does: a
    /// purge at quorum, through the node, of every key of the partitions
    /// it is the first primary of whose latest value has expired by its
    /// clock. Returns the outcomes.
    pub fn sweep(&mut self, node: u64) -> Vec<Outcome> {
        let i = self.sim.index_of(NodeId(node));
        let keys = crate::workload::sweeper::expired_keys(&self.sim, i);
        keys.into_iter()
            .map(|key| {
                let update = quorra_node::resp::update::Update {
                    op: quorra_node::resp::update::Op::Purge,
                    now_ms: self.clock_ms(node),
                };
                self.request(
                    node,
                    Request::Update {
                        key,
                        update: update.encode(),
                        consistency: Consistency::QUORUM,
                    },
                )
            })
            .collect()
    }

    /// Node `node`'s clock, in Unix ms (what its gateway stamps).
    pub fn clock_ms(&self, node: u64) -> u64 {
        let n = &self.sim.nodes[self.sim.index_of(NodeId(node))];
        n.local(self.sim.now).as_millis() as u64
    }

    /// Starts a new node that joins through the seeds; returns its id.
    pub fn add_node(&mut self) -> u64 {
        let i = self.sim.add_node();
        self.sim.nodes[i].id.0
    }

    /// Node `node` dies for good: it crashes and never runs again, its disk
    /// counted as lost.
    pub fn kill_for_good(&mut self, node: u64) {
        let i = self.sim.index_of(NodeId(node));
        self.sim.kill_for_good(i);
    }

    /// An operator removes dead node `node` through a live member (again
    /// later, while some member does not see it gone).
    pub fn remove(&mut self, node: u64) {
        let i = self.sim.index_of(NodeId(node));
        self.sim.try_remove(i);
    }

    /// Starts a new node with `--replace` of dead node `dead`; returns its
    /// id.
    pub fn replace(&mut self, dead: u64) -> u64 {
        let i = self.sim.add_node_replacing(Some(NodeId(dead)));
        self.sim.nodes[i].id.0
    }

    /// Node `node`'s membership (its gossip and layouts).
    pub fn membership(&self, node: u64) -> &Membership {
        let i = self.sim.index_of(NodeId(node));
        self.sim.nodes[i]
            .membership
            .as_ref()
            .expect("the node is running")
    }

    /// Node `node` starts leaving the cluster.
    pub fn leave(&mut self, node: u64) {
        let i = self.sim.index_of(NodeId(node));
        self.sim.leave(i).expect("the node can leave");
    }

    /// Node `node` loses its disk (and restarts without its data).
    pub fn lose_disk(&mut self, node: u64) {
        let i = self.sim.index_of(NodeId(node));
        self.sim.lose_disk(i);
    }

    /// Runs until every running node has the same ring, believes every
    /// other one up, and ownership is at rest (one layout, read by all);
    /// panics after `limit` of simulated time. Makes that ring the one
    /// [`Harness::primaries`] answers from.
    pub fn settle_moves(&mut self, limit: Duration) {
        let until = self.sim.now + limit;
        loop {
            if self.sim.moves_settled()
                && self.sim.nobody_suspected()
                && let Some(ring) = self.sim.agreed_ring()
            {
                self.sim.ring = ring;
                return;
            }
            assert!(
                self.sim.now <= until,
                "ownership did not come to rest within {limit:?}:\n{}",
                self.sim.describe_stages()
            );
            self.run_for(Duration::from_millis(100));
        }
    }

    /// Cuts every link to and from node `node`.
    pub fn isolate(&mut self, node: u64) {
        let i = self.sim.index_of(NodeId(node));
        let n = self.sim.nodes.len();
        let links = (0..n)
            .filter(|&j| j != i)
            .flat_map(|j| [(i, j), (j, i)])
            .collect();
        self.sim.cut_links(links, Duration::MAX / 4);
    }

    /// Cuts the one-way link from `from` to `to`.
    pub fn cut(&mut self, from: u64, to: u64) {
        let (a, b) = (
            self.sim.index_of(NodeId(from)),
            self.sim.index_of(NodeId(to)),
        );
        self.sim.cut_links(vec![(a, b)], Duration::MAX / 4);
    }

    /// Heals every cut link, restarts crashed nodes, resumes paused ones.
    pub fn heal(&mut self) {
        self.sim.heal_everything();
    }

    /// Crashes node `node`: it loses what it had not flushed.
    pub fn crash(&mut self, node: u64) {
        let i = self.sim.index_of(NodeId(node));
        self.sim.crash(i);
    }

    /// Restarts a crashed node.
    pub fn restart(&mut self, node: u64) {
        let i = self.sim.index_of(NodeId(node));
        self.sim.restart(i);
    }
}

/// The response of a successful outcome; panics with the error otherwise.
pub fn ok(outcome: Outcome) -> Response {
    match outcome {
        Ok(r) => r,
        Err(e) => panic!("request failed: {e}"),
    }
}

/// The values of a response as strings, sorted.
pub fn values(response: &Response) -> Vec<String> {
    let mut v: Vec<String> = response
        .values
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    v.sort();
    v
}
