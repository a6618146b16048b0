//! The driving contract of the sans-IO node core, on a one-node cluster:
//! what a driver must do (flush when asked, then hand the flush back) and
//! what the node answers to bad input.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Consistency, Context, Request, RequestError};
use quorra_node::core::{Node, Options, PeerMessage};
use quorra_node::storage::memory::MemoryEngine;
use quorra_node::storage::{Store, SyncMode};
use quorra_ring::{Member, NodeId, Ring, RingConfig, allocate_tokens};

fn one_node_ring() -> Ring {
    let empty = Ring::new(RingConfig::default(), Vec::new()).unwrap();
    let tokens = allocate_tokens(&empty, NodeId(1), "z1", 8).unwrap();
    Ring::new(
        RingConfig::default(),
        vec![Member::new(NodeId(1), "z1", tokens)],
    )
    .unwrap()
}

fn start(engine: &Arc<MemoryEngine>, sync: SyncMode) -> Node {
    let options = Options {
        sync,
        ..Options::default()
    };
    Node::new(
        NodeId(1),
        one_node_ring(),
        Store::new(engine.clone()),
        options,
        Duration::ZERO,
    )
    .unwrap()
}

fn put(key: &str, value: &str) -> Request {
    Request::Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        context: Context::empty(),
        consistency: Consistency::QUORUM,
    }
}

#[test]
fn a_write_is_acknowledged_only_after_the_flush_the_node_asked_for() {
    let engine = Arc::new(MemoryEngine::new());
    let mut node = start(&engine, SyncMode::Always);
    let now = Duration::from_millis(1);
    node.handle_client(now, 7, put("k", "v"));
    assert!(
        node.poll_reply().is_none(),
        "no acknowledgement before durability"
    );
    assert!(node.poll_flush(now), "the node asks for a flush");
    assert!(!node.poll_flush(now), "only one flush at a time");
    // A crash now would lose the write: it was never acknowledged.
    use quorra_node::storage::Engine;
    engine.flush().unwrap();
    node.handle_flushed(now);
    let (tag, outcome) = node.poll_reply().expect("a reply after the flush");
    assert_eq!(tag, 7);
    let response = outcome.unwrap();
    assert_eq!(response.values, vec![Bytes::from_static(b"v")]);
    assert_eq!(response.receipt.answered.len(), 1);

    node.handle_client(
        now,
        8,
        Request::Get {
            key: Bytes::from_static(b"k"),
            consistency: Consistency::ONE,
        },
    );
    let (_, read) = node.poll_reply().expect("reads need no flush");
    assert_eq!(read.unwrap().values, vec![Bytes::from_static(b"v")]);
}

#[test]
fn periodic_mode_acknowledges_before_the_flush() {
    let engine = Arc::new(MemoryEngine::new());
    let mut node = start(
        &engine,
        SyncMode::Periodic {
            interval: Duration::from_millis(50),
        },
    );
    node.handle_client(Duration::from_millis(1), 1, put("k", "v"));
    assert!(node.poll_reply().is_some());
    assert!(
        node.poll_timeout() <= Duration::from_millis(51),
        "a flush is scheduled"
    );
}

#[test]
fn every_start_is_a_new_life() {
    let engine = Arc::new(MemoryEngine::new());
    // A store that never heard of another node gossips generation 0 at
    // every start (members who know an earlier life of this id must keep
    // winning however often it restarts), while its dots come from a new
    // incarnation each time, the first one drawn.
    let first = start(&engine, SyncMode::Always);
    assert_eq!(first.started_as(), 0);
    let second = start(&engine, SyncMode::Always);
    assert_eq!(second.started_as(), 0);
    assert_eq!(second.incarnation(), first.incarnation() + 1);
    // Hearing of a peer moves this life to generation 1 ...
    let mut third = start(&engine, SyncMode::Always);
    third.handle_peer_incarnation(NodeId(2), 1);
    assert_eq!(third.started_as(), 1);
    // ... and later lives gossip their count of starts on the store.
    assert_eq!(start(&engine, SyncMode::Always).started_as(), 4);
    // Even after a crash that loses everything unflushed.
    engine.crash();
    let fifth = start(&engine, SyncMode::Always);
    assert_eq!(fifth.started_as(), 5);
    assert_eq!(fifth.incarnation(), first.incarnation() + 4);
}

