//! Clients: concurrent gets, puts (with and without context) and deletes
//! over a small key space, increments of [`COUNTER_KEYS`] counters (the
//! RESP gateway's `INCR`, an update the coordinating primary applies), and
//! RESP commands on [`RESP_KEYS`] string keys ([`resp`]), at mixed
//! consistency levels; and each node's expiry sweeper ([`sweeper`]).
//!
//! Each client has one request in flight, sends it to a random node (clients
//! do not know who is up), and gives up after a timeout. A client remembers
//! the context and values of its last read or write of each key and uses
//! them for its next write of that key most of the time (read-modify-write),
//! or writes blind. Every put and every `SET` writes a value unique in the
//! run. A RESP command carries the receiving node's clock, as the gateway
//! stamps it, and its update carries the operation's tag for the updater's
//! log ([`crate::updater`]).
//!
//! Of the operations, one in ten is an `INCR`, two in ten a RESP command on
//! a string key, the rest the SDK's gets, puts and deletes.

pub mod resp;
pub mod sweeper;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Consistency, Context, Level, Outcome as ClientOutcome, Request};
use quorra_node::core::ClientTag;
use rand::RngExt;

use quorra_node::resp::update::{Op, Update};

use crate::history::{History, Kind, Outcome, Record, RespOp};
use crate::sim::{Event, Sim};
use crate::updater::tagged;

struct Client {
    busy: Option<ClientTag>,
    /// Per key: the context and values of the last read or write.
    seen: BTreeMap<usize, (Context, Vec<Bytes>)>,
    written: u64,
}

struct InFlight {
    /// The client, or [`SWEEPER`].
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
    /// No more operations are issued (the safety phase is over).
    closed: bool,
    /// When an operation last succeeded (the safety phase's progress).
    last_ok: Duration,
}

/// Counter keys, numbered after the ordinary keys; one operation in ten
/// increments one of them.
pub const COUNTER_KEYS: usize = 2;

/// RESP string keys, numbered after the counters; two operations in ten
/// are a RESP command on one of them.
pub const RESP_KEYS: usize = 3;

/// Keys of every kind a run of `params` uses.
pub fn all_keys(params: &crate::params::Params) -> usize {
    params.keys + COUNTER_KEYS + RESP_KEYS
}

/// The "client" of the sweepers' purges in the history.
pub const SWEEPER: usize = usize::MAX;

/// The name of key number `k`.
pub fn key_name(k: usize) -> Bytes {
    Bytes::from(format!("k{k}"))
}

