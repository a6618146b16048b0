//! Redis counters (`INCR` through the RESP gateway) are updates applied by
//! the coordinating primary: increments made through every node, on both
//! sides of a partition, across a crash, and through nodes that forward to
//! a primary, are all counted once everything heals.

use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Consistency, Request};
use quorra_node::resp::update::{Answer, Op, Update, as_string, visible};
use quorra_simulations::harness::{Harness, ok};

fn incr(h: &mut Harness, node: u64, key: &str, by: i64, c: Consistency) -> Option<i64> {
    let update = Update {
        op: Op::Add(by),
        now_ms: 1_000,
    };
    let outcome = h.request(
        node,
        Request::Update {
            key: Bytes::copy_from_slice(key.as_bytes()),
            update: update.encode(),
            consistency: c,
        },
    );
    let answer = outcome.ok()?.answer?;
    match Answer::decode(&answer) {
        Some(Answer::Counter(v)) => Some(v),
        other => panic!("not a counter answer: {other:?}"),
    }
}

/// The counter as a client reading `node` at `all` sees it.
fn read(h: &mut Harness, node: u64, key: &str) -> String {
    let response = ok(h.get(node, key, Consistency::ALL));
    visible(&response.values, 0).map_or_else(String::new, |s| {
        String::from_utf8_lossy(&as_string(&s)).into_owned()
    })
}

#[test]
fn increments_on_both_sides_of_a_partition_all_count() {
    let mut h = Harness::new(3);
    let one = Consistency::ONE;
    for node in 1..=3 {
        assert!(incr(&mut h, node, "hits", 1, Consistency::QUORUM).is_some());
    }
    // Node 3 alone on one side, nodes 1 and 2 on the other: both sides go on
    // at `one`, each with its own copies.
    h.isolate(3);
    let mut acknowledged = 3;
    for round in 0..20 {
        for node in 1..=3 {
            if incr(&mut h, node, "hits", 1 + round % 3, one).is_some() {
                acknowledged += 1 + round % 3;
            }
        }
    }
    assert!(
        acknowledged > 60,
        "both sides took increments: {acknowledged}"
    );
    h.heal();
    h.run_for(Duration::from_secs(10));
    for node in 1..=3 {
        assert_eq!(read(&mut h, node, "hits"), acknowledged.to_string());
    }
}

#[test]
fn increments_through_forwarding_nodes_and_a_crash_all_count() {
    // Five nodes, three replicas: some nodes forward every increment of the
    // key to a primary, some coordinate it.
    let mut h = Harness::new(5);
    let primaries = h.primaries("visits");
    let mut acknowledged = 0;
    let mut down = None;
    for round in 0..10 {
        for node in (1..=5).filter(|n| Some(*n) != down) {
            if incr(&mut h, node, "visits", 2, Consistency::QUORUM).is_some() {
                acknowledged += 2;
            }
        }
        if round == 4 {
            // The first primary crashes (losing what it had not flushed)
            // and comes back: its acknowledged increments were durable.
            h.crash(primaries[0]);
            down = Some(primaries[0]);
        }
        if round == 6 {
            h.restart(primaries[0]);
            down = None;
        }
    }
    assert!(acknowledged >= 80, "{acknowledged}");
    h.run_for(Duration::from_secs(10));
    for node in 1..=5 {
        assert_eq!(read(&mut h, node, "visits"), acknowledged.to_string());
    }
}

fn update(h: &mut Harness, node: u64, key: &str, op: Op, c: Consistency) -> Answer {
    let request = Request::Update {
        key: Bytes::copy_from_slice(key.as_bytes()),
        update: Update { op, now_ms: 2_000 }.encode(),
        consistency: c,
    };
    let answer = ok(h.request(node, request)).answer.expect("an answer");
    Answer::decode(&answer).expect("a gateway answer")
}

#[test]
fn a_delete_through_a_node_that_missed_the_write_still_deletes() {
    // Node 2 misses a SET acknowledged by nodes 1 and 3; a DEL through
    // node 2 reads the quorum first, so it finds the value and deletes it.
    let mut h = Harness::new(3);
    h.isolate(2);
    let set = Op::Set {
        value: Bytes::from_static(b"v"),
        expiry: quorra_node::resp::update::SetExpiry::Never,
        present: None,
        want_old: false,
    };
    update(&mut h, 1, "doc", set, Consistency::QUORUM);
    h.heal();
    assert!(
        h.stored_values(2, "doc").is_empty(),
        "node 2 missed the write"
    );
    let deleted = update(&mut h, 2, "doc", Op::Delete, Consistency::QUORUM);
    assert_eq!(deleted, Answer::Changed(true));
    assert_eq!(read(&mut h, 3, "doc"), "");
}

#[test]
fn an_increment_after_a_delete_counts_beside_a_concurrent_one() {
    let mut h = Harness::new(3);
    let one = Consistency::ONE;
    for _ in 0..10 {
        incr(&mut h, 1, "n", 1, Consistency::ALL).unwrap();
    }
    // Node 2 cut off: it increments the counter it has, while node 1
    // deletes the key and increments it again from nothing.
    h.isolate(2);
    assert_eq!(incr(&mut h, 2, "n", 1, one), Some(11));
    assert_eq!(
        update(&mut h, 1, "n", Op::Delete, one),
        Answer::Changed(true)
    );
    assert_eq!(incr(&mut h, 1, "n", 1, one), Some(1));
    h.heal();
    h.run_for(Duration::from_secs(10));
    // Node 2's counter kept the old ten alive (a PN-counter has no reset
    // that wins over a concurrent increment), and both later increments
    // count: node 1's came from a fresh writer, not from its entry of
    // the old counter, which node 2's sibling holds at 10.
    for node in 1..=3 {
        assert_eq!(read(&mut h, node, "n"), "12");
    }
}
