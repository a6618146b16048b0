//! Each mechanism of the node core on its own, as a short story on a
//! hand-driven simulated cluster: quorum reached, quorum failed, fallback
//! used and hint delivered, read repair applied (also after the reply), a
//! quorum read asking only its quorum and a reserve when one is silent, and
//! tombstones purged only once every replica holds them and no hint is left.

use std::time::Duration;

use quorra_client::{Consistency, Context, RequestError};
use quorra_node::core::ReadFanout;
use quorra_node::membership::REBIRTH_GAP;
use quorra_simulations::harness::{Harness, ok, values};

const QUORUM: Consistency = Consistency::QUORUM;

#[test]
fn quorum_reached_and_causality_on_a_healthy_cluster() {
    let mut h = Harness::new(3);
    let written = ok(h.put(1, "k", "v1", Context::empty(), QUORUM));
    assert!(written.receipt.answered.len() >= 2, "{:?}", written.receipt);
    assert!(!written.receipt.used_fallback());

    let read = ok(h.get(2, "k", QUORUM));
    assert_eq!(values(&read), ["v1"]);

    // A write with the read's context replaces what it saw...
    ok(h.put(3, "k", "v2", read.context.clone(), QUORUM));
    assert_eq!(values(&ok(h.get(1, "k", QUORUM))), ["v2"]);

    // ...a blind write does not: the two are siblings, nothing is lost.
    ok(h.put(2, "k", "v3", Context::empty(), QUORUM));
    let both = ok(h.get(3, "k", QUORUM));
    assert_eq!(values(&both), ["v2", "v3"]);

    // Resolving with the merged context leaves one value.
    ok(h.put(1, "k", "v4", both.context, QUORUM));
    assert_eq!(values(&ok(h.get(2, "k", Consistency::ALL))), ["v4"]);
}

#[test]
fn quorum_fails_with_counts_when_replicas_are_unreachable() {
    let mut h = Harness::new(3);
    h.isolate(2);
    h.isolate(3);
    let err = h.put(1, "k", "v", Context::empty(), QUORUM).unwrap_err();
    assert_eq!(
        err,
        RequestError::QuorumNotReached {
            required: 2,
            succeeded: 1,
            primaries_required: 0,
            primaries_succeeded: 1,
        }
    );
    // One replica is enough for `one`, and the receipt says who answered.
    let written = ok(h.put(1, "k", "v", Context::empty(), Consistency::ONE));
    assert_eq!(written.receipt.answered.len(), 1);
    assert_eq!(written.receipt.answered[0].node, 1);
    // Reads fail the same way.
    assert!(matches!(
        h.get(1, "k", Consistency::ALL),
        Err(RequestError::QuorumNotReached { required: 3, .. })
    ));
}

#[test]
fn a_fallback_holds_a_hint_and_hands_it_over() {
    let mut h = Harness::new(5);
    let primaries = h.primaries("k");
    let (coordinator, absent) = (primaries[0], primaries[2]);
    h.isolate(absent);

    // The first writes time out on the absent primary (the quorum is still
    // met); once the coordinator believes it down, a fallback stands in.
    let (fallback, owner) = h.put_until_hinted(coordinator, "k", "v");
    assert_eq!(owner, absent);
    assert!(h.fallbacks("k").contains(&fallback));
    assert_eq!(h.node(fallback).hint_usage().0, 1);
    assert!(h.stored_values(absent, "k").is_empty());

    h.heal();
    h.run_for(Duration::from_secs(3));
    assert!(
        !h.stored_values(absent, "k").is_empty(),
        "the hint reached its owner"
    );
    assert_eq!(h.node(fallback).hint_usage().0, 0, "and was deleted after");
    assert!(h.node(fallback).stats().hints_delivered >= 1);
}

#[test]
fn read_repair_fixes_a_stale_replica_also_after_the_reply() {
    let mut h = Harness::with(3, |p| {
        p.hinted_handoff = false;
        p.read_fanout = ReadFanout::All;
    });
    let primaries = h.primaries("k");
    let (a, stale) = (primaries[0], primaries[2]);
    h.isolate(stale);
    ok(h.put(a, "k", "v1", Context::empty(), QUORUM));
    h.heal();
    assert!(h.stored_values(stale, "k").is_empty());

    // `one` replies on the coordinator's own copy, before the stale replica
    // has even answered...
    let read = ok(h.get(a, "k", Consistency::ONE));
    assert_eq!(values(&read), ["v1"]);
    assert!(h.stored_values(stale, "k").is_empty());
    // ...and repairs it once it does.
    h.run_for(Duration::from_millis(50));
    assert_eq!(h.stored_values(stale, "k"), ["v1"]);
    assert!(h.node(a).stats().read_repairs >= 1);
}

