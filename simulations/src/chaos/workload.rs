//! The clients of a chaos run: real SDK clients over QUIC, recording every
//! operation in the simulator's [`History`] so the simulator's checks judge
//! it.
//!
//! Each client is a task with its own RNG drawn from the seed, one request
//! in flight, doing what the simulator's clients do on the SDK keys: gets,
//! puts with a context (read-modify-write) or blind, deletes with a
//! context, every put writing a value unique in the run; and one operation
//! in ten an `INCR` of a counter key: the RESP gateway's update, sent
//! through the SDK by even clients and over a real RESP connection to a
//! node chosen at random by odd ones ([`super::resp`]). A RESP reply does
//! not say which nodes acknowledged the write, so an acknowledged RESP
//! increment counts as owed unless every node lost its disk after it:
//! stricter than the SDK's rule, which knows the acknowledging nodes (with
//! W of 2, two wipes in turn of exactly the two nodes that held an
//! increment before anti-entropy copied it could fail it falsely; a
//! failure of that shape is to be read with the plan in hand). Consistency levels come from the simulator's mix
//! ([`draw_consistency`]). Each request goes either through a routing
//! client (zero-hop: straight to a replica) or to one node chosen at random
//! (which then coordinates it, wherever it stands in a partition), so
//! minority sides and paused nodes get requests too.
//!
//! Outcomes: a reply is `Ok`; an error the cluster sent back is `Failed`;
//! anything else (a timeout, a connection lost, no node reachable) is
//! `Unknown`, since the request may have been applied. Neither of the last
//! two is owed by the checks. Times are from the start of the workload.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quorra_client::{Client, ClientError, Context, Request};
use quorra_node::core::ClientTag;
use quorra_node::resp::update::{Op, Update};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::cluster::RESP_PASSWORD;
use super::resp::{Answer, RespClient};
use super::schedule::{COUNTER_KEYS, Plan};
use crate::history::{Kind, Outcome, Record};
use crate::workload::{draw_consistency, key_name};

/// How long a client waits for one answer (three times the nodes' request
/// timeout, as the simulator's clients).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where requests go: a routing client and one client per node.
#[derive(Clone)]
pub struct Targets {
    /// Routes each request to a replica of its key.
    pub routed: Client,
    /// Talks only to node `i` (no routing, no retries elsewhere).
    pub pinned: Vec<Client>,
    /// Node `i`'s RESP address (the odd clients' `INCR`s go there).
    pub resp: Vec<SocketAddr>,
    /// The ids of every node the run may start: a RESP reply does not say
    /// which nodes acknowledged a write.
    pub everyone: Vec<u64>,
}

/// What the clients recorded.
#[derive(Default)]
pub struct Recorder {
    records: Mutex<Vec<Record>>,
}

impl Recorder {
    /// Every record so far, in completion order.
    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.records.lock().expect("recorder lock"))
    }

    fn push(&self, record: Record) {
        self.records.lock().expect("recorder lock").push(record);
    }
}

