//! RESP writes with expiry on a hand-driven cluster: a `SET ... EX` that
//! missed an older value hides it for good, through its expiry, the
//! sweeper's purge and the repairs after.

use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Consistency, Request};
use quorra_node::resp::update::{Answer, Op, SetExpiry, Update, as_string, visible};
use quorra_simulations::harness::{Harness, ok};

const QUORUM: Consistency = Consistency::QUORUM;

/// `SET key value` (with `expiry`) through `node`.
fn set(h: &mut Harness, node: u64, key: &str, value: &str, expiry: SetExpiry) -> Answer {
    let update = Update {
        op: Op::Set {
            value: Bytes::copy_from_slice(value.as_bytes()),
            expiry,
            present: None,
            want_old: false,
        },
        now_ms: h.clock_ms(node),
    };
    let response = ok(h.request(
        node,
        Request::Update {
            key: Bytes::copy_from_slice(key.as_bytes()),
            update: update.encode(),
            consistency: QUORUM,
        },
    ));
    Answer::decode(&response.answer.expect("an update answers")).expect("an answer")
}

/// `GET key` through `node` at `c`, as its gateway shows it.
fn get(h: &mut Harness, node: u64, key: &str, c: Consistency) -> Option<String> {
    let response = ok(h.get(node, key, c));
    visible(&response.values, h.clock_ms(node))
        .map(|s| String::from_utf8_lossy(&as_string(&s)).into_owned())
}

#[test]
fn a_set_with_an_expiry_that_missed_an_older_value_never_brings_it_back() {
    // Repairs off, so the coordinator goes on missing the older value
    // until something reads it.
    let mut h = Harness::with(3, |p| {
        p.read_repair = false;
        p.anti_entropy = false;
    });
    let key = "session";
    let primaries = h.primaries(key);
    let (first, others) = (primaries[0], [primaries[1], primaries[2]]);

    // SET v3, acknowledged by the two others while the first primary (the
    // key's sweeper) is cut off.
    h.isolate(first);
    assert!(matches!(
        set(&mut h, others[0], key, "v3", SetExpiry::Never),
        Answer::Set { written: true, .. }
    ));
    h.heal();
    h.run_for(Duration::from_secs(2));

    // SET v2 EX 1 through the first primary: a plain SET does not read, so
    // v2 becomes a sibling of v3 on the others. v2 is later: it shows.
    let expires = h.clock_ms(first) + 1_000;
    set(&mut h, first, key, "v2", SetExpiry::At(expires));
    for node in primaries.iter().copied() {
        assert_eq!(
            get(&mut h, node, key, Consistency::ALL).as_deref(),
            Some("v2")
        );
    }

    // v2 expires: the key is gone everywhere; v3 does not come back.
    h.run_for(Duration::from_millis(1_500));
    for node in primaries.iter().copied() {
        assert_eq!(
            get(&mut h, node, key, Consistency::ALL),
            None,
            "via node {node}"
        );
    }

    // The sweeper purges it (reading first, so its tombstone covers v3 as
    // well as v2); the tombstone is purged in turn, and the key stays gone.
    let swept = h.sweep(first);
    assert_eq!(swept.len(), 1, "the first primary sweeps the key");
    let answer = ok(swept.into_iter().next().expect("one"))
        .answer
        .expect("answer");
    assert_eq!(Answer::decode(&answer), Some(Answer::Changed(true)));
    h.run_for(Duration::from_secs(30));
    for node in primaries.iter().copied() {
        assert_eq!(
            get(&mut h, node, key, Consistency::ALL),
            None,
            "via node {node}"
        );
        assert!(
            h.stored(node, key).is_none(),
            "node {node} still holds the key"
        );
    }
}
