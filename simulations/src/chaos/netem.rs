//! Packet delay, reordering and duplication between real nodes, without
//! `tc netem`.
//!
//! This kernel has no `netem` qdisc, but `iptables` can hand packets to a
//! process (`NFQUEUE`), which must say, packet by packet, what becomes of
//! each one, and may say it later and in any order. The `quorra-netem`
//! helper runs inside the receiving node's namespace, bound to
//! [`QUEUE`]; the harness's rule there queues the UDP packets the other
//! nodes send it (clients are left alone, as with every packet fault). The
//! helper holds each packet for a time drawn uniformly from `delay ±
//! jitter` and then lets it through, so packets whose holds differ by more
//! than their gap arrive in the other order; and it sends a share of them a
//! second time, a while later, as a copy through a raw socket (the same IP
//! packet, the sender's address kept; it reaches the node through the
//! namespace's loopback, which must be up), marked with [`MARK`] so that
//! the queue rule passes the copy instead of queuing it again. QUIC must take
//! all three: late packets, packets out of order, and packets twice.
//!
//! When the fault heals, the harness closes the helper's standard input;
//! the helper lets through everything it still holds and exits, and only
//! then does the harness remove the rule (replacing a namespace's rules
//! drops whatever the kernel still has queued, and a verdict for such a
//! packet is answered "no such packet", which the helper counts and goes
//! on). The rule carries `--queue-bypass`, so once no helper is bound,
//! packets pass rather than vanish: the fault is delay, never loss.
//!
//! Which packet is held how long is not reproducible (it depends on when
//! packets arrive); the helper's draws come from the plan's seed all the
//! same, so a rerun draws the same sequence.

use std::collections::BinaryHeap;
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// The `NFQUEUE` number the rule and the helper use (queues are per
/// network namespace, so every node's may be 0).
pub const QUEUE: u16 = 0;

/// The firewall mark of the helper's copies: the queue rule skips packets
/// carrying it.
pub const MARK: u32 = 0x71;

/// Packets the kernel queues for the helper at most; beyond this it lets
/// packets through at once (fail open) rather than dropping them.
const KERNEL_QUEUE_LEN: u32 = 16_384;

/// How long the helper sleeps when it has nothing to receive and nothing
/// due: the granularity of its holds.
const POLL: Duration = Duration::from_millis(1);

/// What the helper does to each packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Mean hold, milliseconds.
    pub delay_ms: u32,
    /// Holds spread uniformly over `delay ± jitter` (never below 0).
    pub jitter_ms: u32,
    /// Percent of packets also sent a second time.
    pub duplicate_percent: u32,
}

impl Shape {
    /// The helper's command-line arguments for this shape.
    pub fn args(&self, seed: u64) -> Vec<String> {
        vec![
            "--delay-ms".into(),
            self.delay_ms.to_string(),
            "--jitter-ms".into(),
            self.jitter_ms.to_string(),
            "--duplicate-percent".into(),
            self.duplicate_percent.to_string(),
            "--seed".into(),
            seed.to_string(),
        ]
    }
}

/// Draws, per packet, how long it is held and whether (and when) a copy
/// follows.
pub struct Shaper {
    shape: Shape,
    rng: Xoshiro256PlusPlus,
}

/// One packet's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fate {
    /// How long the packet is held.
    pub hold: Duration,
    /// When its copy is sent, from its arrival (none: no copy).
    pub copy_after: Option<Duration>,
}

