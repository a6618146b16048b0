//! Clients: concurrent gets, puts (with and without context) and deletes
//! over a small key space, and increments of [`COUNTER_KEYS`] counters (the
//! RESP gateway's `INCR`, an update the coordinating primary applies), at
//! mixed consistency levels.
//!
//! Each client has one request in flight, sends it to a random node (clients
//! do not know who is up), and gives up after a timeout. A client remembers
//! the context and values of its last read or write of each key and uses
//! them for its next write of that key most of the time (read-modify-write),
//! or writes blind. Every put writes a value unique in the run.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Consistency, Context, Level, Outcome as ClientOutcome, Request};
use quorra_node::core::ClientTag;
use rand::RngExt;

use quorra_node::resp::update::{Op, Update};

use crate::history::{History, Kind, Outcome, Record};
use crate::sim::{Event, Sim};

struct Client {
    busy: Option<ClientTag>,
    /// Per key: the context and values of the last read or write.
    seen: BTreeMap<usize, (Context, Vec<Bytes>)>,
    written: u64,
}

struct InFlight {
    client: usize,
    key: usize,
    kind: Kind,
    consistency: Consistency,
    node: usize,
    invoked: Duration,
}

/// The clients of a run and the history they produce.
pub struct Workload {
    clients: Vec<Client>,
    /// What happened.
    pub history: History,
    issued: usize,
    limit: usize,
    keys: usize,
    next_tag: ClientTag,
    in_flight: BTreeMap<ClientTag, InFlight>,
    client_timeout: Duration,
}

/// Counter keys, numbered after the ordinary keys; one operation in ten
/// increments one of them.
pub const COUNTER_KEYS: usize = 2;

/// The name of key number `k`.
pub fn key_name(k: usize) -> Bytes {
    Bytes::from(format!("k{k}"))
}

impl Workload {
    /// Clients for `sim`'s parameters; nothing issued yet.
    pub fn new(sim: &Sim) -> Self {
        let p = &sim.params;
        Self {
            clients: (0..p.clients)
                .map(|_| Client {
                    busy: None,
                    seen: BTreeMap::new(),
                    written: 0,
                })
                .collect(),
            history: History::default(),
            issued: 0,
            limit: p.ops,
            keys: p.keys,
            next_tag: 1,
            in_flight: BTreeMap::new(),
            client_timeout: p.request_timeout * 3,
        }
    }

    /// Wakes every client at a small random time.
    pub fn start(&mut self, sim: &mut Sim) {
        for client in 0..self.clients.len() {
            let at = Duration::from_micros(sim.rng.random_range(0..1_000));
            sim.schedule(
                at,
                Event::ClientWake {
                    client,
                    timeout_of: None,
                },
            );
        }
    }

    /// Whether every operation was issued and has ended.
    pub fn done(&self) -> bool {
        self.issued >= self.limit && self.in_flight.is_empty()
    }

    /// Operations issued so far.
    pub fn issued(&self) -> usize {
        self.issued
    }

    fn consistency(sim: &mut Sim) -> Consistency {
        let n = sim.params.replicas as u8;
        let mut c = match sim.rng.random_range(0..20) {
            0..=9 => Consistency::QUORUM,
            10..=12 => Consistency::ONE,
            13..=14 => Consistency::TWO,
            15..=16 => Consistency::ALL,
            _ => Consistency {
                read: Level::Exactly(sim.rng.random_range(1..=n)),
                write: Level::Exactly(sim.rng.random_range(1..=n)),
                primary_reads: 0,
                primary_writes: 0,
            },
        };
        if sim.rng.random_range(0..20) == 0 {
            c.primary_reads = 1;
            c.primary_writes = 1;
        }
        c
    }

