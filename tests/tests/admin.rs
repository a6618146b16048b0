//! The admin HTTP port of real processes: `/health`, `/ready`, `/metrics`
//! (parsed strictly and watched as the cluster changes), `/v1/status`,
//! `/v1/ring`, the page, and requests that must not disturb the node.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use quorra_client::{Consistency, Context};
use quorra_e2e::TestCluster;
use quorra_e2e::http::{self, HttpReply};
use quorra_e2e::prom::Scrape;

/// Families `/metrics` must always carry (issue 19's list).
const FAMILIES: &[&str] = &[
    "quorra_build_info",
    "quorra_ready",
    "quorra_requests_total",
    "quorra_request_duration_seconds",
    "quorra_resp_commands_total",
    "quorra_resp_command_duration_seconds",
    "quorra_replica_reads_total",
    "quorra_replica_writes_total",
    "quorra_forwarded_writes_total",
    "quorra_read_repairs_total",
    "quorra_quorum_failures_total",
    "quorra_hints_held",
    "quorra_hints_held_bytes",
    "quorra_hints_stored_total",
    "quorra_hints_delivered_total",
    "quorra_hints_refused_total",
    "quorra_hints_oldest_age_seconds",
    "quorra_anti_entropy_exchanges_total",
    "quorra_anti_entropy_keys_repaired_total",
    "quorra_anti_entropy_sent_bytes_total",
    "quorra_anti_entropy_trees_built_total",
    "quorra_anti_entropy_oldest_sync_age_seconds",
    "quorra_members",
    "quorra_peer_phi",
    "quorra_peer_heartbeat_age_seconds",
    "quorra_gossip_sent_bytes_total",
    "quorra_storage_keys",
    "quorra_storage_size_bytes",
    "quorra_storage_available_bytes",
    "quorra_storage_capacity_bytes",
    "quorra_tls_certificate_expiry_timestamp_seconds",
    "quorra_storage_flush_duration_seconds",
    "quorra_storage_unflushed_writes",
    "quorra_quic_rtt_seconds",
    "quorra_quic_lost_packets_total",
    "quorra_connections",
    "quorra_moves_partitions_moving",
    "quorra_moves_keys_received_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
];

async fn scrape(admin: SocketAddr) -> Scrape {
    let reply = http::get(admin, "/metrics", None).await.expect("scrape");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        reply.headers
    );
    Scrape::parse(&reply.body).unwrap_or_else(|e| panic!("{e}\n{}", reply.body))
}

