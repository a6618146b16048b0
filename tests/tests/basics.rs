//! A 3-node cluster of real processes: every consistency level, siblings
//! and their resolution, status, restarts that keep identity.

use quorra_client::{Consistency, Context, Level};
use quorra_e2e::TestCluster;

fn values(r: &quorra_client::Response) -> Vec<String> {
    let mut v: Vec<String> = r
        .values
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "current_thread")]
async fn put_get_delete_at_every_consistency_level() {
    let cluster = TestCluster::start(3, &[]).await;
    let client = cluster.client().await;
    let levels = [
        Consistency::ONE,
        Consistency::TWO,
        Consistency::QUORUM,
        Consistency::ALL,
        Consistency {
            read: Level::One,
            write: Level::All,
            primary_reads: 1,
            primary_writes: 3,
        },
    ];
    for (i, c) in levels.into_iter().enumerate() {
        let key = format!("key-{i}");
        let written = client
            .put(key.clone(), format!("v{i}"), &Context::empty(), c)
            .await
            .unwrap();
        assert!(!written.receipt.answered.is_empty());
        // Read at `all` so the check does not depend on the write level.
        let read = client.get(key.clone(), Consistency::ALL).await.unwrap();
        assert_eq!(values(&read), [format!("v{i}")], "{c}");
        client.delete(key.clone(), &read.context, c).await.unwrap();
        let gone = client.get(key.clone(), Consistency::ALL).await.unwrap();
        assert!(gone.values.is_empty(), "{c}: {:?}", gone.values);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_blind_writes_are_siblings_until_a_merged_write() {
    let cluster = TestCluster::start(3, &[]).await;
    let a = cluster.client_of(0).await;
    let b = cluster.client_of(1).await;
    let q = Consistency::QUORUM;
    let blind = Context::empty();
    let (x, y) = tokio::join!(
        a.put("cart", "apples", &blind, q),
        b.put("cart", "pears", &blind, q),
    );
    x.unwrap();
    y.unwrap();
    let read = a.get("cart", Consistency::ALL).await.unwrap();
    assert_eq!(values(&read), ["apples", "pears"]);
    a.put("cart", "apples+pears", &read.context, q)
        .await
        .unwrap();
    let merged = b.get("cart", Consistency::ALL).await.unwrap();
    assert_eq!(values(&merged), ["apples+pears"]);
}

#[tokio::test(flavor = "current_thread")]
async fn status_lists_every_member_and_a_restart_keeps_identity() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.wait_converged(3).await;
    let client = cluster.client().await;
    let before = client.status_of(cluster.nodes[1].addr).await.unwrap();
    assert_eq!(before.members.len(), 3);
    let share: f64 = before.members.iter().map(|m| m.share).sum();
    assert!((share - 1.0).abs() < 1e-9);
    for m in &before.members {
        assert_eq!(m.state, "normal");
        assert!(m.share > 0.2, "{m:?}");
    }
    client
        .put("k", "v", &Context::empty(), Consistency::ALL)
        .await
        .unwrap();

    cluster.stop(1);
    cluster.restart(1).await;
    cluster.wait_converged(3).await;
    let after = client.status_of(cluster.nodes[1].addr).await.unwrap();
    // Everything but the failure detector's live figures (phi, heartbeat age).
    let identity =
        |s: &quorra_client::protocol::ClusterStatus| -> Vec<(u64, String, String, String, u64)> {
            s.members
                .iter()
                .map(|m| {
                    (
                        m.id,
                        m.address.clone(),
                        m.zone.clone(),
                        m.state.clone(),
                        (m.share * 1e9) as u64,
                    )
                })
                .collect()
        };
    assert_eq!(
        identity(&before),
        identity(&after),
        "same ids, addresses, tokens (shares)"
    );
    let read = cluster
        .client_of(1)
        .await
        .get("k", Consistency::ONE)
        .await
        .unwrap();
    assert_eq!(values(&read), ["v"], "data survived a clean restart");
}
