//! What each fuzz target checks, one function per decoder that takes bytes
//! from outside the node.
//!
//! Every function takes the fuzzer's bytes and panics only if a property a
//! user relies on is broken; an input a decoder refuses is fine, as long as
//! it is refused with an error and the node goes on. Where a decoder has an
//! encoder, a decoded value must encode and decode back to itself (a frame
//! the node accepted and forwards must mean the same to the next node), and
//! what the decoded value is then fed to is the real consumer: a client
//! request goes into a node core, a peer message into a core of a three-node
//! cluster, a gossip message into a gossiper, a RESP request into the
//! command parser, stored records into the layout upgrade.
//!
//! The same functions run in two ways: the binaries in `fuzz_targets/`
//! hand them libFuzzer's inputs (`fuzz/run.sh`, or `cargo fuzz`), and
//! `tests/corpus.rs` replays the committed corpus and every input that once
//! crashed (`fuzz/regressions/`) as part of the workspace's tests, so a
//! decoder change that breaks one fails `cargo test` without a fuzzer.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quorra_client::protocol::{ClientMessage, NodeMessage};
use quorra_client::{Context, wire};
use quorra_gossip::{Entry, Gossiper, Info, Status, settings_hash};
use quorra_node::core::{Node, Options, Updater};
use quorra_node::resp::codec::{Limits, parse_request_within};
use quorra_node::resp::update::{Answer, RespUpdater, Update};
use quorra_node::resp::value::Stored;
use quorra_node::runtime::transport::PeerFrame;
use quorra_node::storage::memory::MemoryEngine;
use quorra_node::storage::store::{decode_object, encode_object};
use quorra_node::storage::upgrade::upgrade;
use quorra_node::storage::{Engine, Store, WriteOp};
use quorra_node::version::{Actor, context};
use quorra_ring::{Member, NodeId, Ring, RingConfig, allocate_tokens};

pub mod seeds;

/// One target's checks: they panic on a broken property.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name: the directories under `fuzz/corpus/` and
/// `fuzz/regressions/` and the binaries in `fuzz_targets/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("client_frame", client_frame),
    ("peer_frame", peer_frame),
    ("resp_request", resp_request),
    ("context", context_bytes),
    ("stored_record", stored_record),
    ("storage_upgrade", storage_upgrade),
];

/// A decoded value encodes and decodes back to itself.
fn round_trips<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let frame = wire::encode(value).expect("a decoded frame encodes");
    let back: T = wire::decode(&frame[4..]).expect("an encoded frame decodes");
    assert_eq!(&back, value, "a frame changed meaning on a round trip");
}

/// A frame body from a client (`ClientMessage`) or from a node to a client
/// (`NodeMessage`, which the SDK decodes): decodes or is refused; a decoded
/// request goes into a one-node core, which must answer it or refuse it.
pub fn client_frame(data: &[u8]) {
    if let Ok(message) = wire::decode::<NodeMessage>(data) {
        round_trips(&message);
    }
    let Ok(message) = wire::decode::<ClientMessage>(data) else {
        return;
    };
    round_trips(&message);
    if let ClientMessage::Request { request, .. } = message {
        let mut node = node_of(1, 1);
        node.handle_client(Duration::ZERO, 1, request);
        node.handle_timeout(Duration::from_secs(60));
    }
}

/// A frame body from a peer (datagram or stream): decodes or is refused; a
/// decoded core message goes into node 1 of a three-node cluster as if
/// node 2 sent it, a gossip message into a gossiper.
pub fn peer_frame(data: &[u8]) {
    let Ok(frame) = wire::decode::<PeerFrame>(data) else {
        return;
    };
    round_trips(&frame);
    match frame {
        PeerFrame::Hello { .. } => {}
        PeerFrame::Core(message) => {
            let mut node = node_of(1, 3);
            node.handle_message(Duration::ZERO, NodeId(2), message);
            node.handle_timeout(Duration::from_secs(60));
        }
        PeerFrame::Gossip(message) => {
            let mut gossip = gossiper(1);
            gossip.handle_message(Duration::ZERO, NodeId(2), message);
            gossip.handle_timeout(Duration::from_secs(60));
        }
    }
}