#[test]
fn a_node_on_an_empty_store_never_reissues_an_earlier_lifes_dots() {
    // A lost disk: the same id starts on an empty store, with the entropy
    // of another process. Its first dots must come from an incarnation no
    // earlier life ran, so that a write it coordinates before gossip tells
    // it of the earlier life is not taken for one replicas already hold.
    use quorra_node::core::life::first_incarnation;
    let id = NodeId(1);
    let mut drawn: Vec<u32> = (0..1000u64)
        .map(|process| first_incarnation(process.wrapping_mul(0x9E37_79B9_7F4A_7C15), id))
        .collect();
    assert!(drawn.iter().all(|&i| (1..1 << 31).contains(&i)));
    drawn.sort_unstable();
    drawn.dedup();
    assert_eq!(drawn.len(), 1000, "two lives drew one incarnation");
}

#[test]
fn incarnation_and_identity_survive_a_power_loss_whatever_the_engine() {
    use quorra_node::membership::identity::{self, Identity};

    // An engine whose flush reaches only the OS (sled's): a power loss
    // undoes what was flushed but not synced.
    let engine = Arc::new(MemoryEngine::with_os_buffers());
    let first = start(&engine, SyncMode::Always).incarnation();
    engine.power_loss();
    let second = start(&engine, SyncMode::Always).incarnation();
    assert!(second > first, "an incarnation was run twice");

    let store = Store::new(engine.clone());
    let me = Identity {
        node: NodeId(7),
        cluster: "c".into(),
        settings: RingConfig::default(),
        zone: "z1".into(),
        tokens: Vec::new(),
        version: 3,
        left: false,
        layout: Default::default(),
    };
    identity::save(&store, &me).unwrap();
    engine.power_loss();
    assert_eq!(identity::load(&store).unwrap(), Some(me));
}

#[test]
fn bad_requests_get_typed_errors_and_the_node_keeps_serving() {
    let engine = Arc::new(MemoryEngine::new());
    let mut node = start(
        &engine,
        SyncMode::Periodic {
            interval: Duration::from_millis(50),
        },
    );
    let now = Duration::from_millis(1);
    let bad = [
        put("", "v"),
        Request::Put {
            key: Bytes::from(vec![b'k'; quorra_client::MAX_KEY_LEN + 1]),
            value: Bytes::from_static(b"v"),
            context: Context::empty(),
            consistency: Consistency::QUORUM,
        },
        Request::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from(vec![0; quorra_client::MAX_VALUE_LEN + 1]),
            context: Context::empty(),
            consistency: Consistency::QUORUM,
        },
        Request::Delete {
            key: Bytes::from_static(b"k"),
            context: Context::from_bytes(vec![1, 0xc1, 0xff]),
            consistency: Consistency::QUORUM,
        },
    ];
    for (tag, request) in bad.into_iter().enumerate() {
        node.handle_client(now, tag as u64, request);
        let (_, outcome) = node.poll_reply().expect("an immediate answer");
        assert!(
            matches!(outcome, Err(RequestError::Invalid(_))),
            "{outcome:?}"
        );
    }
    node.handle_client(
        now,
        9,
        Request::Get {
            key: Bytes::from_static(b"k"),
            consistency: Consistency::TWO,
        },
    );
    let (_, outcome) = node.poll_reply().unwrap();
    assert!(
        matches!(outcome, Err(RequestError::Consistency(_))),
        "{outcome:?}"
    );

    // A message from a node that is not a member is ignored.
    node.handle_message(now, NodeId(99), PeerMessage::Ping { id: 1 });
    assert!(node.poll_transmit().is_none());
    assert_eq!(node.stats().rejected_messages, 1);

    node.handle_client(now, 10, put("k", "fine"));
    assert!(node.poll_reply().unwrap().1.is_ok());
}

