//! Properties users of anti-entropy rely on: equal data gives equal trees
//! whatever the order it arrived in, and any single difference is found.

use std::collections::BTreeMap;

use proptest::prelude::*;
use quorra_merkle::{Tree, diff, leaf_hash, segment_of};

fn tree_of<'a>(items: impl IntoIterator<Item = (&'a Vec<u8>, &'a u32)>) -> Tree {
    let mut t = Tree::new();
    for (k, v) in items {
        t.insert(k, leaf_hash(k, &v.to_le_bytes()));
    }
    t
}

proptest! {
    #[test]
    fn insertion_order_does_not_matter(
        items in prop::collection::btree_map(prop::collection::vec(any::<u8>(), 1..12), any::<u32>(), 0..200),
        seed in any::<u64>(),
    ) {
        let forward = tree_of(items.iter());
        let mut shuffled: Vec<_> = items.iter().collect();
        // A deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut a = forward;
        let mut b = tree_of(shuffled);
        prop_assert_eq!(a.root(), b.root());
        prop_assert!(diff(&mut a, &mut b).is_empty());
    }

    #[test]
    fn a_tree_built_by_updates_equals_one_built_from_the_final_state(
        items in prop::collection::btree_map(prop::collection::vec(any::<u8>(), 1..8), any::<u32>(), 1..100),
        changes in prop::collection::vec((any::<prop::sample::Index>(), prop::option::of(any::<u32>())), 0..100),
    ) {
        let keys: Vec<Vec<u8>> = items.keys().cloned().collect();
        let mut state: BTreeMap<Vec<u8>, u32> = items.clone();
        let mut incremental = tree_of(items.iter());
        for (which, new) in changes {
            let k = which.get(&keys).clone();
            let old = state.get(&k).map(|v| leaf_hash(&k, &v.to_le_bytes()));
            match new {
                Some(v) => { state.insert(k.clone(), v); }
                None => { state.remove(&k); }
            }
            incremental.update(&k, old, new.map(|v| leaf_hash(&k, &v.to_le_bytes())));
        }
        let mut rebuilt = tree_of(state.iter());
        prop_assert_eq!(incremental.root(), rebuilt.root());
        prop_assert_eq!(incremental.keys(), state.len() as u64);
    }

    #[test]
    fn a_single_changed_key_is_always_found(
        items in prop::collection::btree_map(prop::collection::vec(any::<u8>(), 1..12), any::<u32>(), 1..300),
        which in any::<prop::sample::Index>(),
        new in prop::option::of(any::<u32>()),
    ) {
        let mut a = tree_of(items.iter());
        let mut b = a.clone();
        let keys: Vec<&Vec<u8>> = items.keys().collect();
        let k = which.get(&keys);
        let old = items[*k];
        prop_assume!(new != Some(old));
        b.update(k, Some(leaf_hash(k, &old.to_le_bytes())), new.map(|v| leaf_hash(k, &v.to_le_bytes())));
        prop_assert_eq!(diff(&mut a, &mut b), vec![segment_of(k)]);
    }

    #[test]
    fn a_missing_key_is_found(
        items in prop::collection::btree_map(prop::collection::vec(any::<u8>(), 1..12), any::<u32>(), 1..300),
        extra in prop::collection::vec(any::<u8>(), 13..20),
    ) {
        let mut a = tree_of(items.iter());
        let mut b = a.clone();
        b.insert(&extra, leaf_hash(&extra, b"v"));
        prop_assert_eq!(diff(&mut a, &mut b), vec![segment_of(&extra)]);
    }
}
