//! Property tests of dotted version vector sets against a model of causality.
//!
//! Random histories of reads, writes (with fresh, stale, own or empty
//! contexts, through any replica) and replica syncs are run on real
//! `DvvSet`s, while the model tracks each write's causal history
//! explicitly. Checked: every replica's siblings are exactly the writes it
//! knows that no other known write has seen (no lost update, no false
//! conflict); merge is commutative, associative and idempotent; and clients
//! writing in turn with the context of their own last write through
//! different coordinators never hold more siblings than there are clients.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use quorra_node::version::{Actor, Dot, DvvSet, VersionVector, context};
use quorra_ring::NodeId;

const REPLICAS: usize = 3;
const CLIENTS: usize = 3;

#[derive(Clone, Debug)]
enum CtxChoice {
    /// Read the coordinator first (read-modify-write).
    Fresh,
    /// The context of the client's last read, however old.
    LastRead,
    /// The context returned by the client's own last write.
    OwnWrite,
    /// No context: a blind write.
    Empty,
}

#[derive(Clone, Debug)]
enum Op {
    Read {
        client: usize,
        replica: usize,
    },
    Write {
        client: usize,
        replica: usize,
        ctx: CtxChoice,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let ctx = prop_oneof![
        Just(CtxChoice::Fresh),
        Just(CtxChoice::LastRead),
        Just(CtxChoice::OwnWrite),
        Just(CtxChoice::Empty),
    ];
    prop_oneof![
        (0..CLIENTS, 0..REPLICAS).prop_map(|(client, replica)| Op::Read { client, replica }),
        (0..CLIENTS, 0..REPLICAS, ctx).prop_map(|(client, replica, ctx)| Op::Write {
            client,
            replica,
            ctx
        }),
        (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

fn actor(replica: usize) -> Actor {
    Actor::new(NodeId(replica as u64 + 1), 0)
}

/// The real states plus the model: which write each dot is, and each
/// write's causal history (itself and everything its context covered).
struct World {
    replicas: Vec<DvvSet<u32>>,
    last_read: Vec<VersionVector>,
    own_write: Vec<VersionVector>,
    dots: BTreeMap<Dot, u32>,
    history: BTreeMap<u32, BTreeSet<u32>>,
    next_write: u32,
}

impl World {
    fn new() -> Self {
        Self {
            replicas: vec![DvvSet::new(); REPLICAS],
            last_read: vec![VersionVector::new(); CLIENTS],
            own_write: vec![VersionVector::new(); CLIENTS],
            dots: BTreeMap::new(),
            history: BTreeMap::new(),
            next_write: 0,
        }
    }

    fn covered(&self, ctx: &VersionVector) -> BTreeSet<u32> {
        self.dots
            .iter()
            .filter(|(dot, _)| ctx.covers(**dot))
            .map(|(_, w)| *w)
            .collect()
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Read { client, replica } => {
                self.last_read[client] = self.replicas[replica].context();
            }
            Op::Write {
                client,
                replica,
                ref ctx,
            } => {
                let ctx = match ctx {
                    CtxChoice::Fresh => self.replicas[replica].context(),
                    CtxChoice::LastRead => self.last_read[client].clone(),
                    CtxChoice::OwnWrite => self.own_write[client].clone(),
                    CtxChoice::Empty => VersionVector::new(),
                };
                // Contexts travel through the client as opaque bytes.
                let ctx = context::decode(&context::encode(&ctx)).unwrap();
                let write = self.next_write;
                self.next_write += 1;
                let mut history = self.covered(&ctx);
                history.insert(write);
                self.history.insert(write, history);
                let dot = self.replicas[replica]
                    .update(&ctx, actor(replica), write)
                    .unwrap();
                self.dots.insert(dot, write);
                // The reply shows the client every sibling, with their context.
                self.own_write[client] = self.replicas[replica].context();
            }
            Op::Sync { from, to } => {
                let source = self.replicas[from].clone();
                self.replicas[to].merge(&source);
            }
        }
    }

    /// Writes a state should hold: known, and not in another known write's past.
    fn expected_siblings(&self, state: &DvvSet<u32>) -> BTreeSet<u32> {
        let known = self.covered(&state.context());
        known
            .iter()
            .copied()
            .filter(|w| {
                !known
                    .iter()
                    .any(|other| other != w && self.history[other].contains(w))
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn siblings_are_exactly_the_unseen_concurrent_writes(ops in proptest::collection::vec(op(), 1..60)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
            for state in &world.replicas {
                prop_assert!(state.validate().is_ok());
                let got: BTreeSet<u32> = state.values().copied().collect();
                prop_assert_eq!(got.len(), state.sibling_count(), "duplicate sibling");
                prop_assert_eq!(got, world.expected_siblings(state), "after {:?}", op);
            }
        }
    }

    #[test]
    fn merge_is_commutative_associative_idempotent(ops in proptest::collection::vec(op(), 1..60)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
        }
        let states = &world.replicas;
        for a in states {
            prop_assert_eq!(&DvvSet::merged(a, a), a);
            prop_assert!(a.includes(a));
            for b in states {
                prop_assert_eq!(DvvSet::merged(a, b), DvvSet::merged(b, a));
                prop_assert_eq!(a.includes(b), &DvvSet::merged(a, b) == a);
                let mut m = a.clone();
                let changed = m.merge(b);
                prop_assert_eq!(changed, &m != a, "merge's answer to whether it changed");
                for c in states {
                    let left = DvvSet::merged(&DvvSet::merged(a, b), c);
                    let right = DvvSet::merged(a, &DvvSet::merged(b, c));
                    prop_assert_eq!(left, right);
                }
            }
        }
    }

    #[test]
    fn writers_using_their_own_last_context_do_not_explode_siblings(
        turns in proptest::collection::vec((0..CLIENTS, 0..REPLICAS, any::<bool>(), 0..REPLICAS, 0..REPLICAS), 1..200)
    ) {
        let mut world = World::new();
        for (client, replica, sync, from, to) in turns {
            world.apply(&Op::Write { client, replica, ctx: CtxChoice::OwnWrite });
            if sync {
                world.apply(&Op::Sync { from, to });
            }
            for state in &world.replicas {
                prop_assert!(state.sibling_count() <= CLIENTS,
                    "{} siblings with {} writers", state.sibling_count(), CLIENTS);
            }
        }
    }
}

/// Riak's sibling-explosion scenario, step by step: two clients alternate
/// writes through two coordinators, each with the context returned by its
/// own previous write. Vector clocks keyed by coordinator grow one sibling
/// per write; dotted version vectors stay at two.
#[test]
fn riak_sibling_explosion_scenario_stays_at_two_siblings() {
    let mut x = DvvSet::new();
    let mut y = DvvSet::new();
    let mut bob = VersionVector::new();
    let mut sue = VersionVector::new();
    for round in 0..50u32 {
        x.update(&bob, actor(0), round * 2).unwrap();
        bob = x.context();
        y.update(&sue, actor(1), round * 2 + 1).unwrap();
        sue = y.context();
        // Replicas exchange their states every round.
        let (xs, ys) = (x.clone(), y.clone());
        x.merge(&ys);
        y.merge(&xs);
        assert!(
            x.sibling_count() <= 2,
            "round {round}: {}",
            x.sibling_count()
        );
    }
    let latest: BTreeSet<u32> = x.values().copied().collect();
    assert_eq!(latest, BTreeSet::from([98, 99]));
}