    /// A client's timer: issue its next operation, or give up on one.
    pub fn on_wake(&mut self, sim: &mut Sim, client: usize, timeout_of: Option<ClientTag>) {
        if let Some(tag) = timeout_of {
            if self.clients[client].busy == Some(tag) {
                self.finish(sim, tag, Outcome::Unknown);
            }
            return;
        }
        if self.clients[client].busy.is_some() || self.issued >= self.limit {
            return;
        }
        self.issued += 1;
        let consistency = Self::consistency(sim);
        if sim.rng.random_range(0..10) == 0 {
            let key = self.keys + sim.rng.random_range(0..COUNTER_KEYS);
            let update = Update {
                op: Op::Add(1),
                now_ms: sim.now.as_millis() as u64,
            };
            let request = Request::Update {
                key: key_name(key),
                update: update.encode(),
                consistency,
            };
            return self.send(sim, client, key, Kind::Incr, consistency, request);
        }
        let key = sim.rng.random_range(0..self.keys);
        let seen = self.clients[client].seen.get(&key).cloned();
        let roll: u32 = sim.rng.random_range(0..100);
        let (kind, request) = match (roll, seen) {
            (0..45, _) | (85.., None) => (
                Kind::Get,
                Request::Get {
                    key: key_name(key),
                    consistency,
                },
            ),
            (45..85, seen) => {
                let c = &mut self.clients[client];
                c.written += 1;
                let value = Bytes::from(format!("c{client}-{}", c.written));
                let (context, saw) = match seen {
                    Some(s) if sim.rng.random_range(0..10) < 7 => s,
                    _ => (Context::empty(), Vec::new()),
                };
                (
                    Kind::Put {
                        value: value.clone(),
                        saw,
                    },
                    Request::Put {
                        key: key_name(key),
                        value,
                        context,
                        consistency,
                    },
                )
            }
            (_, Some((context, saw))) => (
                Kind::Delete { saw },
                Request::Delete {
                    key: key_name(key),
                    context,
                    consistency,
                },
            ),
        };
        self.send(sim, client, key, kind, consistency, request);
    }

    /// Sends `request` for `client` to a random node, with its timeout.
    fn send(
        &mut self,
        sim: &mut Sim,
        client: usize,
        key: usize,
        kind: Kind,
        consistency: Consistency,
        request: Request,
    ) {
        let node = sim.rng.random_range(0..sim.nodes.len());
        let tag = self.next_tag;
        self.next_tag += 1;
        self.clients[client].busy = Some(tag);
        self.in_flight.insert(
            tag,
            InFlight {
                client,
                key,
                kind,
                consistency,
                node,
                invoked: sim.now,
            },
        );
        let at = sim.now + Duration::from_micros(sim.rng.random_range(10..500));
        sim.schedule(at, Event::Request { node, tag, request });
        sim.schedule(
            sim.now + self.client_timeout,
            Event::ClientWake {
                client,
                timeout_of: Some(tag),
            },
        );
    }

    /// A reply reached its client.
    pub fn on_reply(&mut self, sim: &mut Sim, tag: ClientTag, outcome: ClientOutcome) {
        let Some(flight) = self.in_flight.get(&tag) else {
            return;
        };
        let client = flight.client;
        if self.clients[client].busy != Some(tag) {
            return; // the client already gave up on it
        }
        let key = flight.key;
        let recorded = match outcome {
            Ok(response) => {
                if key < self.keys {
                    self.clients[client]
                        .seen
                        .insert(key, (response.context.clone(), response.values.clone()));
                }
                Outcome::Ok {
                    // A counter's values are envelopes no put wrote; the
                    // counter check reads the final state instead.
                    values: if key < self.keys {
                        response.values
                    } else {
                        Vec::new()
                    },
                    fallback: response.receipt.used_fallback(),
                    answered: response
                        .receipt
                        .answered
                        .iter()
                        .map(|a| (a.node, a.fallback_for))
                        .collect(),
                }
            }
            Err(e) => Outcome::Failed(e.to_string()),
        };
        self.finish(sim, tag, recorded);
    }

    fn finish(&mut self, sim: &mut Sim, tag: ClientTag, outcome: Outcome) {
        let Some(f) = self.in_flight.remove(&tag) else {
            return;
        };
        let client = f.client;
        self.clients[client].busy = None;
        self.history.records.push(Record {
            client,
            key: f.key,
            kind: f.kind,
            consistency: f.consistency,
            node: f.node as u64 + 1,
            invoked: f.invoked,
            completed: sim.now,
            outcome,
        });
        let think = Duration::from_micros(sim.rng.random_range(0..2_000));
        sim.schedule(
            sim.now + think,
            Event::ClientWake {
                client,
                timeout_of: None,
            },
        );
    }
}