fn three_node_ring() -> Ring {
    let mut ring = Ring::new(RingConfig::default(), Vec::new()).unwrap();
    for id in 1..=3 {
        let tokens = allocate_tokens(&ring, NodeId(id), "z1", 8).unwrap();
        let mut members = ring.members();
        members.push(Member::new(NodeId(id), "z1", tokens));
        ring = Ring::new(RingConfig::default(), members).unwrap();
    }
    ring
}

#[test]
fn malformed_peer_messages_are_dropped_not_obeyed() {
    use quorra_node::core::KeyState;
    use quorra_node::version::{Actor, Object, Sibling, VersionVector};
    use quorra_ring::PartitionId;

    let ring = three_node_ring();
    let engine = Arc::new(MemoryEngine::new());
    let mut node = Node::new(
        NodeId(1),
        ring.clone(),
        Store::new(engine),
        Options::default(),
        Duration::ZERO,
    )
    .unwrap();
    let now = Duration::from_millis(1);
    let key = Bytes::from_static(b"k");
    let right = ring.partition_of_key(&key);
    let wrong = PartitionId((right.0 + 1) % 1024);
    let mut object = Object::new();
    object
        .update(
            &VersionVector::new(),
            Actor::new(NodeId(2), 1 << 32),
            Sibling::Value(Bytes::from_static(b"v")),
        )
        .unwrap();

    let bad = vec![
        // A partition that does not hold the key.
        PeerMessage::Read {
            id: 1,
            partition: wrong,
            key: key.clone(),
            hint_for: None,
        },
        // A partition that does not exist.
        PeerMessage::Repair {
            partition: PartitionId(1 << 30),
            key: key.clone(),
            object: object.clone(),
        },
        // An empty key.
        PeerMessage::Write {
            id: 2,
            partition: right,
            key: Bytes::new(),
            object: object.clone(),
            hint_for: None,
        },
        // A hint for ourselves.
        PeerMessage::Write {
            id: 3,
            partition: right,
            key: key.clone(),
            object: object.clone(),
            hint_for: Some(NodeId(1)),
        },
        // Far too many items.
        PeerMessage::Handoff {
            id: 4,
            items: vec![
                KeyState {
                    partition: right,
                    key: key.clone(),
                    object: object.clone()
                };
                5000
            ],
        },
    ];
    let count = bad.len() as u64;
    for message in bad {
        node.handle_message(now, NodeId(2), message);
    }
    assert_eq!(node.stats().rejected_messages, count);
    assert!(node.poll_transmit().is_none(), "nothing was answered");
    assert_eq!(
        node.store().get(right, &key).unwrap(),
        None,
        "nothing was stored"
    );

    // A reply of the wrong kind does not destroy a request in flight.
    node.handle_client(
        now,
        1,
        Request::Get {
            key: key.clone(),
            consistency: Consistency::ALL,
        },
    );
    let read_id = match node.poll_transmit() {
        Some((_, PeerMessage::Read { id, .. })) => id,
        other => panic!("expected a read, got {other:?}"),
    };
    let before = node.requests_in_flight();
    node.handle_message(now, NodeId(2), PeerMessage::Pong { id: read_id });
    node.handle_message(
        now,
        NodeId(3),
        PeerMessage::HandoffReply {
            id: read_id,
            stored: vec![true],
        },
    );
    assert_eq!(node.requests_in_flight(), before);
}

