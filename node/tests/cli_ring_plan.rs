//! `quorra ring plan` as an operator runs it: the JSON they script against,
//! the goals it reports, and clear errors for bad arguments.

use std::process::Command;

fn quorra(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quorra"))
        .args(args)
        .output()
        .expect("run quorra")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = quorra(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

#[test]
fn sixty_four_nodes_are_balanced() {
    let plan = json(&["ring", "plan", "--nodes", "64", "--json"]);
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 64);
    for node in nodes {
        assert!(node["id"].is_u64() && node["zone"].is_string() && node["share"].is_f64());
    }
    let shares: f64 = nodes.iter().map(|n| n["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-9, "shares sum to {shares}");
    let balance = plan["balance"].as_f64().unwrap();
    assert!(balance <= 1.10, "balance {balance}");
}

#[test]
fn adding_a_node_to_sixteen_moves_close_to_the_ideal() {
    let plan = json(&["ring", "plan", "--nodes", "16", "--add", "1", "--json"]);
    let moved = plan["moved_fraction"].as_f64().unwrap();
    let ideal = plan["ideal_moved_fraction"].as_f64().unwrap();
    assert!((ideal - 1.0 / 17.0).abs() < 1e-12);
    assert!(moved <= 1.2 * ideal, "moved {moved}, ideal {ideal}");
    assert_eq!(plan["moved_onto_existing_nodes"].as_u64(), Some(0));
    let added: Vec<_> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["added"].as_bool() == Some(true))
        .collect();
    assert_eq!(added.len(), 1);
}

#[test]
fn zones_are_reported_and_table_output_reads_well() {
    let out = quorra(&["ring", "plan", "--nodes", "6", "--zones", "3", "--add", "3"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("balance (largest/mean)"), "{text}");
    assert!(text.contains("z3"), "{text}");
    assert!(
        text.contains("all moved data goes to the added nodes"),
        "{text}"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["ring", "plan", "--nodes", "0"][..],
        &["ring", "plan", "--nodes", "4", "--partitions", "1000"],
        &["ring", "plan", "--nodes", "4", "--replicas", "0"],
        &["ring", "plan", "--nodes", "4", "--tokens", "0"],
        &["ring", "plan", "--nodes", "many"],
        &["ring", "plan"],
    ] {
        let out = quorra(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}
