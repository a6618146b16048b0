//! What a node refuses: certificates from another CA, garbage on its port,
//! oversized and malformed frames; and clear start-up errors.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use quorra_client::protocol::NodeMessage;
use quorra_client::tls::client_config;
use quorra_client::wire::{self, ALPN_CLIENT, NODE_SERVER_NAME};
use quorra_client::{Client, TlsFiles};
use quorra_e2e::{TestCluster, free_port, make_tls, quorra_bin};

#[tokio::test(flavor = "current_thread")]
async fn a_certificate_from_another_ca_is_refused() {
    let cluster = TestCluster::start(1, &[]).await;
    let other = tempfile::tempdir().unwrap();
    make_tls(other.path());
    let mut config = cluster.client_config();
    config.tls = TlsFiles::in_dir(other.path(), "client");
    config.retries = 0;
    match Client::connect(config).await {
        Err(quorra_client::ClientError::TlsRefused { .. }) => {}
        Err(other) => panic!("expected a TLS refusal, got {other}"),
        Ok(_) => panic!("a client of another CA was let in"),
    }

    // A node of another CA cannot join either.
    let mut foreign = Command::new(quorra_bin())
        .args(["node", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args([
            "--data-dir",
            &other.path().join("data").display().to_string(),
        ])
        .args([
            "--tls-dir",
            &other.path().display().to_string(),
            "--node-id",
            "99",
        ])
        .args(["--seeds", &cluster.nodes[0].addr.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = cluster.client().await.status().await.unwrap();
    let _ = foreign.kill();
    let _ = foreign.wait();
    assert!(status.members.iter().all(|m| m.id != 99), "{status:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn garbage_and_oversized_frames_leave_the_node_serving() {
    let cluster = TestCluster::start(1, &[]).await;
    let addr = cluster.nodes[0].addr;

    // Raw garbage on the UDP port.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200u32 {
        let junk: Vec<u8> = (0..(i % 1200 + 1)).map(|j| (j * 31 + i) as u8).collect();
        socket.send_to(&junk, addr).unwrap();
    }

    // A real TLS client sending frames that make no sense.
    let files = TlsFiles::in_dir(&cluster.tls, "client");
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client_config(&files, ALPN_CLIENT).unwrap());
    let conn = endpoint
        .connect(addr, NODE_SERVER_NAME)
        .unwrap()
        .await
        .unwrap();
    for bad in [
        // A frame of an unknown protocol version.
        vec![0, 0, 0, 3, 99, 1, 2],
        // A frame that does not decode.
        vec![0, 0, 0, 3, wire::PROTOCOL_VERSION, 0xc1, 0xc1],
        // A frame claiming 4 GiB.
        vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
    ] {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&bad).await.unwrap();
        let mut buf = Vec::new();
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            wire::read::<NodeMessage>(&mut recv, &mut buf),
        )
        .await
        .expect("the node answers or closes the stream");
        match answer {
            Ok(Some(NodeMessage::Error { message })) => assert!(!message.is_empty()),
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
    endpoint.close(0u32.into(), b"done");

    // The node still serves everyone else.
    cluster.assert_serving().await;
}

fn node_fails(args: &[&str]) -> String {
    let out = Command::new(quorra_bin())
        .arg("node")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "current_thread")]
async fn start_up_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    make_tls(&tls);
    let tls_arg = tls.display().to_string();
    let data = dir.path().join("data").display().to_string();

    let err = node_fails(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
        "--tls-dir",
        "/nonexistent",
    ]);
    assert!(
        err.contains("cannot read") && err.contains("quorra cert"),
        "{err}"
    );

    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let err = node_fails(&[
        "--listen",
        &port,
        "--data-dir",
        &data,
        "--tls-dir",
        &tls_arg,
    ]);
    assert!(err.contains("cannot listen on"), "{err}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = node_fails(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &file.display().to_string(),
        "--tls-dir",
        &tls_arg,
    ]);
    assert!(err.contains("data directory"), "{err}");

    // A data directory remembers its node id.
    let mut ok = Command::new(quorra_bin())
        .args([
            "node",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
            &data,
        ])
        .args(["--tls-dir", &tls_arg, "--node-id", "5"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &ok.id().to_string()])
        .status();
    let _ = ok.wait();
    let err = node_fails(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
        "--tls-dir",
        &tls_arg,
        "--node-id",
        "6",
    ]);
    assert!(err.contains("belongs to node 5"), "{err}");
}
