//! Gossip's measured goals as regression tests (deterministic seeds): a
//! cluster started from three seeds agrees within a few rounds, a crash is
//! seen by everyone within 10 s, and 5% message loss raises no false
//! suspicion.

use quorra_simulations::gossip_sim::{
    bytes_per_node_second, convergence_rounds, detection_seconds, false_positives_per_node_hour,
};

#[test]
fn clusters_agree_in_logarithmic_rounds() {
    for (n, most) in [(10, 8), (50, 10), (200, 12)] {
        let rounds = convergence_rounds(n, 1).expect("agreement");
        assert!(rounds <= most, "{n} nodes took {rounds} rounds");
    }
}

#[test]
fn a_crash_is_seen_by_everyone_within_ten_seconds() {
    for (n, loss) in [(5, 0.0), (10, 0.05), (50, 0.05)] {
        let t = detection_seconds(n, loss, 3).expect("detected");
        assert!(t <= 10.0, "{n} nodes, loss {loss}: {t} s");
    }
}

#[test]
fn message_loss_raises_no_false_suspicion() {
    let (count, _) = false_positives_per_node_hour(10, 0.05, 10, 4);
    assert_eq!(count, 0);
}

#[test]
fn a_stable_fifty_node_cluster_gossips_under_two_kilobytes_per_second() {
    let b = bytes_per_node_second(50, 5);
    assert!(b <= 2048.0, "{b} bytes per node per second");
}
