//! Redis values inside Quorra: counters count every increment whatever
//! the order replicas merge in, and a key's siblings resolve to the same
//! value on every node, at every moment: the latest sibling decides, and
//! once it has expired, no older one shows.

use bytes::Bytes;
use proptest::prelude::*;
use quorra_node::resp::update::visible;
use quorra_node::resp::value::{Data, Hlc, PnCounter, Stored};

/// What a client sees of `siblings` before anything can have expired.
fn resolve<'a>(siblings: impl IntoIterator<Item = &'a Bytes>) -> Option<Stored> {
    visible(siblings, 0)
}

fn stamp(wall_ms: u64, node: u64) -> Hlc {
    Hlc {
        wall_ms,
        logical: 0,
        node,
    }
}

fn counter() -> impl Strategy<Value = PnCounter> {
    (
        0..3i64,
        0..3u64,
        prop::collection::btree_map((1..4u64, 1..3u64), 0..100u64, 0..3),
        prop::collection::btree_map((1..4u64, 1..3u64), 0..100u64, 0..3),
    )
        .prop_map(|(base, at, incs, decs)| PnCounter {
            base,
            base_stamp: stamp(at, 1),
            incs,
            decs,
        })
}

proptest! {
    #[test]
    fn counter_join_is_a_semilattice(a in counter(), b in counter(), c in counter()) {
        prop_assert_eq!(a.join(&b), b.join(&a));
        prop_assert_eq!(a.join(&b).join(&c), a.join(&b.join(&c)));
        prop_assert_eq!(a.join(&a), a.clone());
    }

    #[test]
    fn concurrent_increments_through_different_nodes_all_count(
        adds in prop::collection::vec((1..4u64, -50..50i64), 0..30),
    ) {
        // Three replicas start from the same counter; each applies the adds
        // made through it; they merge in either order.
        let start = PnCounter::starting_at(7, stamp(1, 1));
        let mut replicas = vec![start.clone(); 3];
        for (node, by) in &adds {
            replicas[(*node - 1) as usize].add((*node, 1), *by).unwrap();
        }
        let expected = 7 + adds.iter().map(|(_, by)| by).sum::<i64>();
        let left = replicas[0].join(&replicas[1]).join(&replicas[2]);
        let right = replicas[2].join(&replicas[0].join(&replicas[1]));
        prop_assert_eq!(left.value(), Some(expected));
        prop_assert_eq!(right.value(), Some(expected));
    }

    #[test]
    fn siblings_resolve_the_same_whatever_their_order(
        values in prop::collection::vec(
            (0..5u64, 1..4u64, any::<bool>(), 0..20i64, prop::option::of(1..8u64)),
            1..6,
        ),
        seed in any::<u64>(),
        now in 0..10u64,
    ) {
        let decoded: Vec<Stored> = values
            .iter()
            .map(|&(at, node, is_counter, n, expires)| {
                let data = if is_counter {
                    let mut c = PnCounter::starting_at(0, stamp(0, 1));
                    c.add((node, 1), n).unwrap();
                    Data::Counter(c)
                } else {
                    Data::Str(Bytes::from(format!("s{n}")))
                };
                Stored { data, stamp: stamp(at, node), expires_at_ms: expires }
            })
            .collect();
        let siblings: Vec<Bytes> = decoded.iter().map(Stored::encode).collect();
        let mut shuffled = siblings.clone();
        let k = shuffled.len();
        shuffled.rotate_left((seed % k as u64) as usize);
        shuffled.reverse();
        let shown = visible(&siblings, now);
        prop_assert_eq!(&shown, &visible(&shuffled, now));
        // Nothing older than the latest sibling shows; once that one has
        // expired, nothing does.
        let latest = decoded.iter().map(|s| s.stamp).max().unwrap();
        let latest_expired = decoded
            .iter()
            .filter(|s| s.stamp == latest)
            .any(|s| s.expired(now));
        match &shown {
            Some(s) => {
                prop_assert_eq!(s.stamp, latest);
                prop_assert!(!s.expired(now));
            }
            None => prop_assert!(latest_expired),
        }
    }
}

#[test]
fn the_latest_string_wins_and_plain_bytes_are_the_oldest_strings() {
    let plain = Bytes::from_static(b"from-the-sdk");
    let newer = Stored {
        data: Data::Str(Bytes::from_static(b"new")),
        stamp: stamp(5, 2),
        expires_at_ms: None,
    };
    let got = resolve([&plain, &newer.encode()]).unwrap();
    assert_eq!(got, newer);
    let only_plain = resolve([&plain]).unwrap();
    assert_eq!(only_plain.data, Data::Str(plain.clone()));
    assert_eq!(resolve(std::iter::empty::<&Bytes>()), None);
}

#[test]
fn a_later_set_replaces_counts_made_on_an_older_base() {
    let mut old = PnCounter::starting_at(0, stamp(1, 1));
    old.add((1, 1), 5).unwrap();
    let reset = PnCounter::starting_at(100, stamp(2, 2));
    assert_eq!(old.join(&reset).value(), Some(100));
}

#[test]
fn overflow_is_refused_and_changes_nothing() {
    let mut c = PnCounter::starting_at(i64::MAX - 1, stamp(1, 1));
    assert_eq!(c.add((1, 1), 1), Ok(i64::MAX));
    assert!(c.add((1, 1), 1).is_err());
    assert_eq!(c.value(), Some(i64::MAX));
    let mut d = PnCounter::starting_at(i64::MIN + 1, stamp(1, 1));
    assert!(d.add((2, 1), -2).is_err());
    assert_eq!(d.value(), Some(i64::MIN + 1));
}

#[test]
fn expiry_is_by_the_writers_stamp_and_corrupt_envelopes_read_as_bytes() {
    let s = Stored {
        data: Data::Str(Bytes::from_static(b"v")),
        stamp: stamp(10, 1),
        expires_at_ms: Some(1_000),
    };
    assert!(!s.expired(999));
    assert!(s.expired(1_000));
    let mut corrupt = quorra_node::resp::value::MAGIC.to_vec();
    corrupt.extend_from_slice(b"\xc1not rmp");
    let corrupt = Bytes::from(corrupt);
    assert_eq!(Stored::decode(&corrupt).data, Data::Str(corrupt.clone()));
}

#[test]
fn hlc_stamps_never_go_backwards() {
    let a = Hlc::next(Hlc::default(), 100, 1);
    let b = Hlc::next(a, 50, 1); // the clock stepped back
    let c = Hlc::next(b, 100, 2);
    let d = Hlc::next(c, 101, 2);
    assert!(a < b && b < c && c < d, "{a:?} {b:?} {c:?} {d:?}");
}
