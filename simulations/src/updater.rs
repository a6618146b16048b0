//! The simulator's updater: the RESP gateway's, with a log of every
//! application.
//!
//! A coordinator applies an update to its own copy of the key
//! ([`quorra_node::core::update`]), and what it applies it to is the one
//! thing a client of the gateway cannot see: the siblings its write
//! replaces. The checks need exactly that (a value an acknowledged `DEL`
//! replaced must not come back; an increment that was applied counts once),
//! so the workload puts its operation's tag in front of the RESP update
//! ([`tagged`]) and [`RecordingUpdater`] strips it, hands the rest to
//! [`RespUpdater`] and logs the application: which operation, which
//! writer, the values it saw, and what it wrote. Updates without the tag
//! (the hand-written tests') pass through unlogged.
//!
//! The core may call the updater more than once for one coordination: when
//! the updater asks for a fresh writer, or the actor ran out of dots, it
//! applies again with another actor and writes only the last result. Those
//! calls come one after another, with nothing between them (the core is a
//! single-threaded state machine), so [`Log::coordinations`] keeps the last
//! of each run of applications of one operation by one node.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use quorra_node::core::ClientTag;
use quorra_node::core::update::{Applied, Change, Updater};
use quorra_node::resp::RespUpdater;
use quorra_node::version::Actor;

/// What a tagged update starts with.
const MAGIC: &[u8] = b"SIMT";

/// `update` (a RESP [`quorra_node::resp::update::Update`] encoding) with
/// the operation's tag in front, for [`RecordingUpdater`].
pub fn tagged(tag: ClientTag, update: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + update.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(update);
    Bytes::from(out)
}

/// The tag and the RESP update of a tagged update.
fn untag(update: &[u8]) -> (Option<ClientTag>, &[u8]) {
    match update.strip_prefix(MAGIC) {
        Some(rest) if rest.len() >= 8 => {
            let (tag, rest) = rest.split_at(8);
            let tag = ClientTag::from_be_bytes(tag.try_into().expect("8 bytes"));
            (Some(tag), rest)
        }
        _ => (None, update),
    }
}

/// One call of the updater by a coordinator.
#[derive(Clone, Debug)]
pub struct Application {
    /// The operation.
    pub tag: ClientTag,
    /// The actor the write would be issued under.
    pub writer: Actor,
    /// The live values of the coordinator's copy: what a write replaces.
    pub saw: Vec<Bytes>,
    /// What the update does (`None`: the updater refused it).
    pub change: Option<Change>,
    /// The updater asked for a fresh writer: unless the writer already is
    /// one, the core applies again.
    pub fresh_writer: bool,
}

impl Application {
    /// Whether it writes (a value or a tombstone), if it is the last of
    /// its coordination ([`Log::coordinations`]).
    pub fn writes(&self) -> bool {
        matches!(self.change, Some(Change::Put(_) | Change::Delete))
    }

    /// The value it writes, if a value (and the last of its coordination).
    pub fn written(&self) -> Option<&Bytes> {
        match &self.change {
            Some(Change::Put(v)) => Some(v),
            _ => None,
        }
    }
}

/// Every application, in the order the coordinators made them.
#[derive(Clone, Debug, Default)]
pub struct Log {
    /// In order.
    pub applications: Vec<Application>,
}

impl Log {
    /// The coordinations: of each run of consecutive applications of one
    /// operation by one node, the last (the one whose result the core
    /// wrote), as indices into [`Log::applications`].
    pub fn coordinations(&self) -> Vec<usize> {
        let a = &self.applications;
        (0..a.len())
            .filter(|&i| {
                a.get(i + 1)
                    .is_none_or(|next| (next.tag, next.writer.node) != (a[i].tag, a[i].writer.node))
            })
            .collect()
    }
}

/// [`RespUpdater`], logging every tagged application (see the module
/// documentation).
#[derive(Clone, Debug, Default)]
pub struct RecordingUpdater {
    log: Arc<Mutex<Log>>,
}

impl RecordingUpdater {
    /// A copy of the log so far.
    pub fn log(&self) -> Log {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Updater for RecordingUpdater {
    fn apply(&self, update: &[u8], values: &[Bytes], writer: Actor) -> Result<Applied, String> {
        let (tag, update) = untag(update);
        let result = RespUpdater.apply(update, values, writer);
        if let Some(tag) = tag {
            let application = Application {
                tag,
                writer,
                saw: values.to_vec(),
                change: result.as_ref().ok().map(|a| a.change.clone()),
                fresh_writer: result.as_ref().is_ok_and(|a| a.fresh_writer),
            };
            self.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .applications
                .push(application);
        }
        result
    }

    fn reads_first(&self, update: &[u8]) -> bool {
        RespUpdater.reads_first(untag(update).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorra_node::resp::update::{Op, Update};
    use quorra_ring::NodeId;

    #[test]
    fn tagged_updates_are_logged_and_plain_ones_pass_through() {
        let updater = RecordingUpdater::default();
        let writer = Actor::new(NodeId(2), 1 << 32);
        let incr = Update {
            op: Op::Add(1),
            now_ms: 5,
        }
        .encode();
        let plain = updater.apply(&incr, &[], writer).unwrap();
        let logged = updater.apply(&tagged(77, &incr), &[], writer).unwrap();
        assert_eq!(plain, logged, "the tag changes nothing the core sees");
        assert!(updater.reads_first(&tagged(77, &incr)));
        let log = updater.log();
        assert_eq!(log.applications.len(), 1);
        assert_eq!(log.applications[0].tag, 77);
        assert!(log.applications[0].writes());
    }

    #[test]
    fn a_run_of_applications_of_one_operation_is_one_coordination() {
        let app = |tag, node| Application {
            tag,
            writer: Actor::new(NodeId(node), 1 << 32),
            saw: Vec::new(),
            change: Some(Change::Keep),
            fresh_writer: false,
        };
        let log = Log {
            applications: vec![app(1, 1), app(1, 1), app(2, 1), app(1, 2), app(1, 1)],
        };
        assert_eq!(log.coordinations(), [1, 2, 3, 4]);
    }
}
