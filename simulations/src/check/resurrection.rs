//! No resurrection (and no lost supersession): a value that an acknowledged
//! delete or put replaced must not be present at the end (unless every node
//! that acknowledged that write lost its disk afterwards).

use super::{Check, FinalState, Violation};
use crate::history::{History, Kind, show};

/// Checks that nothing an acknowledged write replaced came back.
pub fn check(history: &History, fin: &FinalState) -> Vec<Violation> {
    let mut out = Vec::new();
    for (i, r) in history
        .records
        .iter()
        .enumerate()
        .filter(|(i, _)| history.owed(*i))
    {
        let present = fin.values(r.key);
        for seen in r.saw() {
            if present.contains(seen) {
                let (check, what) = match r.kind {
                    Kind::Delete { .. } => (Check::NoResurrection, "an acknowledged delete"),
                    _ => (Check::Causality, "an acknowledged put"),
                };
                out.push(Violation {
                    check,
                    key: Some(r.key),
                    record: Some(i),
                    detail: format!(
                        "{} is present at the end although {what} replaced it",
                        show(seen)
                    ),
                });
            }
        }
    }
    out
}