/// Scrapes `admin` until `ok` holds for the scrape, or fails after `secs`.
async fn wait_scrape(
    admin: SocketAddr,
    secs: u64,
    what: &str,
    ok: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = scrape(admin).await;
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn ready(admin: SocketAddr) -> HttpReply {
    http::get(admin, "/ready", None).await.expect("/ready")
}

#[tokio::test(flavor = "current_thread")]
async fn metrics_health_and_readiness_follow_a_cluster_through_failures() {
    // Four nodes, N = 3: a key with a dead primary gets a fallback, so
    // hints appear; anti-entropy off so only reads repair.
    let mut cluster = TestCluster::start(4, &["--anti-entropy", "off"]).await;
    let admins: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.admin).collect();
    for &a in &admins {
        let h = http::get(a, "/health", None).await.unwrap();
        assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
        let r = ready(a).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["ready"], true);
    }

    // Traffic through the SDK and through RESP.
    let client = cluster.client().await;
    for i in 0..200 {
        client
            .put(format!("k{i}"), "v", &Context::empty(), Consistency::QUORUM)
            .await
            .unwrap();
    }
    for i in 0..50 {
        client.get(format!("k{i}"), Consistency::ONE).await.unwrap();
    }
    let resp = cluster.nodes[0].resp;
    quorra_e2e::resp_session(resp, |c| {
        for i in 0..20 {
            let _: () = redis::cmd("SET")
                .arg(format!("r{i}"))
                .arg("x")
                .query(c)
                .unwrap();
            let _: Option<String> = redis::cmd("GET").arg(format!("r{i}")).query(c).unwrap();
        }
        let _: redis::RedisResult<()> = redis::cmd("NOSUCHCOMMAND").query(c);
    })
    .await;

    let scrapes: Vec<Scrape> = scrape_all(&admins).await;
    for (i, s) in scrapes.iter().enumerate() {
        // A labelled family shows once it has a series: the request and
        // RESP families on the nodes that served some (node 1 served both).
        let served = |f: &&&str| {
            i == 0 || !(f.starts_with("quorra_resp_") || f.starts_with("quorra_request"))
        };
        for f in FAMILIES.iter().filter(served) {
            assert!(s.types.contains_key(*f), "node {} lacks family {f}", i + 1);
        }
        assert_eq!(s.value("quorra_members", &[("state", "normal")]), Some(4.0));
        assert_eq!(s.value("quorra_members", &[("state", "down")]), Some(0.0));
        assert_eq!(s.value("quorra_ready", &[]), Some(1.0));
        assert_eq!(
            s.find("quorra_peer_phi", &[]).count(),
            3,
            "one phi per peer"
        );
    }
    let total = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrapes.iter().map(|s| s.sum(name, labels)).sum()
    };
    // Every SDK put was coordinated somewhere, once.
    assert_eq!(
        total(
            "quorra_requests_total",
            &[("op", "put"), ("source", "sdk"), ("outcome", "ok")]
        ),
        200.0
    );
    assert_eq!(
        total(
            "quorra_request_duration_seconds_count",
            &[("op", "put"), ("source", "sdk")]
        ),
        200.0
    );
    assert!(
        total("quorra_replica_writes_total", &[]) >= 600.0,
        "3 replicas per put"
    );
    let node1 = &scrapes[0];
    assert_eq!(
        node1.value(
            "quorra_resp_commands_total",
            &[("command", "set"), ("outcome", "ok")]
        ),
        Some(20.0)
    );
    assert_eq!(
        node1.value(
            "quorra_resp_command_duration_seconds_count",
            &[("command", "get")]
        ),
        Some(20.0)
    );
    assert!(
        node1
            .value("quorra_storage_flush_duration_seconds_count", &[])
            .unwrap()
            > 0.0
    );
    assert!(node1.value("process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(
        node1
            .value("quorra_storage_size_bytes", &[("engine", "fjall")])
            .unwrap()
            > 0.0
    );

    // JSON endpoints: the status `quorra status --json` prints, the ring.
    let status = http::get(admins[0], "/v1/status", None).await.unwrap();
    assert_eq!(status.status, 200);
    let status = status.json();
    assert_eq!(status["members"].as_array().unwrap().len(), 4);
    assert_eq!(status["node"], 1);
    let ring = http::get(admins[0], "/v1/ring", None).await.unwrap().json();
    let partitions = ring["partitions"].as_u64().unwrap() as usize;
    assert_eq!(ring["owners"].as_array().unwrap().len(), partitions);
    assert_eq!(ring["starts"].as_array().unwrap().len(), partitions);
    assert!(
        ring["owners"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o.as_array().unwrap().len() == 3)
    );
    // Without a token, only loopback hosts (no DNS rebinding).
    let rebound = http::raw(
        admins[0],
        b"GET /v1/status HTTP/1.1\r\nHost: evil.example:9180\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    let page = http::get(admins[0], "/", None).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg id=\"ring\""));

    // A node killed: the others see it down with a rising phi, stay
    // ready (three of four keep every quorum), and hold hints for it.
    cluster.kill9(3);
    wait_scrape(admins[0], 30, "node 1 sees node 4 down", |s| {
        s.value("quorra_members", &[("state", "down")]) == Some(1.0)
            && s.value("quorra_peer_phi", &[("peer", "4")])
                .is_some_and(|phi| phi > 1.0)
    })
    .await;
    // Three of four keep every quorum (a moment's suspicion of another
    // peer on a loaded machine may flip it briefly, so wait for it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready(admins[0]).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "node 1 not ready with one of four down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Through node 1 alone: the routing client would wait on node 4.
    let via_one = cluster.client_of(0).await;
    for i in 200..400 {
        via_one
            .put(format!("k{i}"), "v", &Context::empty(), Consistency::QUORUM)
            .await
            .unwrap();
    }
    let held: f64 = scrape_all(&admins[..3])
        .await
        .iter()
        .map(|s| s.sum("quorra_hints_held", &[]))
        .sum();
    assert!(held > 0.0, "writes for a dead primary leave hints");

    // Two of four down: partitions whose primaries include both lose
    // their quorum; node 1 says not ready, and why.
    cluster.kill9(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    let not_ready = loop {
        let r = ready(admins[0]).await;
        if r.status == 503 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 still ready with two of four down: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let why = not_ready.json();
    assert_eq!(why["ready"], false);
    assert!(why["partitions_without_quorum"].as_u64().unwrap() > 0);
    assert!(why["reason"].as_str().unwrap().contains("quorum"), "{why}");
    // /health is about the process, not the cluster.
    assert_eq!(
        http::get(admins[0], "/health", None).await.unwrap().status,
        200
    );

    // Healed: ready again, hints drain.
    cluster.restart(2).await;
    cluster.restart(3).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready(admins[0]).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "node 1 not ready again after healing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let scrapes = scrape_all(&admins).await;
        let held: f64 = scrapes
            .iter()
            .map(|s| s.sum("quorra_hints_held", &[]))
            .sum();
        let delivered: f64 = scrapes
            .iter()
            .map(|s| s.sum("quorra_hints_delivered_total", &[]))
            .sum();
        if held == 0.0 && delivered > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hints did not drain: {held} held, {delivered} delivered"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn scrape_all(admins: &[SocketAddr]) -> Vec<Scrape> {
    let mut out = Vec::new();
    for &a in admins {
        out.push(scrape(a).await);
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn a_read_that_finds_a_stale_replica_counts_a_read_repair() {
    // Three nodes, N = 3, no anti-entropy: a write while node 3 is down
    // has no fallback to hint, so only a read can repair node 3.
    let mut cluster = TestCluster::start(3, &["--anti-entropy", "off"]).await;
    let client = cluster.client_of(0).await;
    cluster.kill9(2);
    client
        .put("stale", "new", &Context::empty(), Consistency::QUORUM)
        .await
        .unwrap();
    cluster.restart(2).await;
    let before = scrape(cluster.nodes[0].admin)
        .await
        .sum("quorra_read_repairs_total", &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // At `all`, node 3's missing copy is seen and repaired.
        let _ = client.get("stale", Consistency::ALL).await;
        let now = scrape(cluster.nodes[0].admin)
            .await
            .sum("quorra_read_repairs_total", &[]);
        if now > before {
            break;
        }
        assert!(Instant::now() < deadline, "no read repair counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn bad_requests_get_errors_and_leave_the_node_serving() {
    let cluster = TestCluster::start(1, &["--admin-token", "s3cret"]).await;
    let admin = cluster.nodes[0].admin;

    // The token: asked everywhere but the probes and the page.
    assert_eq!(http::get(admin, "/health", None).await.unwrap().status, 200);
    assert_eq!(http::get(admin, "/ready", None).await.unwrap().status, 200);
    assert_eq!(http::get(admin, "/", None).await.unwrap().status, 200);
    let denied = http::get(admin, "/metrics", None).await.unwrap();
    assert_eq!(denied.status, 401);
    assert!(denied.header("www-authenticate").is_some());
    assert_eq!(
        http::get(admin, "/v1/status", Some("wrong"))
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        http::get(admin, "/metrics", Some("s3cret"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http::get(admin, "/v1/status", Some("s3cret"))
            .await
            .unwrap()
            .status,
        200
    );

    // Unknown paths, other methods, garbage, huge heads.
    assert_eq!(
        http::get(admin, "/nope", Some("s3cret"))
            .await
            .unwrap()
            .status,
        404
    );
    let post = http::raw(
        admin,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(post.status, 405);
    let garbage = http::raw(admin, b"\x16\x03\x01 not http at all\r\n\r\n").await;
    assert_eq!(garbage.map(|r| r.status), Ok(400), "garbage");
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let huge = http::raw(admin, huge.as_bytes()).await;
    assert_eq!(huge.map(|r| r.status), Ok(431), "a huge head");
    let lower = http::raw(
        admin,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: bearer s3cret\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(lower.map(|r| r.status), Ok(200), "the scheme in lower case");

    // Slowloris: a head trickled a byte a second is cut off.
    let started = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(admin).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    slow.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let closed = loop {
        if slow.write_all(b"X").await.is_err() {
            break true;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => break true, // an error status, then the close
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
    };
    assert!(closed, "a trickled head is never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "cut off after {:?}",
        started.elapsed()
    );

    // More connections than allowed: the extra one is answered 503, and
    // once the idle ones go the port serves again.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(tokio::net::TcpStream::connect(admin).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let extra = http::get(admin, "/health", None).await.unwrap();
    assert_eq!(extra.status, 503, "{}", extra.body);
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Through all of it the node served.
    assert_eq!(http::get(admin, "/health", None).await.unwrap().status, 200);
    cluster.assert_serving().await;
}
