//! Causality of answers: no reply returns a value together with a value
//! whose write had seen (and so replaced) it.

use super::{Check, Violation};
use crate::history::{History, Kind, Outcome, show};

/// Checks every successful reply.
pub fn check(history: &History) -> Vec<Violation> {
    let writers = history.writers();
    let mut out = Vec::new();
    for (i, r) in history.records.iter().enumerate() {
        let Outcome::Ok { values, .. } = &r.outcome else {
            continue;
        };
        for newer in values {
            let Some(&w) = writers.get(newer) else {
                out.push(Violation {
                    check: Check::Causality,
                    key: Some(r.key),
                    record: Some(i),
                    detail: format!("reply contains {} which no put wrote", show(newer)),
                });
                continue;
            };
            if let Kind::Put { saw, .. } = &history.records[w].kind {
                for older in values {
                    if saw.contains(older) {
                        out.push(Violation {
                            check: Check::Causality,
                            key: Some(r.key),
                            record: Some(i),
                            detail: format!(
                                "a reply returned {} together with {}, which replaced it",
                                show(older),
                                show(newer)
                            ),
                        });
                    }
                }
            }
        }
    }
    out
}
