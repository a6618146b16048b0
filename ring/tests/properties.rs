//! Property tests of placement: determinism, distinct replicas, zone spread,
//! stable fallback order, and joins that move data only onto the new node.

use std::collections::BTreeSet;

use proptest::prelude::*;
use quorra_ring::{
    Member, NodeId, PartitionId, ReplicaRole, Ring, RingConfig, Token, allocate_tokens,
};

/// A random cluster: up to 12 nodes in up to 4 zones, with random tokens.
fn cluster() -> impl Strategy<Value = (RingConfig, Vec<Member>)> {
    let config = (0u32..7, 1usize..5).prop_map(|(bits, replicas)| RingConfig {
        partitions: 1 << bits,
        replicas,
    });
    let members = (1usize..12, 1usize..5).prop_flat_map(|(nodes, zones)| {
        proptest::collection::vec(
            (0..zones, proptest::collection::vec(any::<u64>(), 1..8)),
            nodes,
        )
        .prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (zone, tokens))| {
                    Member::new(
                        NodeId(i as u64 * 7 + 3),
                        format!("zone-{zone}"),
                        tokens.into_iter().map(Token).collect(),
                    )
                })
                .collect::<Vec<_>>()
        })
    });
    (config, members)
}

fn all_primaries(ring: &Ring) -> Vec<Vec<NodeId>> {
    ring.partitioner()
        .iter()
        .map(|p| ring.primaries(p).collect())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn same_members_in_any_order_give_the_same_ring(
        (config, members) in cluster(),
        seed in any::<u64>(),
    ) {
        let a = Ring::new(config, members.clone()).unwrap();
        let mut shuffled = members;
        // Deterministic shuffle of members and of each member's tokens.
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(i as u64 + 1) >> 7) as usize % (i + 1);
            shuffled.swap(i, j);
        }
        for m in &mut shuffled {
            m.tokens.reverse();
        }
        let b = Ring::new(config, shuffled).unwrap();
        prop_assert_eq!(all_primaries(&a), all_primaries(&b));
        for p in a.partitioner().iter() {
            prop_assert_eq!(
                a.preference_list(p).collect::<Vec<_>>(),
                b.preference_list(p).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn every_partition_has_n_distinct_primaries((config, members) in cluster()) {
        let nodes = members.len();
        let ring = Ring::new(config, members).unwrap();
        let want = config.replicas.min(nodes);
        for p in ring.partitioner().iter() {
            let primaries: Vec<NodeId> = ring.primaries(p).collect();
            let distinct: BTreeSet<NodeId> = primaries.iter().copied().collect();
            prop_assert_eq!(primaries.len(), want);
            prop_assert_eq!(distinct.len(), want);
        }
    }

    #[test]
    fn primaries_spread_over_zones((config, members) in cluster()) {
        let zones: BTreeSet<String> = members.iter().map(|m| m.zone.clone()).collect();
        let nodes = members.len();
        let ring = Ring::new(config, members).unwrap();
        let want = zones.len().min(config.replicas.min(nodes));
        for p in ring.partitioner().iter() {
            let covered: BTreeSet<&str> =
                ring.primaries(p).map(|n| ring.zone_of(n).unwrap()).collect();
            prop_assert_eq!(covered.len(), want, "partition {}", p);
        }
    }

    #[test]
    fn fallback_order_is_stable_whoever_is_down(
        (config, members) in cluster(),
        down_mask in any::<u64>(),
        partition in any::<u32>(),
    ) {
        let ring = Ring::new(config, members).unwrap();
        let p = PartitionId(partition % config.partitions);
        let order: Vec<NodeId> = ring.preference_list(p).collect();
        let everyone: BTreeSet<NodeId> = ring.node_ids().collect();
        prop_assert_eq!(order.len(), everyone.len());
        prop_assert_eq!(order.iter().copied().collect::<BTreeSet<_>>(), everyone);
        let primaries: Vec<NodeId> = ring.primaries(p).collect();
        prop_assert_eq!(&order[..primaries.len()], &primaries[..]);

        let is_up = |n: NodeId| down_mask & (1 << (n.0 % 64)) == 0;
        let chosen = ring.sloppy_replicas(p, is_up);
        // Primaries that are up, then the first live nodes after the primaries,
        // in preference-list order: the list filtered, never reordered.
        let live_primaries: Vec<NodeId> = primaries.iter().copied().filter(|&n| is_up(n)).collect();
        let down_primaries: Vec<NodeId> = primaries.iter().copied().filter(|&n| !is_up(n)).collect();
        let fallbacks: Vec<NodeId> = order[primaries.len()..]
            .iter()
            .copied()
            .filter(|&n| is_up(n))
            .take(down_primaries.len())
            .collect();
        let expected: Vec<NodeId> = live_primaries.iter().chain(&fallbacks).copied().collect();
        prop_assert_eq!(chosen.iter().map(|r| r.node).collect::<Vec<_>>(), expected);
        for (replica, stands_for) in chosen[live_primaries.len()..].iter().zip(&down_primaries) {
            prop_assert_eq!(replica.role, ReplicaRole::Fallback { for_node: *stands_for });
        }
    }

    #[test]
    fn a_join_moves_data_only_onto_the_new_node(
        (config, members) in cluster(),
        zone in 0usize..5,
        tokens in 1usize..16,
    ) {
        let before = Ring::new(config, members.clone()).unwrap();
        let new = NodeId(1_000_000);
        let chosen = allocate_tokens(&before, new, &format!("zone-{zone}"), tokens).unwrap();
        prop_assert_eq!(chosen.len(), tokens);
        let mut grown = members;
        grown.push(Member::new(new, format!("zone-{zone}"), chosen));
        let after = Ring::new(config, grown).unwrap();
        for p in after.partitioner().iter() {
            let old: BTreeSet<NodeId> = before.primaries(p).collect();
            for node in after.primaries(p) {
                prop_assert!(node == new || old.contains(&node),
                    "partition {} moved onto existing node {}", p, node);
            }
        }
    }

    #[test]
    fn any_new_tokens_move_data_only_onto_the_new_node(
        (config, members) in cluster(),
        zone in 0usize..5,
        tokens in proptest::collection::vec(any::<u64>(), 1..8),
    ) {
        let before = Ring::new(config, members.clone()).unwrap();
        let new = NodeId(1_000_000);
        let mut grown = members;
        grown.push(Member::new(new, format!("zone-{zone}"), tokens.into_iter().map(Token).collect()));
        let after = Ring::new(config, grown).unwrap();
        for p in after.partitioner().iter() {
            let old: BTreeSet<NodeId> = before.primaries(p).collect();
            prop_assert!(after.primaries(p).all(|n| n == new || old.contains(&n)));
        }
    }
}
