//! Merkle anti-entropy, one behaviour at a time: a replica that missed
//! writes is repaired with nobody reading, deletes converge, and a node that
//! lost its disk takes its place back and is refilled.

use std::time::Duration;

use quorra_client::{Consistency, Context};
use quorra_node::membership::REBIRTH_GAP;
use quorra_ring::NodeId;
use quorra_simulations::harness::{Harness, ok};

const QUORUM: Consistency = Consistency::QUORUM;

/// Keys on which node `node` is a primary, and another primary to write through.
fn keys_of(h: &Harness, node: u64, count: usize) -> Vec<(String, u64)> {
    (0..)
        .map(|i| format!("key-{i}"))
        .filter_map(|k| {
            let p = h.primaries(&k);
            p.contains(&node)
                .then(|| (k, *p.iter().find(|&&n| n != node).expect("another primary")))
        })
        .take(count)
        .collect()
}

/// The gossip generation node `node` runs as.
fn generation(h: &Harness, node: u64) -> u64 {
    h.sim.nodes[h.sim.index_of(NodeId(node))]
        .membership
        .as_ref()
        .expect("running")
        .gossip()
        .own()
        .generation
}

/// A cluster where only anti-entropy (if `on`) can repair a replica.
fn cluster(on: bool) -> Harness {
    Harness::with(3, |p| {
        p.read_repair = false;
        p.hinted_handoff = false;
        p.anti_entropy = on;
    })
}

fn missed_writes_after(on: bool) -> (Harness, u64, Vec<(String, u64)>) {
    let mut h = cluster(on);
    let stale = 3;
    let keys = keys_of(&h, stale, 20);
    h.isolate(stale);
    for (k, via) in &keys {
        ok(h.put(*via, k, &format!("v-{k}"), Context::empty(), QUORUM));
    }
    h.heal();
    h.run_for(Duration::from_secs(10));
    (h, stale, keys)
}

#[test]
fn a_replica_that_missed_writes_is_repaired_without_reads() {
    let (h, stale, keys) = missed_writes_after(true);
    for (k, _) in &keys {
        assert_eq!(h.stored_values(stale, k), [format!("v-{k}")], "{k}");
    }
    let stats = h.node(stale).stats().clone();
    let repaired: u64 = (1..=3).map(|n| h.node(n).stats().ae_keys_repaired).sum();
    assert_eq!(repaired, keys.len() as u64, "each missed key repaired once");
    assert!(stats.ae_exchanges > 0 && stats.ae_in_sync > 0);
}

#[test]
fn without_anti_entropy_the_same_replica_stays_stale() {
    let (h, stale, keys) = missed_writes_after(false);
    for (k, _) in &keys {
        assert!(h.stored_values(stale, k).is_empty(), "{k}");
    }
    assert_eq!(h.node(stale).stats().ae_exchanges, 0);
}

#[test]
fn a_delete_a_replica_missed_converges_and_nothing_comes_back() {
    let mut h = cluster(true);
    let stale = 3;
    let (k, via) = keys_of(&h, stale, 1).remove(0);
    let put = ok(h.put(via, &k, "v1", Context::empty(), Consistency::ALL));
    h.isolate(stale);
    ok(h.delete(via, &k, put.context, QUORUM));
    h.heal();
    // Anti-entropy hands the tombstone over; then every primary holds the
    // same tombstone and the purge removes it everywhere.
    h.run_for(Duration::from_secs(30));
    for n in h.primaries(&k) {
        assert!(h.stored_values(n, &k).is_empty(), "value back on node {n}");
        assert!(h.stored(n, &k).is_none(), "tombstone left on node {n}");
    }
}

#[test]
fn a_node_that_lost_its_disk_takes_its_place_back_and_is_refilled() {
    let mut h = cluster(true);
    let lost = 2;
    let keys = keys_of(&h, lost, 30);
    for (k, via) in &keys {
        ok(h.put(
            *via,
            k,
            &format!("v-{k}"),
            Context::empty(),
            Consistency::ALL,
        ));
    }
    let ring = h.sim.ring.clone();
    let before = generation(&h, lost);
    h.sim.lose_disk(h.sim.index_of(NodeId(lost)));
    h.restart(lost);
    h.run_for(Duration::from_secs(15));

    // Same tokens: the ring did not change.
    assert_eq!(
        h.sim.agreed_ring().map(|r| r.members()),
        Some(ring.members())
    );
    let own = generation(&h, lost);
    assert!(
        own >= before + REBIRTH_GAP,
        "generation {own} after {before}"
    );
    for (k, _) in &keys {
        assert_eq!(h.stored_values(lost, k), [format!("v-{k}")], "{k}");
    }
    // A write through the reborn node issues fresh dots: it does not
    // replace a value it never saw.
    let (k, _) = &keys[0];
    ok(h.put(lost, k, "after", Context::empty(), Consistency::ALL));
    let mut expected = vec![format!("v-{k}"), "after".to_string()];
    expected.sort();
    for n in h.primaries(k) {
        assert_eq!(h.stored_values(n, k), expected, "node {n}");
    }
}

#[test]
fn a_hint_for_a_removed_owner_goes_to_a_current_primary() {
    let mut h = Harness::new(5);
    let primaries = h.primaries("k");
    let (coordinator, gone) = (primaries[0], primaries[2]);
    h.crash(gone);
    // Writes time out on the dead primary until it is believed down; then a
    // fallback keeps a hint for it.
    let (fallback, _) = h.put_until_hinted(coordinator, "k", "v");
    assert_eq!(h.node(fallback).hint_usage().0, 1);

    // The dead node is removed for good (once gossip believes it down):
    // its hint has no owner to wait for.
    h.run_for(Duration::from_secs(10));
    let i = h.sim.index_of(NodeId(coordinator));
    h.sim.nodes[i]
        .membership
        .as_mut()
        .expect("running")
        .remove(NodeId(gone))
        .expect("a dead node can be removed");
    let dead = h.sim.index_of(NodeId(gone));
    h.sim.nodes[dead].departed = true;
    h.run_for(Duration::from_secs(10));
    let ring = h.sim.agreed_ring().expect("the others agree");
    assert!(!ring.contains(NodeId(gone)));
    assert_eq!(
        h.node(fallback).hint_usage().0,
        0,
        "the orphan hint is gone"
    );
    assert!(h.node(fallback).stats().hints_rerouted >= 1);
    // ...because a current primary has the write, and anti-entropy gave it
    // to the others.
    let partition = ring.partition_of_key(b"k");
    let latest = h.stored_values(coordinator, "k");
    assert!(!latest.is_empty());
    for n in ring.primaries(partition) {
        assert_eq!(h.stored_values(n.0, "k"), latest, "node {n}");
    }
}