#[test]
fn request_ids_differ_across_restarts() {
    let ring = three_node_ring();
    let engine = Arc::new(MemoryEngine::new());
    let mut first_ids = Vec::new();
    for _ in 0..2 {
        let mut node = Node::new(
            NodeId(1),
            ring.clone(),
            Store::new(engine.clone()),
            Options::default(),
            Duration::ZERO,
        )
        .unwrap();
        node.handle_client(
            Duration::from_millis(1),
            1,
            Request::Get {
                key: Bytes::from_static(b"k"),
                consistency: Consistency::ALL,
            },
        );
        while let Some((_, message)) = node.poll_transmit() {
            if let PeerMessage::Read { id, .. } = message {
                first_ids.push(id);
            }
        }
    }
    assert_eq!(first_ids.len(), 4);
    assert_ne!(
        first_ids[0], first_ids[2],
        "a late reply from before the restart must not match"
    );
}

#[test]
fn a_primary_that_just_received_a_tombstone_does_not_vote_to_purge_it_yet() {
    use quorra_node::core::messages::{PurgeItem, VoteState};
    use quorra_node::storage::store::encode_object;
    use quorra_node::version::{Actor, Object, Sibling, VersionVector};

    let ring = three_node_ring();
    let engine = Arc::new(MemoryEngine::new());
    let options = Options::default();
    let grace = options.tombstone_grace;
    let mut node = Node::new(
        NodeId(1),
        ring.clone(),
        Store::new(engine.clone()),
        options,
        Duration::ZERO,
    )
    .unwrap();
    let key = Bytes::from_static(b"k");
    let partition = ring.partition_of_key(&key);
    // A value node 2 wrote, then deleted: the tombstone covers it.
    let writer = Actor::new(NodeId(2), 1 << 32);
    let mut tombstone = Object::new();
    tombstone
        .update(
            &VersionVector::new(),
            writer,
            Sibling::Value(Bytes::from("v")),
        )
        .unwrap();
    let context = tombstone.context();
    tombstone
        .update(&context, writer, Sibling::Tombstone)
        .unwrap();

    // Node 1 receives the tombstone (a purge round's repair), durably.
    let received = Duration::from_secs(100);
    node.handle_message(
        received,
        NodeId(2),
        PeerMessage::Repair {
            partition,
            key: key.clone(),
            object: tombstone,
        },
    );
    assert!(node.poll_flush(received));
    node.store().flush().unwrap();
    node.handle_flushed(received);
    let held = node.store().get(partition, &key).unwrap().unwrap();
    assert!(held.is_tombstone());
    let digest = *blake3::hash(&encode_object(&held).unwrap()).as_bytes();

    let vote_at = |node: &mut Node, now: Duration, id| {
        let item = PurgeItem {
            partition,
            key: key.clone(),
            digest,
        };
        node.handle_message(
            now,
            NodeId(2),
            PeerMessage::PurgeCheck {
                id,
                items: vec![item],
            },
        );
        match node.poll_transmit() {
            Some((_, PeerMessage::PurgeCheckReply { votes, .. })) => votes[0].state.clone(),
            other => panic!("expected a vote, got {other:?}"),
        }
    };
    // At once: the state it held before may still be in flight somewhere.
    let early = vote_at(&mut node, received + Duration::from_millis(600), 1);
    assert!(
        !matches!(early, VoteState::Same),
        "voted Same at once: {early:?}"
    );
    // After a grace period of its own, it agrees.
    let late = vote_at(&mut node, received + grace, 2);
    assert!(matches!(late, VoteState::Same), "{late:?}");
}

