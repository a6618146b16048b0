//! A node's life on its store: the three numbers each start draws or bumps,
//! and why they are three.
//!
//! - The **incarnation** is the high half of every dot the node issues.
//!   Dots are unique only because no incarnation runs twice, so it moves
//!   up at every start (and when a life runs out of epochs) and is synced
//!   before anything else happens. A store that holds none (a first start,
//!   a lost disk, a wiped directory) draws it ([`first_incarnation`]): such
//!   a node cannot know the incarnations of its earlier lives until gossip
//!   tells it, and may coordinate writes before then.
//! - The **life** counts the starts on this store (and is raised to what
//!   gossip says an earlier life ran as). Request ids start from it, so
//!   they grow from one life to the next as peers' dedup floors require.
//! - The **generation** is what gossip carries and what peers address
//!   forwards to. It is the life, except on a store that has not yet heard
//!   of any other node: there it is 0, at every start, until it hears of
//!   one. An earlier life under the same id ran at generation 1 or more,
//!   so members keep preferring its entry over the new one however many
//!   times the node restarts before gossip reaches it, and the node learns
//!   from them that it lost its data and takes its place back
//!   (membership's `REBIRTH_GAP`). A generation that grew with each
//!   unheard start would overtake a short earlier life (a founder that
//!   ran once, at 1) and members would take the new, empty life's entry,
//!   tokens and all. Two edges remain: a seed that got its messages but
//!   could not answer sees its heartbeats start over, and takes it for
//!   down a while; and a reborn store that first hears of a node that
//!   never knew it moves to generation 1 and ties with an earlier life at
//!   1, where versions decide.

use quorra_ring::NodeId;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::node::NodeError;
use crate::storage::store::Change;
use crate::storage::{StorageError, Store};

/// Metadata key of the persisted incarnation.
pub(super) const INCARNATION_KEY: &str = "incarnation";
/// Metadata key of the persisted life.
pub(super) const LIFE_KEY: &str = "life";
/// Metadata key present once the store has heard of another node.
pub(super) const HEARD_KEY: &str = "heard";

/// The numbers a start on a store begins with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Life {
    /// The high half of the dots this life issues.
    pub incarnation: u32,
    /// Starts on this store; request ids begin at `life << 32`.
    pub life: u32,
    /// The gossip generation: `life`, or 0 on a store that never heard of
    /// another node.
    pub generation: u32,
}

impl Life {
    /// Begins a new life on `store`: bumps the incarnation (draws one on an
    /// empty store) and the life, and makes both durable before returning
    /// ([`Store::sync_all`]: a node back from a power cut as an incarnation
    /// it had already run would reissue its dots, to other values, and
    /// replicas would disagree for good).
    pub(super) fn begin(store: &Store, rng_seed: u64, id: NodeId) -> Result<Self, NodeError> {
        let incarnation = read_u32(store, INCARNATION_KEY)?;
        let life = read_u32(store, LIFE_KEY)?;
        // A store from before lives were kept apart from incarnations ran
        // its node with both equal, and had heard of others as far as
        // anything can tell.
        let legacy = incarnation.is_some() && life.is_none();
        let heard = legacy || store.get_meta(HEARD_KEY)?.is_some();
        let (incarnation, life) = match (incarnation, life) {
            (Some(i), Some(l)) => (i.wrapping_add(1), l.wrapping_add(1)),
            (Some(i), None) => (i.wrapping_add(1), i.wrapping_add(1)),
            (None, l) => (first_incarnation(rng_seed, id), l.map_or(1, |l| l + 1)),
        };
        // One atomic batch: an incarnation without its life would read as
        // a legacy store at the next start, and gossip that drawn number.
        let (incarnation_bytes, life_bytes) = (incarnation.to_be_bytes(), life.to_be_bytes());
        let mut changes = vec![
            Change::PutMeta {
                name: INCARNATION_KEY,
                value: &incarnation_bytes,
            },
            Change::PutMeta {
                name: LIFE_KEY,
                value: &life_bytes,
            },
        ];
        if legacy {
            changes.push(Change::PutMeta {
                name: HEARD_KEY,
                value: &[],
            });
        }
        store.apply(&changes)?;
        store.sync_all()?;
        Ok(Self {
            incarnation,
            life,
            generation: if heard { life } else { 0 },
        })
    }
}

/// Records `incarnation` as the node's, durably whatever the engine
/// ([`Store::sync_all`]: sled's flush alone would not do), before any dot
/// of it is issued.
pub(super) fn persist_incarnation(store: &Store, incarnation: u32) -> Result<(), StorageError> {
    store.put_meta(INCARNATION_KEY, &incarnation.to_be_bytes())?;
    store.sync_all().map(|_| ())
}

/// Records `life` (made durable by the next flush: a life that is lost to
/// a power cut was one no peer can have heard of from later lives).
pub(super) fn persist_life(store: &Store, life: u32) -> Result<(), StorageError> {
    store.put_meta(LIFE_KEY, &life.to_be_bytes()).map(|_| ())
}

/// Records that the store has heard of another node (made durable by the
/// next flush: lost to a power cut, the next start gossips generation 0
/// once more, finds members' newer entry of it and takes its place back
/// [`REBIRTH_GAP`] higher: safe, at the cost of some of that headroom).
///
/// [`REBIRTH_GAP`]: crate::membership::REBIRTH_GAP
pub(super) fn persist_heard(store: &Store) -> Result<(), StorageError> {
    store.put_meta(HEARD_KEY, &[]).map(|_| ())
}

/// The incarnation a node issues its first dots from when its store has
/// none: drawn (from `rng_seed`, which the daemon takes from the operating
/// system's entropy and the simulator from its seed and the node's life)
/// in `1..2^31`, not 1. An incarnation run twice reissues dots, so replicas
/// take a new write for one they already hold and drop it. Drawn, a new
/// life collides with an earlier one with a chance of about its lives in
/// 2^31, as Riak draws a fresh vnode id for the same reason. The upper half
/// of the range stays free for [`Node::adopt_generation`] and exhausted
/// epochs to move up.
///
/// [`Node::adopt_generation`]: super::Node::adopt_generation
pub fn first_incarnation(rng_seed: u64, id: NodeId) -> u32 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(rng_seed ^ id.0.rotate_left(29) ^ 0x1ca7);
    rng.random_range(1..1u32 << 31)
}

fn read_u32(store: &Store, key: &str) -> Result<Option<u32>, NodeError> {
    match store.get_meta(key)? {
        Some(bytes) => match <[u8; 4]>::try_from(bytes.as_slice()) {
            Ok(bytes) => Ok(Some(u32::from_be_bytes(bytes))),
            Err(_) => Err(NodeError::Storage(StorageError::Corrupt {
                what: key.into(),
                reason: "not 4 bytes".into(),
            })),
        },
        None => Ok(None),
    }
}