impl Shaper {
    /// A shaper drawing from `seed`.
    pub fn new(shape: Shape, seed: u64) -> Self {
        Self {
            shape,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// The next packet's fate.
    pub fn fate(&mut self) -> Fate {
        let low = self.shape.delay_ms.saturating_sub(self.shape.jitter_ms);
        let high = self.shape.delay_ms + self.shape.jitter_ms;
        let draw = |rng: &mut Xoshiro256PlusPlus| {
            Duration::from_millis(u64::from(rng.random_range(low..=high)))
        };
        let hold = draw(&mut self.rng);
        let copy = self.rng.random_range(0..100) < self.shape.duplicate_percent;
        // The copy follows its own draw, so it may arrive before the
        // original as well as after.
        let copy_after = copy.then(|| draw(&mut self.rng));
        Fate { hold, copy_after }
    }
}

/// Items held until a time, given back in time order (ties in the order
/// they came).
pub struct Held<T> {
    heap: BinaryHeap<Entry<T>>,
    next_seq: u64,
}

struct Entry<T> {
    due: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    // Reversed: the heap's greatest is the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

impl<T> Default for Held<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<T> Held<T> {
    /// Holds `item` until `due`.
    pub fn push(&mut self, due: Instant, item: T) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { due, seq, item });
    }

    /// The next item due by `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek()?.due <= now {
            self.heap.pop().map(|e| e.item)
        } else {
            None
        }
    }

    /// Every item, due or not, in time order.
    pub fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.heap.len());
        while let Some(e) = self.heap.pop() {
            out.push(e.item);
        }
        out
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Why the helper stopped.
#[derive(Debug, thiserror::Error)]
pub enum NetemError {
    /// The netfilter queue could not be opened or bound (not root, or no
    /// `nfnetlink_queue` in the kernel).
    #[error("netfilter queue {QUEUE}: {0}")]
    Queue(std::io::Error),
    /// The raw socket for copies could not be made.
    #[error("raw socket: {0}")]
    Raw(std::io::Error),
}

/// Counts for the helper's last words.
#[derive(Debug, Default)]
pub struct Tally {
    /// Packets held and let through.
    pub packets: u64,
    /// Copies sent.
    pub copies: u64,
    /// Copies the raw socket refused.
    pub copy_errors: u64,
    /// Verdicts the kernel answered with "no such packet" (it had dropped
    /// the packet meanwhile).
    pub gone: u64,
}

/// A held packet's verdict, or a copy to send.
enum Due {
    Accept(nfq::Message),
    Copy(Vec<u8>),
}

/// Serves the queue with `shape` until standard input closes, then lets
/// everything held through.
pub fn serve(shape: Shape, seed: u64) -> Result<Tally, NetemError> {
    let mut queue = nfq::Queue::open().map_err(NetemError::Queue)?;
    queue.bind(QUEUE).map_err(NetemError::Queue)?;
    queue
        .set_fail_open(QUEUE, true)
        .map_err(NetemError::Queue)?;
    queue
        .set_queue_max_len(QUEUE, KERNEL_QUEUE_LEN)
        .map_err(NetemError::Queue)?;
    queue.set_nonblocking(true);
    let raw = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(255)), // IPPROTO_RAW: the header is ours
    )
    .map_err(NetemError::Raw)?;
    raw.set_mark(MARK).map_err(NetemError::Raw)?;

    let closed = Arc::new(AtomicBool::new(false));
    {
        let closed = closed.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            closed.store(true, Ordering::Release);
        });
    }

    let mut shaper = Shaper::new(shape, seed);
    let mut held: Held<Due> = Held::default();
    let mut tally = Tally::default();
    let settle = |due: Due, queue: &mut nfq::Queue, tally: &mut Tally| match due {
        Due::Accept(mut msg) => {
            msg.set_verdict(nfq::Verdict::Accept);
            // A verdict can only fail if the packet is gone already.
            let _ = queue.verdict(msg);
            tally.packets += 1;
        }
        Due::Copy(packet) => {
            let sent = destination(&packet)
                .map(|to| raw.send_to(&packet, &SocketAddrV4::new(to, 0).into()));
            match sent {
                Some(Ok(_)) => tally.copies += 1,
                _ => tally.copy_errors += 1,
            }
        }
    };
    loop {
        let now = Instant::now();
        while let Some(due) = held.pop_due(now) {
            settle(due, &mut queue, &mut tally);
        }
        if closed.load(Ordering::Acquire) {
            for due in held.drain() {
                settle(due, &mut queue, &mut tally);
            }
            return Ok(tally);
        }
        match queue.recv() {
            Ok(msg) => {
                let fate = shaper.fate();
                if let Some(after) = fate.copy_after {
                    held.push(now + after, Due::Copy(msg.get_payload().to_vec()));
                }
                held.push(now + fate.hold, Due::Accept(msg));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(POLL);
            }
            // A verdict's error, for a packet the kernel no longer holds.
            Err(e) if e.kind() == ErrorKind::NotFound => tally.gone += 1,
            Err(e) => return Err(NetemError::Queue(e)),
        }
    }
}