#[test]
fn a_write_is_forwarded_to_a_primary_whose_storage_works() {
    // Four nodes, N = 3: node 1 is not a primary of some keys.
    let mut ring = three_node_ring();
    let tokens = allocate_tokens(&ring, NodeId(4), "z1", 8).unwrap();
    let mut members = ring.members();
    members.push(Member::new(NodeId(4), "z1", tokens));
    ring = Ring::new(RingConfig::default(), members).unwrap();
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| {
            let p = ring.partition_of_key(k.as_bytes());
            ring.primaries(p).all(|n| n != NodeId(1))
        })
        .unwrap();
    let primaries: Vec<NodeId> = ring
        .primaries(ring.partition_of_key(key.as_bytes()))
        .collect();
    let forwarded_to = |failing: Option<NodeId>| {
        let mut node = Node::new(
            NodeId(1),
            ring.clone(),
            Store::new(Arc::new(MemoryEngine::new())),
            Options::default(),
            Duration::ZERO,
        )
        .unwrap();
        if let Some(f) = failing {
            node.handle_peer_storage(f, true);
        }
        node.handle_client(Duration::from_millis(1), 1, put(&key, "v"));
        std::iter::from_fn(|| node.poll_transmit())
            .find(|(_, m)| matches!(m, PeerMessage::Forward { .. }))
            .map(|(to, _)| to)
    };
    assert_eq!(forwarded_to(None), Some(primaries[0]));
    // The first primary's disk is full (gossip says so): the next one.
    assert_eq!(forwarded_to(Some(primaries[0])), Some(primaries[1]));
}

#[test]
fn a_node_at_its_limit_sheds_new_requests_at_once_and_admits_again_when_they_end() {
    // Three nodes whose peers never answer: node 1's requests stay in
    // flight until their timeout.
    let options = Options {
        max_requests_in_flight: 3,
        ..Options::default()
    };
    let timeout = options.request_timeout;
    let mut node = Node::new(
        NodeId(1),
        three_node_ring(),
        Store::new(Arc::new(MemoryEngine::new())),
        options,
        Duration::ZERO,
    )
    .unwrap();
    let now = Duration::from_millis(1);
    for tag in 1..=5 {
        node.handle_client(now, tag, put(&format!("k{tag}"), "v"));
    }
    while node.poll_transmit().is_some() {}
    // The two beyond the limit are refused now, not queued; the three
    // admitted wait for their quorum.
    let replies: Vec<_> = std::iter::from_fn(|| node.poll_reply()).collect();
    assert_eq!(replies.len(), 2, "{replies:?}");
    for (tag, outcome) in &replies {
        assert!(*tag == 4 || *tag == 5, "{replies:?}");
        assert!(
            matches!(outcome, Err(RequestError::Overloaded(m)) if m.contains("nothing of this request was applied")),
            "{outcome:?}"
        );
    }
    assert_eq!(node.stats().shed_requests, 2);
    assert_eq!(node.requests_in_flight(), 3);
    // Once those end (their quorum timed out), a request is admitted again.
    let later = now + timeout * 3;
    node.handle_timeout(later);
    let ended: Vec<_> = std::iter::from_fn(|| node.poll_reply()).collect();
    assert_eq!(ended.len(), 3, "{ended:?}");
    // (Its peers are believed down by now, so it may fail at once, but
    // not for being over the limit.)
    node.handle_client(later, 6, put("k6", "v"));
    let reply = node.poll_reply();
    assert!(
        !matches!(reply, Some((_, Err(RequestError::Overloaded(_))))),
        "the node shed a request below its limit: {reply:?}"
    );
    assert_eq!(node.stats().shed_requests, 2);
}

#[test]
fn a_node_in_no_ring_yet_says_so_instead_of_blaming_the_consistency_level() {
    let engine = Arc::new(MemoryEngine::new());
    // A node that starts to join: a member of its own ring, with no tokens
    // until it chose them against the cluster's.
    let provisional = Ring::new(
        RingConfig::default(),
        vec![Member::new(NodeId(4), "z1", Vec::new())],
    )
    .unwrap();
    let mut node = Node::new(
        NodeId(4),
        provisional,
        Store::new(engine),
        Options::default(),
        Duration::ZERO,
    )
    .unwrap();
    let get = Request::Get {
        key: Bytes::from_static(b"k"),
        consistency: Consistency::ONE,
    };
    for (tag, request) in [put("k", "v"), get].into_iter().enumerate() {
        node.handle_client(Duration::from_millis(1), tag as u64, request);
        let (_, outcome) = node.poll_reply().expect("an immediate answer");
        match outcome {
            Err(RequestError::Unavailable(why)) => {
                assert!(why.contains("not part of a ring yet"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
}
