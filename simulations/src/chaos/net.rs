//! The harness's own network: one namespace per node on a bridge, and the
//! packet faults, made with `ip` and `iptables`.
//!
//! ```text
//!   host (the harness, its clients)      hub namespace           node namespaces
//!   qc<pid>h 10.223.S.254 ──veth── qc<pid>hv ┐
//!                                            ├─ bridge qcbr ─ qc<pid>n1 ──veth── v0 10.223.S.1
//!                                            │              └ qc<pid>n2 ──veth── v0 10.223.S.2 ...
//! ```
//!
//! The bridge lives in a namespace of its own, so nothing in the host's
//! firewall (a `FORWARD` policy of `DROP`, `br_netfilter`) sees the nodes'
//! traffic; the host only gains one veth with an address in a /24 that no
//! route of the host uses yet. Faults are `iptables` rules in the *receiving*
//! node's namespace, on its `INPUT` chain, matching the sending node's
//! address: a partition drops both ways, a one-way fault one way, loss is
//! `-m statistic --mode random`, delay, reordering and duplication an
//! `NFQUEUE` rule with the `quorra-netem` helper behind it ([`super::netem`]).
//! The host's address never matches, so
//! clients reach every node. Each change replaces a namespace's whole
//! filter table with one `iptables-restore`, atomically.
//!
//! Everything it made is named `qc<pid>...` and removed on drop (also after
//! a panic; the binary also tears down on Ctrl-C), and [`remove_stale`]
//! removes what a harness killed before its teardown left behind.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::netem;
use super::schedule::Fault;

/// Why the network could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A command failed.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr, or why it did not start.
        reason: String,
    },
    /// No free /24 was found.
    #[error("no free 10.223.x.0/24 subnet on this host")]
    NoSubnet,
}

/// The namespaces, links and addresses of one run.
pub struct Net {
    prefix: String,
    subnet: u8,
    nodes: usize,
    made: Vec<String>,
    host_link: Option<String>,
}

/// Runs a command, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, NetError> {
    run_with_input(program, args, None)
}

fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String, NetError> {
    let command = format!("{program} {}", args.join(" "));
    let fail = |reason: String| NetError::Command {
        command: command.clone(),
        reason,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The prefix of everything a harness with this process id makes.
fn prefix_of(pid: u32) -> String {
    format!("qc{pid}")
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the namespaces and host links of harnesses that are no longer
/// running; returns what it removed.
pub fn remove_stale() -> Vec<String> {
    let mut removed = Vec::new();
    let stale = |name: &str| -> bool {
        let Some(rest) = name.strip_prefix("qc") else {
            return false;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits
            .parse::<u32>()
            .is_ok_and(|pid| pid != std::process::id() && !alive(pid))
    };
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if stale(name) && run("ip", &["netns", "del", name]).is_ok() {
                removed.push(format!("namespace {name}"));
            }
        }
    }
    if let Ok(links) = run("ip", &["-o", "link", "show"]) {
        for link in links.lines().filter_map(|l| l.split(": ").nth(1)) {
            let name = link.split('@').next().unwrap_or(link);
            if stale(name) && run("ip", &["link", "del", name]).is_ok() {
                removed.push(format!("link {name}"));
            }
        }
    }
    removed
}

impl Net {
    /// Makes the bridge and `nodes` namespaces, each with its address.
    pub fn create(nodes: usize) -> Result<Self, NetError> {
        let prefix = prefix_of(std::process::id());
        let subnet = free_subnet()?;
        let mut net = Net {
            prefix,
            subnet,
            nodes,
            made: Vec::new(),
            host_link: None,
        };
        net.build()?;
        Ok(net)
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Node `i`'s namespace.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}-n{}", self.prefix, i + 1)
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 223, self.subnet, i as u8 + 1)
    }

    /// The host's address on the bridge (the clients').
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 223, self.subnet, 254)
    }

    fn build(&mut self) -> Result<(), NetError> {
        let hub = self.hub();
        run("ip", &["netns", "add", &hub])?;
        self.made.push(hub.clone());
        run("ip", &["-n", &hub, "link", "add", "qcbr", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "qcbr", "up"])?;
        for i in 0..self.nodes {
            let ns = self.namespace(i);
            run("ip", &["netns", "add", &ns])?;
            self.made.push(ns.clone());
            let outer = format!("{}n{}", self.prefix, i + 1);
            run(
                "ip",
                &[
                    "link", "add", &outer, "netns", &hub, "type", "veth", "peer", "name", "v0",
                    "netns", &ns,
                ],
            )?;
            run(
                "ip",
                &["-n", &hub, "link", "set", &outer, "master", "qcbr", "up"],
            )?;
            let addr = format!("{}/24", self.addr(i));
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "v0"])?;
            run("ip", &["-n", &ns, "link", "set", "v0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let host = format!("{}h", self.prefix);
        let inner = format!("{}hv", self.prefix);
        run(
            "ip",
            &[
                "link", "add", &host, "type", "veth", "peer", "name", &inner, "netns", &hub,
            ],
        )?;
        self.host_link = Some(host.clone());
        run(
            "ip",
            &["-n", &hub, "link", "set", &inner, "master", "qcbr", "up"],
        )?;
        let addr = format!("{}/24", self.host_addr());
        run("ip", &["addr", "add", &addr, "dev", &host])?;
        run("ip", &["link", "set", &host, "up"])?;
        self.apply(&[])
    }

    /// Makes the packet faults among `active` (and no others) hold.
    pub fn apply(&self, active: &[&Fault]) -> Result<(), NetError> {
        let mut rules: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for fault in active {
            match fault {
                Fault::Partition { groups } => {
                    for (a, side) in groups.iter().enumerate() {
                        for (b, other) in groups.iter().enumerate() {
                            if a == b {
                                continue;
                            }
                            for &to in side {
                                for &from in other {
                                    rules
                                        .entry(to)
                                        .or_default()
                                        .push(self.drop_rule(from, None));
                                }
                            }
                        }
                    }
                }
                Fault::OneWay { from, to } => {
                    rules
                        .entry(*to)
                        .or_default()
                        .push(self.drop_rule(*from, None));
                }
                Fault::Loss { node, percent } => {
                    for from in (0..self.nodes).filter(|f| f != node) {
                        rules
                            .entry(*node)
                            .or_default()
                            .push(self.drop_rule(from, Some(*percent)));
                    }
                }
                Fault::Jitter { node, .. } => {
                    for from in (0..self.nodes).filter(|f| f != node) {
                        rules.entry(*node).or_default().push(self.queue_rule(from));
                    }
                }
                Fault::Kill { .. }
                | Fault::Pause { .. }
                | Fault::Wipe { .. }
                | Fault::SlowDisk { .. } => {}
            }
        }
        for i in 0..self.nodes {
            let mut table = String::from(
                "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
            );
            for rule in rules.get(&i).into_iter().flatten() {
                table.push_str(rule);
                table.push('\n');
            }
            table.push_str("COMMIT\n");
            let ns = self.namespace(i);
            run_with_input(
                "ip",
                &["netns", "exec", &ns, "iptables-restore"],
                Some(&table),
            )?;
        }
        Ok(())
    }

    /// Hands `from`'s UDP packets to the `quorra-netem` helper, except its
    /// own copies; lets them through if no helper is bound.
    fn queue_rule(&self, from: usize) -> String {
        format!(
            "-A INPUT -s {}/32 -p udp -m mark ! --mark {:#x} -j NFQUEUE --queue-num {} --queue-bypass",
            self.addr(from),
            netem::MARK,
            netem::QUEUE
        )
    }

    fn drop_rule(&self, from: usize, percent: Option<u32>) -> String {
        let source = self.addr(from);
        match percent {
            None => format!("-A INPUT -s {source}/32 -j DROP"),
            Some(p) => format!(
                "-A INPUT -s {source}/32 -m statistic --mode random --probability {:.2} -j DROP",
                f64::from(p) / 100.0
            ),
        }
    }
}

/// A /24 in 10.223.0.0/16 that no address or route of the host uses.
fn free_subnet() -> Result<u8, NetError> {
    let used = format!(
        "{}\n{}",
        run("ip", &["-4", "route", "show", "table", "all"])?,
        run("ip", &["-4", "addr", "show"])?
    );
    (1..=250u8)
        .find(|s| !used.contains(&format!("10.223.{s}.")))
        .ok_or(NetError::NoSubnet)
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(host) = self.host_link.take() {
            let _ = run("ip", &["link", "del", &host]);
        }
        for ns in self.made.drain(..).rev() {
            let _ = run("ip", &["netns", "del", &ns]);
        }
    }
}