#[test]
fn a_quorum_read_asks_only_its_quorum_and_a_reserve_when_one_is_silent() {
    let mut h = Harness::with(3, |p| p.anti_entropy = false);
    let primaries = h.primaries("k");
    let a = primaries[0];
    ok(h.put(a, "k", "v1", Context::empty(), QUORUM));
    h.run_for(Duration::from_millis(50));

    // Healthy: the coordinator's own copy and one other replica's.
    let sent = h.node(a).stats().messages_sent;
    assert_eq!(values(&ok(h.get(a, "k", QUORUM))), ["v1"]);
    assert_eq!(h.node(a).stats().messages_sent - sent, 1, "one read sent");
    assert_eq!(h.node(a).stats().reserve_reads, 0);

    // A replica goes silent and is still believed up. The reads that ask
    // it (the other replicas take turns) ask the reserve after a short
    // wait instead of failing at the request timeout.
    h.isolate(primaries[1]);
    for _ in 0..4 {
        let started = h.now();
        assert_eq!(values(&ok(h.get(a, "k", QUORUM))), ["v1"]);
        assert!(h.now() - started < Duration::from_millis(50));
    }
    assert!(h.node(a).stats().reserve_reads >= 1);
}

#[test]
fn a_tombstone_is_purged_only_once_every_replica_holds_it() {
    let mut h = Harness::with(3, |p| p.hinted_handoff = false);
    let grace = h.sim.params.tombstone_grace;
    let primaries = h.primaries("k");
    let (a, late) = (primaries[0], primaries[2]);
    ok(h.put(a, "k", "doomed", Context::empty(), Consistency::ALL));
    h.isolate(late);
    let read = ok(h.get(a, "k", QUORUM));
    ok(h.delete(a, "k", read.context, QUORUM));
    assert!(h.stored(a, "k").unwrap().is_tombstone());

    // The late replica still holds the value: nobody may purge.
    h.run_for(grace * 4);
    assert!(
        h.stored(a, "k").unwrap().is_tombstone(),
        "purged while a replica lacked it"
    );
    assert_eq!(h.stored_values(late, "k"), ["doomed"]);

    // Once it is reachable, the purge check finds it disagreeing and sends
    // it the tombstone; the next check agrees and the key is purged.
    h.heal();
    h.run_for(grace * 4);
    assert!(h.node(a).stats().tombstones_purged >= 1);
    for node in primaries {
        assert_eq!(h.stored(node, "k"), None, "node {node} still holds the key");
    }
    assert!(ok(h.get(a, "k", Consistency::ALL)).values.is_empty());
}

#[test]
fn a_hint_anywhere_blocks_the_purge_so_nothing_comes_back() {
    let mut h = Harness::new(5);
    let grace = h.sim.params.tombstone_grace;
    let primaries = h.primaries("k");
    let (a, owner) = (primaries[0], primaries[2]);

    // Write while `owner` is unreachable, until a fallback takes a hint.
    h.isolate(owner);
    let (fallback, _) = h.put_until_hinted(a, "k", "old");

    // The owner comes back, but the fallback cannot reach it: the hint stays.
    h.heal();
    h.cut(fallback, owner);
    h.run_for(Duration::from_secs(1));
    let read = ok(h.get(a, "k", Consistency::ALL));
    ok(h.delete(a, "k", read.context, Consistency::ALL));
    for &p in &primaries {
        assert!(h.stored(p, "k").unwrap().is_tombstone());
    }

    // Every primary holds the tombstone, but a hint exists: no purge.
    h.run_for(grace * 4);
    assert_eq!(h.node(fallback).hint_usage().0, 1);
    assert!(
        h.stored(a, "k").unwrap().is_tombstone(),
        "purged despite a hint"
    );

    // The hint is delivered (its values are covered by the tombstone), then
    // the purge completes, and the old values never return.
    h.heal();
    h.run_for(grace * 4);
    assert_eq!(h.node(fallback).hint_usage().0, 0);
    for &p in &primaries {
        assert_eq!(h.stored(p, "k"), None, "node {p} still holds the key");
    }
    assert!(ok(h.get(a, "k", Consistency::ALL)).values.is_empty());
}