/// The destination of an IPv4 packet (none if it is not one).
fn destination(packet: &[u8]) -> Option<Ipv4Addr> {
    let header = packet.get(..20)?;
    (header[0] >> 4 == 4).then(|| Ipv4Addr::new(header[16], header[17], header[18], header[19]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_stay_within_the_jitter_and_about_the_asked_share_is_copied() {
        let shape = Shape {
            delay_ms: 40,
            jitter_ms: 30,
            duplicate_percent: 5,
        };
        let mut shaper = Shaper::new(shape, 7);
        let fates: Vec<Fate> = (0..10_000).map(|_| shaper.fate()).collect();
        let range = Duration::from_millis(10)..=Duration::from_millis(70);
        assert!(fates.iter().all(|f| range.contains(&f.hold)));
        assert!(
            fates
                .iter()
                .filter_map(|f| f.copy_after)
                .all(|c| range.contains(&c))
        );
        let copies = fates.iter().filter(|f| f.copy_after.is_some()).count();
        assert!((400..=600).contains(&copies), "{copies} copies of 10,000");
        // Both ends of the spread are reached, so packets overtake.
        assert!(fates.iter().any(|f| f.hold < Duration::from_millis(15)));
        assert!(fates.iter().any(|f| f.hold > Duration::from_millis(65)));
        // The same seed draws the same fates.
        let mut again = Shaper::new(shape, 7);
        assert!(fates.iter().all(|f| *f == again.fate()));
    }

    #[test]
    fn a_jitter_larger_than_the_delay_never_holds_below_zero() {
        let mut shaper = Shaper::new(
            Shape {
                delay_ms: 5,
                jitter_ms: 20,
                duplicate_percent: 0,
            },
            1,
        );
        for _ in 0..1000 {
            let f = shaper.fate();
            assert!(f.hold <= Duration::from_millis(25));
            assert_eq!(f.copy_after, None);
        }
    }

    #[test]
    fn held_items_come_back_in_time_order_not_arrival_order() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut held = Held::default();
        held.push(t0 + ms(30), "late");
        held.push(t0 + ms(10), "early");
        held.push(t0 + ms(10), "early, second");
        held.push(t0 + ms(20), "middle");
        assert_eq!(held.pop_due(t0 + ms(5)), None);
        assert_eq!(held.pop_due(t0 + ms(20)), Some("early"));
        assert_eq!(held.pop_due(t0 + ms(20)), Some("early, second"));
        assert_eq!(held.pop_due(t0 + ms(20)), Some("middle"));
        assert_eq!(held.pop_due(t0 + ms(20)), None);
        assert_eq!(held.len(), 1);
        assert_eq!(held.drain(), vec!["late"]);
        assert!(held.is_empty());
    }

    #[test]
    fn a_copy_goes_to_the_packets_own_destination() {
        let mut packet = vec![0u8; 28];
        packet[0] = 0x45;
        packet[16..20].copy_from_slice(&[10, 223, 7, 2]);
        assert_eq!(destination(&packet), Some(Ipv4Addr::new(10, 223, 7, 2)));
        packet[0] = 0x60;
        assert_eq!(destination(&packet), None);
        assert_eq!(destination(&packet[..10]), None);
    }
}