/// A consistency level for one operation, for `n` replicas: mostly
/// `quorum`, often `one`, `two` or `all`, sometimes R and W drawn apart,
/// one in twenty also requiring a primary. The real-process harness
/// ([`crate::chaos`]) draws from the same mix.
pub fn draw_consistency<R: rand::Rng + ?Sized>(rng: &mut R, n: u8) -> Consistency {
    let mut c = match rng.random_range(0..20) {
        0..=9 => Consistency::QUORUM,
        10..=12 => Consistency::ONE,
        13..=14 => Consistency::TWO,
        15..=16 => Consistency::ALL,
        _ => Consistency {
            read: Level::Exactly(rng.random_range(1..=n)),
            write: Level::Exactly(rng.random_range(1..=n)),
            primary_reads: 0,
            primary_writes: 0,
        },
    };
    if rng.random_range(0..20) == 0 {
        c.primary_reads = 1;
        c.primary_writes = 1;
    }
    c
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
            closed: false,
            last_ok: sim.now,
        }
    }

    /// Wakes every client at a small random time.
    pub fn start(&mut self, sim: &mut Sim) {
        self.last_ok = sim.now;
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

    /// Whether no operation is in flight.
    pub fn idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// When an operation last succeeded.
    pub fn last_ok(&self) -> Duration {
        self.last_ok
    }

    /// How long a client waits for a reply before it gives up.
    pub fn client_timeout(&self) -> Duration {
        self.client_timeout
    }

    /// Issues nothing more: operations in flight still end (by a reply or
    /// the client's timeout).
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Records every operation still in flight as `Unknown`, as if its
    /// client gave up now, so the history the checks read is complete.
    /// Returns how many there were.
    pub fn abandon_in_flight(&mut self, sim: &mut Sim) -> usize {
        let tags: Vec<ClientTag> = self.in_flight.keys().copied().collect();
        for &tag in &tags {
            self.finish(sim, tag, Outcome::Unknown);
        }
        tags.len()
    }

    /// A client's timer: issue its next operation, or give up on one.
    pub fn on_wake(&mut self, sim: &mut Sim, client: usize, timeout_of: Option<ClientTag>) {
        if let Some(tag) = timeout_of {
            if self.in_flight.get(&tag).is_some_and(|f| f.client == client) {
                self.finish(sim, tag, Outcome::Unknown);
            }
            return;
        }
        if self.clients[client].busy.is_some() || self.closed || self.issued >= self.limit {
            return;
        }
        self.issued += 1;
        let consistency = draw_consistency(&mut sim.rng, sim.params.replicas as u8);
        let roll: u32 = sim.rng.random_range(0..10);
        if roll == 0 {
            let key = self.keys + sim.rng.random_range(0..COUNTER_KEYS);
            return self.send(sim, client, key, consistency, |sent_ms, tag| {
                let update = Update {
                    op: Op::Add(1),
                    now_ms: sent_ms,
                };
                let request = Request::Update {
                    key: key_name(key),
                    update: tagged(tag, &update.encode()),
                    consistency,
                };
                (Kind::Incr, request)
            });
        }
        if roll <= 2 {
            let key = self.keys + COUNTER_KEYS + sim.rng.random_range(0..RESP_KEYS);
            let c = &mut self.clients[client];
            c.written += 1;
            let data = Bytes::from(format!("r{client}-{}", c.written));
            let draw = resp::draw(sim, data);
            return self.send(sim, client, key, consistency, |sent_ms, tag| {
                resp::request(draw, key_name(key), sent_ms, tag, consistency)
            });
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
        self.send(sim, client, key, consistency, |_, _| (kind, request));
    }

    /// Sends the request `build` makes for `client` to a random node, with
    /// its timeout. `build` is given the node's clock when the request
    /// arrives (what a gateway would stamp) and the operation's tag.
    fn send(
        &mut self,
        sim: &mut Sim,
        client: usize,
        key: usize,
        consistency: Consistency,
        build: impl FnOnce(u64, ClientTag) -> (Kind, Request),
    ) {
        // A client knows the members that have not left (or died).
        let members = sim.members();
        let node = members[sim.rng.random_range(0..members.len())];
        let at = sim.now + Duration::from_micros(sim.rng.random_range(10..500));
        self.send_to(sim, client, node, at, key, consistency, build);
    }

    /// Sends the request `build` makes to `node`, arriving at `at`, and
    /// sets its timeout.
    #[allow(clippy::too_many_arguments)]
    fn send_to(
        &mut self,
        sim: &mut Sim,
        client: usize,
        node: usize,
        at: Duration,
        key: usize,
        consistency: Consistency,
        build: impl FnOnce(u64, ClientTag) -> (Kind, Request),
    ) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let sent_ms = sim.nodes[node].local(at).as_millis() as u64;
        let (kind, request) = build(sent_ms, tag);
        if client != SWEEPER {
            self.clients[client].busy = Some(tag);
        }
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
        let Some(flight) = self.in_flight.get_mut(&tag) else {
            return;
        };
        let client = flight.client;
        if client != SWEEPER && self.clients[client].busy != Some(tag) {
            return; // the client already gave up on it
        }
        let key = flight.key;
        let recorded = match outcome {
            Ok(response) => {
                let sdk = key < self.keys;
                if sdk {
                    self.clients[client]
                        .seen
                        .insert(key, (response.context.clone(), response.values.clone()));
                }
                if let Kind::Resp {
                    op: RespOp::Get { shown, at_ms },
                    ..
                } = &mut flight.kind
                {
                    // The gateway resolves by its own clock when the reply
                    // comes (the gateway and its node are one process).
                    *at_ms = sim.nodes[flight.node].local(sim.now).as_millis() as u64;
                    *shown = quorra_node::resp::update::visible(&response.values, *at_ms);
                }
                // The RESP checks read the final state and the updater's
                // log instead of the values.
                Outcome::from_response(response, sdk)
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
        if matches!(outcome, Outcome::Ok { .. }) && client != SWEEPER {
            self.last_ok = sim.now;
        }
        self.history.records.push(Record {
            tag,
            client,
            key: f.key,
            kind: f.kind,
            consistency: f.consistency,
            node: f.node as u64 + 1,
            invoked: f.invoked,
            completed: sim.now,
            outcome,
        });
        if client == SWEEPER {
            return;
        }
        self.clients[client].busy = None;
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
