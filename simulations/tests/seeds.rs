//! A handful of simulator seeds in the ordinary test run (CI runs thousands
//! in release): every fault level passes, a run replays identically, with
//! read repair and hinted handoff off anti-entropy alone still converges,
//! and with anti-entropy off as well the checker does catch replicas that
//! never converge.

use quorra_simulations::params::{FaultLevel, Overrides, Params};
use quorra_simulations::runner::run;

fn params(seed: u64, faults: FaultLevel) -> Params {
    Params::draw(
        seed,
        &Overrides {
            faults: Some(faults),
            ops: Some(600),
            ..Overrides::default()
        },
    )
}

#[test]
fn a_few_seeds_at_every_fault_level_pass() {
    for faults in [FaultLevel::None, FaultLevel::Light, FaultLevel::Heavy] {
        for seed in 1..=4 {
            let report = run(params(seed, faults), false);
            assert!(
                !report.safety_failed() && !report.liveness_failed(),
                "seed {seed} at {faults}: {:?} {:?}",
                report.stuck.first(),
                report.violations.first()
            );
            assert_eq!(report.ops, 600);
        }
    }
}

#[test]
fn a_seed_replays_identically() {
    let a = run(params(11, FaultLevel::Heavy), true);
    let b = run(params(11, FaultLevel::Heavy), true);
    assert!(a.trace.is_some());
    assert_eq!(a.trace, b.trace);
    assert_ne!(a.trace, run(params(12, FaultLevel::Heavy), true).trace);
}

#[test]
fn anti_entropy_alone_converges_every_seed() {
    for seed in 1..=6 {
        let mut p = params(seed, FaultLevel::Heavy);
        p.read_repair = false;
        p.hinted_handoff = false;
        let report = run(p, false);
        assert!(
            !report.safety_failed() && !report.liveness_failed(),
            "seed {seed}: {:?} {:?}",
            report.stuck.first(),
            report.violations.first()
        );
    }
}

#[test]
fn without_repair_mechanisms_the_checker_sees_divergence() {
    // 20 seeds: since heavy faults split the network once at a time,
    // fewer writes miss replicas, and 4 of the first 10 (8 of 20) diverge.
    let failing = (1..=20)
        .filter(|&seed| {
            let mut p = params(seed, FaultLevel::Heavy);
            p.read_repair = false;
            p.hinted_handoff = false;
            p.anti_entropy = false;
            // Moves carry data too (a pull is an exchange with the old
            // owners): no membership changes either.
            p.changes = 0;
            let report = run(p, false);
            assert!(
                !report.safety_failed(),
                "seed {seed}: {:?}",
                report.violations.first()
            );
            report.liveness_failed()
        })
        .count();
    assert!(
        failing >= 5,
        "only {failing} of 20 seeds failed to converge"
    );
}
