//! Convergence: after healing, every primary of every key holds the same
//! state, and every hint has been handed over.

use super::{Check, FinalState, Violation};

/// Checks that replicas agree and no hints are left.
pub fn check(fin: &FinalState) -> Vec<Violation> {
    let mut out = Vec::new();
    for (&key, states) in &fin.replicas {
        let first = &states[0].1;
        if let Some((node, _)) = states.iter().find(|(_, s)| s != first) {
            let summary: Vec<String> = states
                .iter()
                .map(|(n, s)| match s {
                    None => format!("node {n}: absent"),
                    Some(o) => {
                        let v: Vec<String> = o.live_values().map(crate::history::show).collect();
                        format!(
                            "node {n}: {} sibling(s) [{}]{}",
                            o.sibling_count(),
                            v.join(", "),
                            if o.is_tombstone() { " (tombstone)" } else { "" }
                        )
                    }
                })
                .collect();
            out.push(Violation {
                check: Check::Convergence,
                key: Some(key),
                record: None,
                detail: format!(
                    "replicas disagree (first difference on node {node}): {}",
                    summary.join("; ")
                ),
            });
        }
    }
    for &(node, hints) in &fin.hints_left {
        if hints > 0 {
            out.push(Violation {
                check: Check::Convergence,
                key: None,
                record: None,
                detail: format!("node {node} still holds {hints} hint(s) after healing"),
            });
        }
    }
    out
}
