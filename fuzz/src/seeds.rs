//! The seed corpus: real inputs, made by the code that sends them.
//!
//! A fuzzer that starts from well-formed frames reaches the decoders' deep
//! branches in seconds instead of hours. So the seeds are what a running
//! cluster really sends: three node cores in memory serve puts, gets,
//! deletes and updates (and their timers run anti-entropy, handoff and
//! purges), and every peer message they exchange is kept; three gossipers
//! do their rounds; the clients' frames, contexts, stored objects, RESP
//! requests and legacy records are made by the same encoders the node
//! uses. `cargo run -p quorra-fuzz --bin seed-corpus` writes them to
//! `fuzz/corpus/`; the workspace's tests check that every one passes its
//! target's checks (a message a node sends must decode back to itself).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use quorra_client::protocol::{ClientMessage, NodeMessage};
use quorra_client::{Consistency, Context, Request, wire};
use quorra_gossip::Target;
use quorra_node::core::Node;
use quorra_node::resp::update::{Op, SetExpiry, Update};
use quorra_node::resp::value::Stored;
use quorra_node::runtime::transport::PeerFrame;
use quorra_node::storage::layout::data_key;
use quorra_node::storage::store::encode_object;
use quorra_node::version::context;
use quorra_ring::{NodeId, PartitionId};

use crate::{gossiper, node_of};

/// Most seeds kept per kind of message, so the corpus stays small.
const PER_KIND: usize = 4;

/// Every seed: (target, bytes), in a fixed order.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let Traffic {
        peer,
        client,
        contexts,
        objects,
    } = cluster_traffic();
    out.extend(peer.into_iter().map(|b| ("peer_frame", b)));
    out.extend(client.into_iter().map(|b| ("client_frame", b)));
    out.extend(contexts.iter().map(|b| ("context", b.clone())));
    out.extend(gossip_traffic().into_iter().map(|b| ("peer_frame", b)));
    for update in updates() {
        out.push(("stored_record", update.encode().to_vec()));
    }
    for object in &objects {
        out.push(("stored_record", object.clone()));
    }
    out.push((
        "stored_record",
        Stored::decode(&Bytes::from_static(b"v")).encode().to_vec(),
    ));
    for request in [
        &b"\x05*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"[..],
        b"\x02GET k\r\nINCRBY \"c\\x41\" 5\n",
        b"\x00*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*1\r\n$4\r\nPING\r\n",
        b"\x09*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n$3\r\n100\r\n",
    ] {
        out.push(("resp_request", request.to_vec()));
    }
    // Layout-1 records (tag 0: `d`, 1: `t`) and a layout-2 one (tag 2).
    for object in objects.iter().take(2) {
        let mut record = vec![0u8];
        let mut key = 7u32.to_be_bytes().to_vec();
        key.extend_from_slice(b"k1");
        record.push(key.len() as u8);
        record.extend_from_slice(&key);
        record.extend_from_slice(&(object.len() as u16).to_be_bytes());
        record.extend_from_slice(object);
        record.extend_from_slice(&[1, key.len() as u8]);
        record.extend_from_slice(&key);
        record.extend_from_slice(&[0, 0]);
        let current = data_key(PartitionId(7), b"k1");
        record.extend_from_slice(&[2, (current.len() - 1) as u8]);
        record.extend_from_slice(&current[1..]);
        record.extend_from_slice(&(object.len() as u16).to_be_bytes());
        record.extend_from_slice(object);
        out.push(("storage_upgrade", record));
    }
    out
}

fn updates() -> Vec<Update> {
    [
        Op::Set {
            value: Bytes::from_static(b"v"),
            expiry: SetExpiry::Keep,
            present: None,
            want_old: false,
        },
        Op::Set {
            value: Bytes::from_static(b"w"),
            expiry: SetExpiry::Keep,
            present: Some(false),
            want_old: true,
        },
        Op::Add(5),
        Op::Expire(Some(1_000)),
        Op::Delete,
        Op::Purge,
    ]
    .into_iter()
    .map(|op| Update { op, now_ms: 500 })
    .collect()
}

/// Peer frames, client frames, contexts and stored objects.
struct Traffic {
    peer: Vec<Vec<u8>>,
    client: Vec<Vec<u8>>,
    contexts: Vec<Vec<u8>>,
    objects: Vec<Vec<u8>>,
}