/// Runs client `client` of `plan` from `start` until `end`.
pub async fn run_client(
    plan: Plan,
    client: usize,
    targets: Targets,
    recorder: Arc<Recorder>,
    start: Instant,
    end: Instant,
) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(
        plan.seed ^ (client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let mut seen: BTreeMap<usize, (Context, Vec<Bytes>)> = BTreeMap::new();
    let mut resp: BTreeMap<usize, RespClient> = BTreeMap::new();
    let mut written = 0u64;
    // Tags are unique in the run: the client in the high bits.
    let mut next_tag: ClientTag = (client as u64 + 1) << 40;
    while Instant::now() < end {
        next_tag += 1;
        let consistency = draw_consistency(&mut rng, 3);
        let (key, kind, request) = if rng.random_range(0..10) == 0 {
            let key = plan.keys + rng.random_range(0..COUNTER_KEYS);
            let update = Update {
                op: Op::Add(1),
                now_ms: wall_ms(),
            };
            let request = Request::Update {
                key: key_name(key),
                update: update.encode(),
                consistency,
            };
            (key, Kind::Incr, request)
        } else {
            let key = rng.random_range(0..plan.keys);
            let last = seen.get(&key).cloned();
            let roll: u32 = rng.random_range(0..100);
            match (roll, last) {
                (0..45, _) | (85.., None) => (
                    key,
                    Kind::Get,
                    Request::Get {
                        key: key_name(key),
                        consistency,
                    },
                ),
                (45..85, last) => {
                    written += 1;
                    let value = Bytes::from(format!("c{client}-{written}"));
                    let (context, saw) = match last {
                        Some(s) if rng.random_range(0..10) < 7 => s,
                        _ => (Context::empty(), Vec::new()),
                    };
                    let request = Request::Put {
                        key: key_name(key),
                        value: value.clone(),
                        context,
                        consistency,
                    };
                    (key, Kind::Put { value, saw }, request)
                }
                (_, Some((context, saw))) => (
                    key,
                    Kind::Delete { saw },
                    Request::Delete {
                        key: key_name(key),
                        context,
                        consistency,
                    },
                ),
            }
        };
        let (node, invoked, outcome) =
            if kind == Kind::Incr && over_resp(client) && !targets.resp.is_empty() {
                let target = rng.random_range(0..targets.resp.len());
                let conn = resp.entry(target).or_insert_with(|| {
                    RespClient::new(targets.resp[target], RESP_PASSWORD, CLIENT_TIMEOUT)
                });
                let invoked = start.elapsed();
                let outcome = match conn.incr(&key_name(key), consistency).await {
                    // Which nodes acknowledged it, the reply does not say;
                    // owed unless every node lost its disk after it (see
                    // the module doc).
                    Answer::Value(_) => Outcome::Ok {
                        values: Vec::new(),
                        fallback: false,
                        answered: targets.everyone.iter().map(|&n| (n, None)).collect(),
                        answer: None,
                    },
                    Answer::Error(e) => Outcome::Failed(e),
                    Answer::Lost(_) => Outcome::Unknown,
                };
                (target as u64 + 1, invoked, outcome)
            } else {
                let target = rng.random_range(0..=targets.pinned.len());
                let (via, node) = match targets.pinned.get(target) {
                    Some(c) => (c, target as u64 + 1),
                    None => (&targets.routed, 0),
                };
                let invoked = start.elapsed();
                let sdk = key < plan.keys;
                let outcome = match via.request(request).await {
                    Ok(response) => {
                        if sdk {
                            seen.insert(key, (response.context.clone(), response.values.clone()));
                        }
                        Outcome::from_response(response, sdk)
                    }
                    Err(ClientError::Request(e)) => Outcome::Failed(e.to_string()),
                    Err(_) => Outcome::Unknown,
                };
                (node, invoked, outcome)
            };
        recorder.push(Record {
            tag: next_tag,
            client,
            key,
            kind,
            consistency,
            node,
            invoked,
            completed: start.elapsed(),
            outcome,
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..20))).await;
    }
}

/// Reads every key at `all` through the routing client, retrying each
/// until it succeeds or `deadline` passes; the reads join the history
/// (their answers are checked like any other). Returns the keys that could
/// not be read.
pub async fn read_all(
    plan: &Plan,
    targets: &Targets,
    recorder: &Recorder,
    start: Instant,
    deadline: Instant,
) -> Vec<usize> {
    let mut unread = Vec::new();
    for key in 0..plan.keys + COUNTER_KEYS {
        let mut done = false;
        while !done && Instant::now() < deadline {
            let invoked = start.elapsed();
            let answer = targets
                .routed
                .get(key_name(key), quorra_client::Consistency::ALL)
                .await;
            if let Ok(response) = answer {
                let sdk = key < plan.keys;
                recorder.push(Record {
                    tag: ((plan.clients as u64 + 1) << 40) + key as u64,
                    client: plan.clients,
                    key,
                    kind: Kind::Get,
                    consistency: quorra_client::Consistency::ALL,
                    node: 0,
                    invoked,
                    completed: start.elapsed(),
                    outcome: Outcome::from_response(response, sdk),
                });
                done = true;
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if !done {
            unread.push(key);
        }
    }
    unread
}

/// Whether client `client` sends its increments over RESP (the odd ones).
pub fn over_resp(client: usize) -> bool {
    client % 2 == 1
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}
