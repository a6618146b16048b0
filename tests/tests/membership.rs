//! Gossip with real processes: a cluster forms from one seed, a killed node
//! is seen down, leaving and removal spread, and a node of another cluster
//! or with other settings is refused.

use std::time::{Duration, Instant};

use quorra_client::protocol::AdminCommand;
use quorra_client::{Consistency, Context};
use quorra_e2e::TestCluster;

async fn state_of(cluster: &TestCluster, observer: usize, id: u64) -> Option<String> {
    let client = cluster.client_of(observer).await;
    let status = client.status_of(cluster.nodes[observer].addr).await.ok()?;
    status
        .members
        .iter()
        .find(|m| m.id == id)
        .map(|m| m.state.clone())
}

async fn wait_state(
    cluster: &TestCluster,
    observers: &[usize],
    id: u64,
    state: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for &o in observers {
            all &= state_of(cluster, o, id).await.as_deref() == Some(state);
        }
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "node {id} not `{state}` everywhere within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn ten_nodes_from_one_seed_agree_and_see_a_killed_node_down() {
    let (mut cluster, took) = TestCluster::start_together(10, &[]).await;
    assert!(took <= Duration::from_secs(10), "one view took {took:?}");
    eprintln!("10 nodes reached one view in {took:?}");

    // Any node lists all ten as normal, with zone and owned share.
    let eighth = cluster.client_of(7).await;
    let status = eighth.status_of(cluster.nodes[7].addr).await.unwrap();
    assert_eq!(status.members.len(), 10);
    for m in &status.members {
        assert_eq!(m.state, "normal", "{m:?}");
        assert_eq!(m.zone, "default");
        assert!(m.share > 0.05 && m.share < 0.2, "{m:?}");
    }

    cluster.kill9(9);
    let observers: Vec<usize> = (0..9).collect();
    let seen = wait_state(&cluster, &observers, 10, "down", Duration::from_secs(10)).await;
    eprintln!("a killed node was down everywhere after {seen:?}");

    // Once links are up, gossip rides QUIC datagrams (joins and the first
    // rounds go on streams).
    let status = eighth.status_of(cluster.nodes[7].addr).await.unwrap();
    assert!(
        status.gossip_datagrams > 2 * status.gossip_streamed,
        "gossip sent: {} datagrams, {} on streams",
        status.gossip_datagrams,
        status.gossip_streamed
    );
    eprintln!(
        "node 8 sent gossip as {} datagrams and {} stream frames",
        status.gossip_datagrams, status.gossip_streamed
    );

    let client = cluster.client().await;
    for i in 0..20 {
        let key = format!("after-kill-{i}");
        client
            .put(key.clone(), "v", &Context::empty(), Consistency::QUORUM)
            .await
            .unwrap();
        assert_eq!(
            client
                .get(key, Consistency::QUORUM)
                .await
                .unwrap()
                .values
                .len(),
            1
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_node_leaves_and_a_dead_node_is_removed() {
    let mut cluster = TestCluster::start(4, &[]).await;
    let client = cluster.client().await;

    let answer = client
        .admin(cluster.nodes[3].addr, AdminCommand::Leave)
        .await
        .unwrap();
    assert!(answer.contains("leaving"), "{answer}");
    wait_state(&cluster, &[0, 1, 2], 4, "left", Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while cluster.running(3) {
        assert!(Instant::now() < deadline, "the node that left did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    cluster.kill9(2);
    wait_state(&cluster, &[0, 1], 3, "down", Duration::from_secs(15)).await;
    // Removing a live node is refused; removing the dead one works.
    assert!(
        client
            .admin(cluster.nodes[0].addr, AdminCommand::Remove { node: 2 })
            .await
            .is_err()
    );
    client
        .admin(cluster.nodes[0].addr, AdminCommand::Remove { node: 3 })
        .await
        .unwrap();
    wait_state(&cluster, &[0, 1], 3, "removed", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn nodes_of_another_cluster_or_with_other_settings_are_refused() {
    let mut cluster = TestCluster::start(2, &[]).await;
    cluster.add_node_unready(&["--cluster", "other"]);
    cluster.add_node_unready(&["--partitions", "512"]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = cluster
        .client_of(0)
        .await
        .status_of(cluster.nodes[0].addr)
        .await
        .unwrap();
    let ids: Vec<u64> = status.members.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![1, 2], "foreign nodes polluted the member table");
    let log = cluster.log_of(0);
    assert!(
        log.contains("refused"),
        "no log line about the refusal:\n{log}"
    );
}
