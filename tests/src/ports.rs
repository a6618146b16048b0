//! Ports for test nodes, chosen so nothing else on the machine takes them
//! between the choice and the node's bind.
//!
//! Asking the kernel for port 0 and closing the socket gives a port from
//! the ephemeral range, and the kernel hands that same port to the next
//! outgoing connection or port-0 bind of any process: with tests running
//! in parallel, a node started a moment later then fails with "Address
//! already in use" (seen in CI). Ports below the kernel's ephemeral range
//! are never handed out that way, so here they come from there, each one
//! at most once per test process (an atomic counter), starting at an
//! offset taken from the process id so that two test processes running at
//! once rarely probe the same ports, and each probed free for both TCP and
//! UDP before it is used.

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
const FIRST: u32 = 20_000;
/// One past the highest port handed out: Linux's default ephemeral range
/// starts at 32,768 (`/proc/sys/net/ipv4/ip_local_port_range`).
const END: u32 = 32_768;

/// How many ports have been handed out (or probed and found taken).
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// A port on 127.0.0.1 free for TCP and UDP when asked, outside the
/// ephemeral range, not handed out before by this process.
pub fn free_port() -> u16 {
    let span = END - FIRST;
    let offset = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = TAKEN.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (offset + n) % span;
        let port = u16::try_from(port).expect("below 65,536");
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{END} on 127.0.0.1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ports.len(), "a port was handed out twice");
        for p in ports {
            assert!((FIRST..END).contains(&u32::from(p)), "{p}");
            TcpListener::bind(("127.0.0.1", p)).expect("TCP bind");
            UdpSocket::bind(("127.0.0.1", p)).expect("UDP bind");
        }
    }
}