/// Bytes on a RESP connection, arriving in two reads split where the first
/// byte says: parsed under both limits; every request parsed goes through
/// the command parser, and its arguments, sent again as a multibulk
/// request, parse back to the same arguments.
pub fn resp_request(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    for limits in [Limits::AUTHENTICATED, Limits::UNAUTHENTICATED] {
        let cut = usize::from(split) % (rest.len() + 1);
        let mut buf = BytesMut::from(&rest[..cut]);
        let mut fed = false;
        loop {
            match parse_request_within(&mut buf, limits) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty(), "a request without arguments");
                    assert!(args.len() <= limits.args, "more arguments than the limit");
                    let _ = quorra_node::resp::command::parse(&args);
                    let mut again = BytesMut::from(&multibulk(&args)[..]);
                    let back = parse_request_within(&mut again, Limits::AUTHENTICATED)
                        .expect("a multibulk request of parsed arguments parses");
                    assert_eq!(
                        back.as_ref(),
                        Some(&args),
                        "arguments changed on re-parsing"
                    );
                    assert!(again.is_empty(), "bytes left after one request");
                }
                Ok(None) if !fed => {
                    buf.extend_from_slice(&rest[cut..]);
                    fed = true;
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// `args` as a RESP multibulk request.
fn multibulk(args: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A context a client sends back: decodes within its limits or is
/// refused; a decoded one encodes and decodes to the same version vector.
pub fn context_bytes(data: &[u8]) {
    let Ok(vector) = context::decode(&Context::from_bytes(data.to_vec())) else {
        return;
    };
    let encoded = context::encode(&vector);
    let back = context::decode(&encoded).expect("an encoded context decodes");
    assert_eq!(back, vector, "a context changed meaning on a round trip");
}

/// A stored object (the engine's value bytes), a RESP value envelope, an
/// update (sent by a peer's gateway) applied to the envelope, and an
/// update's answer: decode or are refused, and decoded objects re-encode
/// to themselves.
pub fn stored_record(data: &[u8]) {
    if let Ok(object) = decode_object(data, || "fuzzed".into()) {
        let bytes = encode_object(&object).expect("a decoded object encodes");
        let back = decode_object(&bytes, || "re-encoded".into()).expect("it decodes");
        assert_eq!(back, object, "an object changed on a round trip");
    }
    let value = Bytes::copy_from_slice(data);
    let stored = Stored::decode(&value);
    assert_eq!(
        Stored::decode(&stored.encode()),
        stored,
        "an envelope changed"
    );
    let _ = Answer::decode(data);
    if let Ok(update) = rmp_serde::from_slice::<Update>(data) {
        let update = update.encode();
        let values = [value.clone(), stored.encode()];
        let writer = Actor::new(NodeId(1), 1 << 32 | 1);
        let _ = RespUpdater.reads_first(&update);
        for present in [&values[..0], &values[..1], &values[..]] {
            let _ = RespUpdater.apply(&update, present, writer);
        }
    }
}

/// Records of a data directory written by an earlier layout (each: a tag
/// byte choosing the legacy data or tombstone prefix or a current one, a
/// key and a value, length-prefixed): the upgrade runs or refuses, and a
/// second run has nothing left to move.
pub fn storage_upgrade(data: &[u8]) {
    let engine = MemoryEngine::new();
    let mut ops = Vec::new();
    let mut rest = data;
    while let [tag, klen, rest2 @ ..] = rest {
        let klen = usize::from(*klen).min(rest2.len());
        let (key, rest3) = rest2.split_at(klen);
        let Some((vlen, rest4)) = rest3.split_first_chunk::<2>() else {
            break;
        };
        let vlen = usize::from(u16::from_be_bytes(*vlen)).min(rest4.len());
        let (value, rest5) = rest4.split_at(vlen);
        let prefix = [b'd', b't', b'D', b'T'][usize::from(*tag) % 4];
        let mut full = vec![prefix];
        full.extend_from_slice(key);
        ops.push(WriteOp::Put {
            key: full,
            value: value.to_vec(),
        });
        rest = rest5;
    }
    if engine.write(ops).is_err() {
        return;
    }
    if upgrade(&engine).is_ok() {
        assert_eq!(
            upgrade(&engine).expect("a second upgrade runs"),
            0,
            "a second upgrade moved records"
        );
    }
}

/// The ring of `nodes` (1 to 3) nodes with 8 tokens each, made once.
fn ring_of(nodes: u64) -> Ring {
    static RINGS: OnceLock<Vec<Ring>> = OnceLock::new();
    let rings = RINGS.get_or_init(|| {
        let config = RingConfig::default();
        let mut ring = Ring::new(config, Vec::new()).expect("an empty ring");
        (1..=3)
            .map(|n| {
                let tokens = allocate_tokens(&ring, NodeId(n), "z1", 8).expect("tokens");
                let mut members = ring.members().to_vec();
                members.push(Member::new(NodeId(n), "z1", tokens));
                ring = Ring::new(config, members).expect("a ring");
                ring.clone()
            })
            .collect()
    });
    rings[nodes as usize - 1].clone()
}

/// Node `id` of a cluster of `nodes` (1 to 3), on an empty memory store:
/// a fresh one for every input, so an input's effect never depends on the
/// ones before it.
fn node_of(id: u64, nodes: u64) -> Node {
    let ring = ring_of(nodes);
    let store = Store::new(Arc::new(MemoryEngine::new()));
    let options = Options {
        updater: Some(Arc::new(RespUpdater)),
        ..Options::default()
    };
    Node::new(NodeId(id), ring, store, options, Duration::ZERO).expect("a node")
}

/// A gossiper of node `me` (1 to 3), knowing the other two as normal
/// members.
fn gossiper(me: u64) -> Gossiper {
    let entry = |id: u64| Entry {
        id: NodeId(id),
        generation: 1,
        heartbeat: 0,
        version: 1,
        info: Info {
            status: Status::Normal,
            address: format!("10.0.0.{id}:7000"),
            zone: "z1".into(),
            tokens: Vec::new(),
            storage_failing: false,
            layout: Default::default(),
        },
    };
    let mut gossip = Gossiper::new(
        entry(me),
        "quorra",
        settings_hash(1024, 3),
        vec!["10.0.0.2:7000".into()],
        Default::default(),
        me,
        Duration::ZERO,
    );
    gossip.remember((1..=3).filter(|&id| id != me).map(entry));
    gossip
}
