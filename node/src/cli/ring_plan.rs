//! `quorra ring plan`: preview a cluster's placement before building it.
//!
//! Grows a ring the way a cluster grows (nodes join one by one and choose
//! their tokens against the ring they see), then prints each node's share of
//! the partition-replicas and the balance; with `--add K` it adds K more
//! nodes the same way and reports how much data would move, against the
//! ideal K/(S+K). Like `riak-admin cluster plan`, it lets an operator see a
//! change before making it.

use std::io::Write;

use clap::Args;
use quorra_ring::plan::{PlanReport, PlanSpec, plan};
use quorra_ring::{
    DEFAULT_PARTITIONS, DEFAULT_REPLICAS, DEFAULT_TOKENS_PER_NODE, MAX_TOKENS_PER_NODE, RingConfig,
};
use serde::Serialize;

use super::CliError;

/// Most nodes a plan grows (planning cost grows with nodes × tokens).
const MAX_PLAN_NODES: usize = 1024;

#[derive(Args, Debug)]
pub(crate) struct PlanArgs {
    /// Nodes in the cluster.
    #[arg(long)]
    nodes: usize,
    /// Zones (failure domains); nodes are assigned to them round-robin.
    #[arg(long, default_value_t = 1)]
    zones: usize,
    /// Tokens per node (T).
    #[arg(long, default_value_t = DEFAULT_TOKENS_PER_NODE)]
    tokens: usize,
    /// Partitions (Q): a power of two, fixed for the cluster's life.
    #[arg(long, default_value_t = DEFAULT_PARTITIONS)]
    partitions: u32,
    /// Replicas per partition (N).
    #[arg(long, default_value_t = DEFAULT_REPLICAS)]
    replicas: usize,
    /// Nodes to add, to preview what would move.
    #[arg(long, default_value_t = 0)]
    add: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct JsonNode<'a> {
    id: u64,
    zone: &'a str,
    share: f64,
    tokens: usize,
    partition_replicas: u64,
    added: bool,
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    partitions: u32,
    replicas: usize,
    tokens_per_node: usize,
    nodes: Vec<JsonNode<'a>>,
    balance: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    balance_before: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    moved_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ideal_moved_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    moved_onto_existing_nodes: Option<u64>,
}

fn validate(args: &PlanArgs) -> Result<(), CliError> {
    let total = args.nodes.saturating_add(args.add);
    if args.nodes == 0 {
        return Err(CliError::Usage("--nodes must be at least 1".into()));
    }
    if total > MAX_PLAN_NODES {
        return Err(CliError::Usage(format!(
            "a plan grows at most {MAX_PLAN_NODES} nodes (asked for {total})"
        )));
    }
    if args.zones == 0 {
        return Err(CliError::Usage("--zones must be at least 1".into()));
    }
    if args.tokens == 0 || args.tokens > MAX_TOKENS_PER_NODE {
        return Err(CliError::Usage(format!(
            "--tokens must be between 1 and {MAX_TOKENS_PER_NODE}"
        )));
    }
    Ok(())
}

pub(crate) fn run(args: &PlanArgs) -> Result<(), CliError> {
    validate(args)?;
    let config = RingConfig {
        partitions: args.partitions,
        replicas: args.replicas,
    };
    config
        .validate()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let report = plan(PlanSpec {
        nodes: args.nodes,
        zones: args.zones,
        tokens: args.tokens,
        config,
        add: args.add,
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        print_json(&mut out, args, &report)?;
    } else {
        print_table(&mut out, args, &report)?;
    }
    out.flush()?;
    Ok(())
}

fn print_json(out: &mut impl Write, args: &PlanArgs, report: &PlanReport) -> Result<(), CliError> {
    let json = JsonPlan {
        partitions: args.partitions,
        replicas: args.replicas,
        tokens_per_node: args.tokens,
        nodes: report
            .nodes
            .iter()
            .map(|n| JsonNode {
                id: n.id.0,
                zone: &n.zone,
                share: n.share,
                tokens: n.tokens,
                partition_replicas: n.partition_replicas,
                added: n.added,
            })
            .collect(),
        balance: report.balance,
        balance_before: report.balance_before,
        moved_fraction: report.movement.as_ref().map(|m| m.fraction()),
        ideal_moved_fraction: report.ideal_moved_fraction,
        moved_onto_existing_nodes: report.movement.as_ref().map(|m| m.onto_existing_nodes),
    };
    serde_json::to_writer_pretty(&mut *out, &json).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

fn print_table(out: &mut impl Write, args: &PlanArgs, report: &PlanReport) -> Result<(), CliError> {
    let added = if args.add > 0 {
        format!(" + {} added", args.add)
    } else {
        String::new()
    };
    writeln!(
        out,
        "ring plan: {} nodes{added}, {} zone(s), {} tokens per node, Q={} partitions, N={} replicas",
        args.nodes, args.zones, args.tokens, args.partitions, args.replicas
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:>6}  {:<8} {:>7} {:>19} {:>8}",
        "node", "zone", "tokens", "partition-replicas", "share"
    )?;
    for n in &report.nodes {
        writeln!(
            out,
            "{:>6}  {:<8} {:>7} {:>19} {:>7.3}%{}",
            n.id,
            n.zone,
            n.tokens,
            n.partition_replicas,
            n.share * 100.0,
            if n.added { "  (added)" } else { "" }
        )?;
    }
    writeln!(out)?;
    write!(out, "balance (largest/mean): {:.3}", report.balance)?;
    match report.balance_before {
        Some(before) => writeln!(out, "  (before adding: {before:.3})")?,
        None => writeln!(out)?,
    }
    if let (Some(m), Some(ideal)) = (&report.movement, report.ideal_moved_fraction) {
        writeln!(
            out,
            "moves: {:.2}% of partition-replicas ({} of {}); ideal {:.2}%; ratio {:.3}",
            m.fraction() * 100.0,
            m.moved,
            m.total,
            ideal * 100.0,
            if ideal > 0.0 {
                m.fraction() / ideal
            } else {
                0.0
            }
        )?;
        if m.onto_existing_nodes == 0 {
            writeln!(out, "all moved data goes to the added nodes")?;
        } else {
            writeln!(
                out,
                "{} partition-replicas move between existing nodes",
                m.onto_existing_nodes
            )?;
        }
    }
    Ok(())
}