#[test]
fn acknowledged_writes_survive_a_crash_of_every_replica() {
    let mut h = Harness::new(3);
    ok(h.put(1, "k", "durable", Context::empty(), Consistency::ALL));
    for n in 1..=3 {
        h.crash(n);
    }
    for n in 1..=3 {
        h.restart(n);
    }
    h.run_for(Duration::from_millis(100));
    assert_eq!(values(&ok(h.get(2, "k", Consistency::ALL))), ["durable"]);
}

#[test]
fn a_full_hint_store_refuses_and_counts_but_the_write_succeeds() {
    let mut h = Harness::with(5, |p| p.max_hint_bytes = 200);
    let primaries = h.primaries("k");
    let (a, owner) = (primaries[0], primaries[2]);
    h.isolate(owner);
    let mut fallback = None;
    for i in 0..10 {
        let r = ok(h.put(a, "k", &format!("small{i}"), Context::empty(), QUORUM));
        if let Some(f) = r.receipt.answered.iter().find(|x| x.fallback_for.is_some()) {
            fallback = Some(f.node);
            break;
        }
        h.run_for(Duration::from_millis(600));
    }
    let fallback = fallback.expect("a fallback was used");
    let big = "x".repeat(400);
    let r = ok(h.put(a, "k", &big, Context::empty(), QUORUM));
    assert!(
        !r.receipt.used_fallback(),
        "the full fallback did not acknowledge"
    );
    assert_eq!(h.node(fallback).stats().hints_overflowed, 1);
    assert!(h.node(a).stats().hints_refused_by_fallback >= 1);
    assert!(h.node(fallback).hint_usage().1 <= 200);
    // The write is on the two reachable primaries; the owner gets it by
    // read repair once it is back.
    assert!(h.stored_values(primaries[1], "k").contains(&big));
    h.heal();
    h.run_for(Duration::from_secs(1));
    ok(h.get(a, "k", Consistency::ALL));
    h.run_for(Duration::from_millis(50));
    assert!(h.stored_values(owner, "k").contains(&big));
}

#[test]
fn a_forward_for_an_earlier_incarnation_is_not_executed_again() {
    use quorra_client::Request;
    use quorra_node::core::PeerMessage;
    use quorra_simulations::sim::Event;

    let mut h = Harness::new(5);
    let primaries = h.primaries("k");
    let primary = primaries[0];
    let sender = (1..=5).find(|n| !primaries.contains(n)).expect("5 > N");
    ok(h.put(sender, "k", "v1", Context::empty(), QUORUM));
    let before = h.node(primary).started_as();

    // The primary restarts; gossip tells the others its new generation.
    h.crash(primary);
    h.restart(primary);
    h.run_for(Duration::from_secs(5));
    let after = h.node(primary).started_as();
    assert!(after > before);

    // A late copy of a forward addressed to the earlier incarnation (its
    // record of having executed it died in the crash) is dropped...
    let forward = |to: u32, value: &str| PeerMessage::Forward {
        id: 1 << 40,
        to: Some(to),
        request: Request::Put {
            key: "k".into(),
            value: value.to_string().into(),
            context: Context::empty(),
            consistency: QUORUM,
        },
    };
    let (to, from) = (
        h.sim.index_of(quorra_ring::NodeId(primary)),
        h.sim.index_of(quorra_ring::NodeId(sender)),
    );
    let now = h.sim.now;
    h.sim.schedule(
        now,
        Event::Deliver {
            to,
            from,
            message: forward(before, "late copy"),
        },
    );
    h.run_for(Duration::from_secs(1));
    assert_eq!(h.node(primary).stats().stale_forwards, 1);
    assert_eq!(h.stored_values(primary, "k"), ["v1"]);

    // ...while one addressed to the running incarnation is executed.
    let now = h.sim.now;
    h.sim.schedule(
        now,
        Event::Deliver {
            to,
            from,
            message: forward(after, "v2"),
        },
    );
    h.run_for(Duration::from_secs(1));
    assert_eq!(h.stored_values(primary, "k"), ["v1", "v2"]);

    // And the sender addresses its own forwards to the new incarnation.
    ok(h.put(sender, "k", "v3", Context::empty(), QUORUM));
    assert_eq!(h.node(primary).stats().stale_forwards, 1);
}

