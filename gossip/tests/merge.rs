//! Merging views of a member is a join: commutative, associative and
//! idempotent, so every node converges on the same table whatever order
//! views arrive in.

use proptest::prelude::*;
use quorra_gossip::{Entry, Info, Status};
use quorra_ring::{NodeId, Token};

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Joining),
        Just(Status::Normal),
        Just(Status::Leaving),
        Just(Status::Left),
        Just(Status::Removed),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        0u64..3,
        0u64..5,
        0u64..4,
        status(),
        0u8..3,
        proptest::collection::vec(0u64..4, 0..3),
    )
        .prop_map(
            |(generation, heartbeat, version, status, addr, tokens)| Entry {
                id: NodeId(7),
                generation,
                heartbeat,
                version,
                info: Info {
                    status,
                    address: format!("10.0.0.{addr}:7401"),
                    zone: "z".into(),
                    tokens: tokens.into_iter().map(Token).collect(),
                    storage_failing: false,
                    layout: Default::default(),
                },
            },
        )
}

fn merged(a: &Entry, b: &Entry) -> Entry {
    let mut out = a.clone();
    out.merge(b);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn merge_is_a_join(a in entry(), b in entry(), c in entry()) {
        prop_assert_eq!(merged(&a, &a), a.clone());
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    #[test]
    fn newer_generation_wins_outright(a in entry(), b in entry()) {
        let m = merged(&a, &b);
        prop_assert_eq!(m.generation, a.generation.max(b.generation));
        if a.generation != b.generation {
            let newer = if a.generation > b.generation { &a } else { &b };
            prop_assert_eq!(&m, newer);
        }
    }
}
