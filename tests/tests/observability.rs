//! The admin port as the tools operators run see it: a real Prometheus
//! server scraping every node, and the status page in a real headless
//! browser (Debian's `prometheus` and `chromium`, which `.ci/run`
//! installs). Without them the tests say so and pass, unless
//! `QUORRA_E2E_REQUIRE_TOOLS` is set, as CI sets it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quorra_e2e::{TestCluster, free_port, http};

/// Whether `program` runs; if not, whether the test may be skipped.
fn tool(program: &str) -> bool {
    let present = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !present {
        assert!(
            std::env::var_os("QUORRA_E2E_REQUIRE_TOOLS").is_none(),
            "{program} is not installed and QUORRA_E2E_REQUIRE_TOOLS is set"
        );
        eprintln!("{program} is not installed: this test is skipped");
    }
    present
}

/// Kills a child process when dropped (also when the test fails).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `%`-encodes a PromQL query for a URL.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn a_real_prometheus_scrapes_every_node() {
    if !tool("prometheus") {
        return;
    }
    let cluster = TestCluster::start(3, &[]).await;
    let dir = cluster.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let targets: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("\"{}\"", n.admin))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: quorra\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let _prometheus = Reaped(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus"),
    );
    // Every node is up for Prometheus and its series are stored.
    let queries = [
        ("sum(up{job=\"quorra\"})", 3.0),
        ("count(quorra_build_info)", 3.0),
        (
            "count(count by (instance) (quorra_members{state=\"normal\"}))",
            3.0,
        ),
        ("sum(quorra_members{state=\"normal\"})", 9.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    for (query, want) in queries {
        let path = format!("/api/v1/query?query={}", encode(query));
        loop {
            let got = match http::get(web, &path, None).await {
                Ok(r) if r.status == 200 => r.json()["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok()),
                _ => None,
            };
            if got == Some(want) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus: {query} = {got:?}, not {want}; its log:\n{}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Prometheus read every target without a scrape error (retried: one
    // slow scrape on a loaded machine is not a failure of the exposition).
    loop {
        let targets = http::get(web, "/api/v1/targets", None)
            .await
            .unwrap()
            .json();
        let active = targets["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let healthy = active.len() == 3
            && active
                .iter()
                .all(|t| t["health"] == "up" && t["lastError"] == "");
        if healthy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "targets not all healthy: {active:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Where screenshots are kept for people to look at.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Loads `url` in headless Chromium; returns the DOM after its scripts
/// ran for a few seconds, and every console line it printed. Saves a
/// screenshot to `shot`.
fn browse(url: &str, shot: Option<&Path>) -> (String, Vec<String>) {
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1400,900",
        "--virtual-time-budget=3000",
    ];
    let dom = Command::new("chromium")
        .args(flags)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    let mut stderr = vec![dom.stderr];
    if let Some(shot) = shot {
        let run = Command::new("chromium")
            .args(flags)
            .arg(format!("--screenshot={}", shot.display()))
            .arg(url)
            .output()
            .expect("run chromium");
        stderr.push(run.stderr);
    }
    let console = stderr
        .iter()
        .flat_map(|e| {
            String::from_utf8_lossy(e)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains(":CONSOLE"))
        .collect();
    (String::from_utf8_lossy(&dom.stdout).into_owned(), console)
}

/// Loads `url` until `ok` holds for the DOM, or fails after 30 s; every
/// load must leave the console empty.
fn browse_until(url: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (dom, console) = browse(url, None);
        assert!(
            console.is_empty(),
            "the page logged to the console: {console:#?}"
        );
        if ok(&dom) {
            return dom;
        }
        assert!(Instant::now() < deadline, "{what}: not within 30 s:\n{dom}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn states(dom: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find("data-node=\"") {
        rest = &rest[at + 11..];
        let id: u64 = rest[..rest.find('"').unwrap()].parse().unwrap();
        let s = &rest[rest.find("data-state=\"").unwrap() + 12..];
        out.push((id, s[..s.find('"').unwrap()].to_string()));
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn the_page_in_a_browser_shows_the_nodes_and_a_killed_one_down() {
    if !tool("chromium") {
        return;
    }
    let mut cluster = TestCluster::start(3, &[]).await;
    let url = format!("http://{}/", cluster.nodes[0].admin);
    let ring = http::get(cluster.nodes[0].admin, "/v1/ring", None)
        .await
        .unwrap()
        .json();
    let last = format!(
        "data-partition=\"{}\"",
        ring["partitions"].as_u64().unwrap() - 1
    );
    let normal = vec![
        (1, "normal".to_string()),
        (2, "normal".into()),
        (3, "normal".into()),
    ];
    let dom = browse_until(&url, "three normal nodes shown", |dom| {
        states(dom) == normal
    });
    assert!(dom.contains(&last), "every partition drawn");
    let healthy = artifacts().join("status-page.png");
    let (_, console) = browse(&url, Some(&healthy));
    assert!(
        console.is_empty(),
        "the page logged to the console: {console:#?}"
    );
    assert!(
        std::fs::metadata(&healthy).is_ok_and(|m| m.len() > 10_000),
        "no screenshot"
    );

    cluster.kill9(2);
    browse_until(&url, "node 3 shown down", |dom| {
        states(dom).contains(&(3, "down".into()))
    });
    let down = artifacts().join("status-page-node-down.png");
    let (_, console) = browse(&url, Some(&down));
    assert!(
        console.is_empty(),
        "the page logged to the console: {console:#?}"
    );
    eprintln!("screenshots: {} and {}", healthy.display(), down.display());
}

/// Every `quorra_*` and `process_*` metric named in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for prefix in ["quorra_", "process_"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

#[tokio::test(flavor = "current_thread")]
async fn the_shipped_alert_rules_and_dashboard_use_only_metrics_a_node_serves() {
    let ops = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops");
    let rules = std::fs::read_to_string(ops.join("prometheus/quorra-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(ops.join("grafana/quorra-dashboard.json")).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() >= 10));
    if tool("promtool") {
        let checked = Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(ops.join("prometheus/quorra-alerts.yml"))
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&checked.stdout)
        );
    }

    // A node that served an SDK request and a RESP command, so that its
    // labelled families have series.
    let cluster = TestCluster::start(1, &[]).await;
    let client = cluster.client().await;
    client
        .put(
            "k",
            "v",
            &quorra_client::Context::empty(),
            quorra_client::Consistency::ONE,
        )
        .await
        .unwrap();
    let resp = cluster.nodes[0].resp;
    quorra_e2e::resp_session(resp, |c| {
        let _: () = redis::cmd("SET").arg("r").arg("x").query(c).unwrap();
    })
    .await;
    let served = http::get(cluster.nodes[0].admin, "/metrics", None)
        .await
        .unwrap();
    let scrape = quorra_e2e::prom::Scrape::parse(&served.body).unwrap();
    let used: Vec<String> = metric_names(&rules)
        .into_iter()
        .chain(metric_names(&dashboard))
        .collect();
    assert!(used.len() >= 15, "{used:?}");
    let unknown: Vec<&String> = used
        .iter()
        .filter(|n| scrape.family_of(n).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "named in ops/ but not served: {unknown:?}"
    );
}