/// What a three-node cluster sends while serving a small workload: peer
/// frames, client frames (requests and replies), contexts, and the
/// encoded objects node 1 stores.
fn cluster_traffic() -> Traffic {
    let mut nodes: Vec<Node> = (1..=3).map(|id| node_of(id, 3)).collect();
    let mut kinds: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    let mut client = Vec::new();
    let mut contexts = Vec::new();
    let mut now = Duration::ZERO;
    let mut tag = 0;
    let mut last_context = Context::empty();
    let requests = |context: &Context, i: usize| {
        let key = Bytes::from(format!("k{}", i % 3));
        match i % 4 {
            0 => Request::Put {
                key,
                value: Bytes::from(format!("value {i}")),
                context: context.clone(),
                consistency: Consistency::QUORUM,
            },
            1 => Request::Get {
                key,
                consistency: Consistency::ALL,
            },
            2 => Request::Update {
                key: Bytes::from_static(b"counter"),
                update: Update {
                    op: Op::Add(1),
                    now_ms: 1,
                }
                .encode(),
                consistency: Consistency::QUORUM,
            },
            _ => Request::Delete {
                key,
                context: context.clone(),
                consistency: Consistency::ONE,
            },
        }
    };
    for i in 0..24 {
        let request = requests(&last_context, i);
        let message = ClientMessage::Request {
            id: i as u64,
            request: request.clone(),
        };
        client.push(frame_body(&message));
        tag += 1;
        nodes[i % 3].handle_client(now, tag, request);
        for _ in 0..20 {
            now += Duration::from_millis(5);
            exchange(&mut nodes, now, &mut kinds);
        }
        for node in &mut nodes {
            while let Some((_, outcome)) = node.poll_reply() {
                if let Ok(response) = &outcome
                    && !response.context.as_bytes().is_empty()
                {
                    last_context = response.context.clone();
                    contexts.push(response.context.as_bytes().to_vec());
                }
                let reply = NodeMessage::Outcome {
                    id: i as u64,
                    outcome,
                };
                client.push(frame_body(&reply));
            }
        }
    }
    // Timers: anti-entropy, hint handoff, purges.
    for _ in 0..400 {
        now += Duration::from_millis(250);
        for node in &mut nodes {
            node.handle_timeout(now);
        }
        exchange(&mut nodes, now, &mut kinds);
    }
    client.extend(
        [
            ClientMessage::Routing { id: 1 },
            ClientMessage::Status { id: 2 },
        ]
        .iter()
        .map(frame_body),
    );
    contexts.truncate(PER_KIND);
    client.truncate(PER_KIND * 8);
    let ring = nodes[0].ring().clone();
    let objects = ["k0", "k1", "k2", "counter"]
        .iter()
        .filter_map(|key| {
            let partition = ring.partition_of_key(key.as_bytes());
            nodes[0]
                .store()
                .get(partition, key.as_bytes())
                .ok()
                .flatten()
        })
        .map(|o| encode_object(&o).expect("an object encodes"))
        .collect();
    contexts.push(
        context::encode(&context::decode(&last_context).expect("a node's context decodes"))
            .as_bytes()
            .to_vec(),
    );
    Traffic {
        peer: kinds.into_values().flatten().collect(),
        client,
        contexts,
        objects,
    }
}

/// Delivers every message the nodes want to send (flushing first, as a
/// driver does), keeping up to [`PER_KIND`] frames of each kind.
fn exchange(nodes: &mut [Node], now: Duration, kinds: &mut BTreeMap<&'static str, Vec<Vec<u8>>>) {
    for _ in 0..8 {
        let mut moved = false;
        for i in 0..nodes.len() {
            if nodes[i].poll_flush(now) {
                nodes[i].store().flush().expect("a memory store flushes");
                nodes[i].handle_flushed(now);
            }
            while let Some((to, message)) = nodes[i].poll_transmit() {
                moved = true;
                let kept = kinds.entry(message.kind()).or_default();
                if kept.len() < PER_KIND {
                    kept.push(frame_body(&PeerFrame::Core(message.clone())));
                }
                let from = NodeId(i as u64 + 1);
                if let Some(target) = nodes.get_mut(to.0 as usize - 1) {
                    target.handle_message(now, from, message);
                }
            }
        }
        if !moved {
            break;
        }
    }
}

/// Gossip rounds between two gossipers (nodes 1 and 2): syns, acks and
/// what follows, up to [`PER_KIND`] of each kind.
fn gossip_traffic() -> Vec<Vec<u8>> {
    let mut pair = [gossiper(1), gossiper(2)];
    let mut kinds: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut now = Duration::ZERO;
    for _ in 0..6 {
        now += Duration::from_secs(1);
        for g in &mut pair {
            g.handle_timeout(now);
        }
        for _ in 0..4 {
            for from in 0..2 {
                while let Some((target, message)) = pair[from].poll_transmit() {
                    let kind = format!("{message:?}");
                    let kind = kind.split([' ', '{', '(']).next().unwrap_or("").to_string();
                    let kept = kinds.entry(kind).or_default();
                    if kept.len() < PER_KIND {
                        kept.push(frame_body(&PeerFrame::Gossip(message.clone())));
                    }
                    let to = match target {
                        Target::Member(id, _) => id.0 as usize,
                        Target::Seed(address) => address.ends_with(".2:7000") as usize + 1,
                    };
                    if (1..=2).contains(&to) && to != from + 1 {
                        let sender = NodeId(from as u64 + 1);
                        pair[to - 1].handle_message(now, sender, message);
                    }
                }
            }
        }
    }
    kinds.into_values().flatten().collect()
}

/// A frame's body (version byte and payload), as the decoders see it.
fn frame_body<T: serde::Serialize>(message: &T) -> Vec<u8> {
    wire::encode(message).expect("a message encodes")[4..].to_vec()
}
