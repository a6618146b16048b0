//! Nodes joining at the same moment take turns choosing their tokens, so
//! the ring they make is as even as if they had joined one by one.

use std::time::Duration;

use quorra_ring::plan::join;
use quorra_ring::{NodeId, Ring};
use quorra_simulations::harness::Harness;

/// Runs until every node has the same ring with `n` members owning tokens.
fn settle(h: &mut Harness, n: usize) -> Ring {
    for _ in 0..600 {
        if let Some(ring) = h.sim.agreed_ring()
            && ring
                .members()
                .iter()
                .filter(|m| !m.tokens.is_empty())
                .count()
                == n
        {
            return ring;
        }
        h.run_for(Duration::from_millis(100));
    }
    panic!("the ring did not settle with {n} members");
}

#[test]
fn nodes_joining_at_once_balance_the_ring_as_if_one_by_one() {
    for (existing, joining) in [(3usize, 1usize), (3, 2), (3, 3)] {
        // The production defaults: Q = 1024, T = 64.
        let mut h = Harness::with(existing, |p| {
            p.partitions = 1024;
            p.tokens = 64;
        });
        let before = h.sim.agreed_ring().expect("formed");
        for _ in 0..joining {
            h.sim.add_node();
        }
        let after = settle(&mut h, existing + joining);
        assert!(
            after.balance() <= 1.10,
            "{existing} + {joining} at once: balance {:.3}",
            after.balance()
        );
        // Exactly the tokens of joining one after another, in id order.
        let mut sequential = before.clone();
        for id in existing as u64 + 1..=(existing + joining) as u64 {
            sequential = join(&sequential, NodeId(id), "default", 64).expect("a plan");
        }
        for id in existing as u64 + 1..=(existing + joining) as u64 {
            let got = after.members().into_iter().find(|m| m.id == NodeId(id));
            let want = sequential
                .members()
                .into_iter()
                .find(|m| m.id == NodeId(id));
            assert_eq!(
                got.map(|m| m.tokens),
                want.map(|m| m.tokens),
                "{existing} + {joining}: node {id}"
            );
        }
        eprintln!(
            "{existing} nodes + {joining} joining at once: balance {:.3}",
            after.balance()
        );
    }
}