#[test]
fn a_context_from_before_a_purge_cannot_make_a_primary_reuse_a_dot() {
    let mut h = Harness::new(3);
    let grace = h.sim.params.tombstone_grace;
    let primaries = h.primaries("k");
    let (p, q) = (primaries[0], primaries[1]);
    // An old context, then p's counter climbs well above it.
    let old = ok(h.put(p, "k", "v1", Context::empty(), QUORUM)).context;
    let mut latest = old.clone();
    for i in 2..6 {
        latest = ok(h.put(p, "k", &format!("v{i}"), latest, QUORUM)).context;
    }
    // Deleted, and purged everywhere: the key's history is gone.
    ok(h.delete(p, "k", latest.clone(), Consistency::ALL));
    h.run_for(grace * 4);
    for n in 1..=3 {
        assert_eq!(h.node(n).tombstone_count(), 0, "node {n} still holds it");
    }
    // Through q, a writer with the old context: its entry for p's epoch
    // (counter 1) reaches p's copy. Then a blind write through p.
    ok(h.put(q, "k", "a", old, Consistency::ALL));
    ok(h.put(p, "k", "b", Context::empty(), Consistency::ALL));
    // A writer whose context is from before the purge saw neither, so
    // neither may go: had p continued its old epoch from the old context's
    // counter, `b` would carry a dot that context covers.
    ok(h.put(q, "k", "c", latest, Consistency::ALL));
    assert_eq!(
        values(&ok(h.get(p, "k", Consistency::ALL))),
        ["a", "b", "c"]
    );
}

#[test]
fn a_founder_restarted_seedless_on_a_lost_disk_issues_no_dot_of_its_earlier_life() {
    // Node 1 founded the cluster; it loses its disk and is restarted as it
    // first started, without seeds, cut off, so it founds a cluster of its
    // own and acknowledges a write before gossip tells it of its earlier
    // life. Had it issued dots from that life's incarnation again, the new
    // write would carry the dot of the old one and replicas holding the
    // old one would take it as already held.
    let mut h = Harness::with(3, |p| p.founder_restarts_seedless = true);
    ok(h.put(1, "k", "old", Context::empty(), Consistency::ALL));
    h.isolate(1);
    h.lose_disk(1);
    h.restart(1);
    h.run_for(Duration::from_secs(1));
    ok(h.put(1, "k", "new", Context::empty(), Consistency::ONE));
    // Healed, it takes its place back; anti-entropy and read repair merge.
    h.heal();
    h.settle_moves(Duration::from_secs(60));
    h.run_for(Duration::from_secs(30));
    assert_eq!(values(&ok(h.get(2, "k", Consistency::ALL))), ["new", "old"]);
    for n in 1..=3 {
        let stored = h.stored(n, "k").expect("every replica holds the key");
        assert_eq!(stored.values().count(), 2, "node {n} holds {stored:?}");
    }
}

#[test]
fn a_founder_restarted_twice_on_a_lost_disk_before_gossip_reaches_it_takes_its_place_back() {
    // Node 1 founded the cluster and ran one life (generation 1). It loses
    // its disk and, cut off and without seeds, starts twice (a crash loop
    // at 3 a.m.) before anyone reaches it, founding a cluster of its own
    // each time. However many times it started, members must keep their
    // entry of it and it must take its place back with its old tokens: had
    // its generation grown with each unheard start, it would overtake the
    // earlier life's and members would take the empty node's own tokens.
    let mut h = Harness::with(3, |p| p.founder_restarts_seedless = true);
    ok(h.put(1, "k", "old", Context::empty(), Consistency::ALL));
    let before = h.sim.ring.members();
    let layout_before = seen_by_2(&h).info.layout;
    h.isolate(1);
    h.lose_disk(1);
    h.restart(1);
    h.run_for(Duration::from_secs(2));
    h.crash(1);
    h.restart(1);
    h.run_for(Duration::from_secs(2));
    h.heal();
    h.settle_moves(Duration::from_secs(60));
    assert_eq!(h.sim.ring.members(), before, "the ring changed");
    // Taken back: a generation REBIRTH_GAP above the earlier life's (not
    // one of its own), and the earlier life's place in the layouts.
    let seen = seen_by_2(&h);
    assert!(
        (REBIRTH_GAP..2 * REBIRTH_GAP).contains(&seen.generation),
        "members know node 1 as generation {}: it did not take its place back",
        seen.generation
    );
    assert_eq!(seen.info.layout, layout_before);
    assert_eq!(values(&ok(h.get(2, "k", Consistency::ALL))), ["old"]);
}

