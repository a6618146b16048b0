//! Durability: every acknowledged put whose value no write superseded is
//! present at the end, as a value or a sibling, unless every node that
//! acknowledged it lost its disk afterwards ([`History::owed`]).

use super::{Check, FinalState, Violation};
use crate::history::{History, Kind, show};

/// Checks durability.
pub fn check(history: &History, fin: &FinalState) -> Vec<Violation> {
    let superseders = history.superseders();
    history
        .records
        .iter()
        .enumerate()
        .filter(|(i, _)| history.owed(*i))
        .filter_map(|(i, r)| match &r.kind {
            Kind::Put { value, .. } if !superseders.contains_key(value) => {
                (!fin.values(r.key).contains(value)).then(|| Violation {
                    check: Check::Durability,
                    key: Some(r.key),
                    record: Some(i),
                    detail: format!(
                        "acknowledged write {} is missing; nothing superseded it",
                        show(value)
                    ),
                })
            }
            _ => None,
        })
        .collect()
}