/// Node 2's gossip entry of node 1.
fn seen_by_2(h: &Harness) -> quorra_gossip::Entry {
    let i = h.sim.index_of(quorra_ring::NodeId(2));
    let membership = h.sim.nodes[i].membership.as_ref().expect("node 2 runs");
    membership
        .gossip()
        .entries()
        .find(|e| e.id == quorra_ring::NodeId(1))
        .expect("node 2 knows node 1")
        .clone()
}

#[test]
// Prints its figures (run with --nocapture): a measurement as well as a check.
#[allow(clippy::print_stdout)]
fn a_keys_clock_grows_by_one_entry_per_life_that_coordinated_a_write_to_it() {
    // The bound the actor module documents, measured: a node restarted
    // 100 times, writing one key twice (with the context of a read) in
    // every life, leaves one clock entry per life in that key, no more.
    let mut h = Harness::new(3);
    let p = h.primaries("k")[0];
    let lives = 100;
    for life in 0..lives {
        for write in 0..2 {
            let context = ok(h.get(p, "k", QUORUM)).context;
            ok(h.put(p, "k", &format!("v{life}.{write}"), context, QUORUM));
        }
        h.crash(p);
        h.restart(p);
        h.run_for(Duration::from_secs(1));
    }
    h.run_for(Duration::from_secs(5));
    let stored = h.stored(p, "k").expect("the primary holds the key");
    let actors = stored.context().len();
    let bytes = rmp_serde::to_vec(&stored).expect("encodes").len();
    println!("after {lives} lives: {actors} clock entries, {bytes} bytes stored for one key");
    assert_eq!(actors, lives, "one entry per life that wrote the key");
    assert_eq!(stored.sibling_count(), 1, "each write saw the one before");
}

#[test]
// Prints its figures (run with --nocapture): a measurement as well as a check.
#[allow(clippy::print_stdout)]
fn with_a_member_down_for_an_hour_tombstones_stay_bounded_by_the_keys_and_go_once_it_is_back() {
    // A purge needs every member reachable (a hint for the down one could
    // hold an older value anywhere), so with one node down no tombstone
    // goes. What bounds them meanwhile: one per key, however often it is
    // deleted, so the key space and not the delete rate.
    let mut h = Harness::new(4);
    let grace = h.sim.params.tombstone_grace;
    h.crash(4);
    // Until the others believe it down.
    h.run_for(Duration::from_secs(10));
    let keys = 250;
    let mut deletes = 0;
    let mut peak = 0;
    for second in 0..3600u64 {
        for i in 0..2 {
            let key = format!("k{}", (second * 2 + i) % keys);
            let written = ok(h.put(1, &key, "v", Context::empty(), QUORUM));
            ok(h.delete(1, &key, written.context, QUORUM));
            deletes += 1;
        }
        h.run_for(Duration::from_secs(1));
        if second % 600 == 599 {
            let held: usize = (1..=3).map(|n| h.node(n).tombstone_count()).sum();
            println!(
                "after {} min: {deletes} deletes, {held} tombstones on nodes 1-3",
                (second + 1) / 60
            );
            peak = peak.max(held);
        }
    }
    // Nodes 1-3 replicate each key at most 3 times.
    assert!(
        peak <= 3 * keys as usize,
        "{peak} tombstones for {keys} keys"
    );
    assert!(peak > 0, "nothing was held back");
    h.heal();
    h.run_for(grace * 6);
    let held: usize = (1..=4).map(|n| h.node(n).tombstone_count()).sum();
    println!("back for {:?}: {held} tombstones", grace * 6);
    assert_eq!(held, 0, "tombstones outlived the member's return");
}
