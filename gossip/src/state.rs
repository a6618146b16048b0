//! What gossip says about one member, and how two views of it merge.
//!
//! Each member owns its entry: it bumps its **heartbeat** every gossip
//! interval (liveness) and its **version** whenever its information
//! (address, zone, tokens, status) changes; both reset under a new
//! **generation**, which the member bumps at every restart. Another node
//! changes an entry only to announce a removal (see
//! [`crate::Gossiper::remove`]).
//!
//! Merging two views of an entry is a join: the higher generation wins
//! outright; within a generation, the information with the higher
//! (version, status, information) wins — the last two only break ties, so
//! the result never depends on the order views arrive in — and the heartbeat
//! is the larger. So merging is commutative, associative and idempotent.

use quorra_ring::{NodeId, Token};
use serde::{Deserialize, Serialize};

/// Where a member is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Known, but owns no data yet (choosing tokens).
    Joining,
    /// Owns its tokens.
    Normal,
    /// Announced it is leaving; still owns its tokens.
    Leaving,
    /// Left: owns nothing, forgotten after a while.
    Left,
    /// Removed by an operator (died for good): owns nothing, forgotten after a while.
    Removed,
}

impl Status {
    /// Whether a member in this status owns its tokens.
    pub fn owns_tokens(self) -> bool {
        matches!(self, Status::Normal | Status::Leaving)
    }

    /// Whether a member in this status is gone for good.
    pub fn gone(self) -> bool {
        matches!(self, Status::Left | Status::Removed)
    }

    /// The name shown to operators.
    pub fn name(self) -> &'static str {
        match self {
            Status::Joining => "joining",
            Status::Normal => "normal",
            Status::Leaving => "leaving",
            Status::Left => "left",
            Status::Removed => "removed",
        }
    }
}

/// A member's information: what changes rarely (the first four move data
/// when they do).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Info {
    /// Life-cycle status.
    pub status: Status,
    /// Address peers and clients connect to.
    pub address: String,
    /// Zone.
    pub zone: String,
    /// Tokens (empty while joining).
    pub tokens: Vec<Token>,
    /// Its storage failed (a full disk, an I/O error): it serves reads but
    /// acknowledges no write until it has recovered. For operators; routing
    /// does not depend on it (writes route around the node by its errors).
    #[serde(default)]
    pub storage_failing: bool,
    /// Where the member stands in ownership changes: when its tokens
    /// entered and left the layouts, and how far it has followed them
    /// (see [`Layout`]).
    #[serde(default)]
    pub layout: Layout,
}

/// The total order of ownership changes: a counter, then the id of the
/// member that made the change, so two changes never share a stamp. A
/// member making a change stamps it one above every stamp and tracker it
/// knows. [`Stamp::ZERO`] is the layout of members that owned tokens before
/// stamps existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// Orders the changes.
    pub counter: u64,
    /// The member that made the change.
    pub by: NodeId,
}

impl Stamp {
    /// Before every change.
    pub const ZERO: Stamp = Stamp {
        counter: 0,
        by: NodeId(0),
    };
}

impl Default for Stamp {
    fn default() -> Self {
        Stamp::ZERO
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.counter, self.by.0)
    }
}

/// How far a member has followed the layouts: the stamp of a layout and a
/// digest of what the member took that layout to be, so that a tracker set
/// by a member that had not heard of a change is recognised as such.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Tracker {
    /// The layout.
    pub stamp: Stamp,
    /// Its digest, as the member computed it.
    pub digest: u64,
}

/// A member's part in ownership changes. Which layouts exist follows from
/// every member's `joined` and `departed`; how far the cluster has moved
/// into them follows from every member's trackers. The node crate's
/// `membership::layouts` derives both.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Layout {
    /// The change that put its tokens into the layouts (`None`: not yet,
    /// or, for a member with tokens, before stamps existed).
    pub joined: Option<Stamp>,
    /// The change that took them out (a leave, or a removal).
    pub departed: Option<Stamp>,
    /// Every write it coordinates goes to this layout and the active ones
    /// before it.
    pub ack: Tracker,
    /// It holds the data of every partition it owns in this layout.
    pub sync: Tracker,
    /// It has seen every member synced to this layout, so it reads from
    /// this layout or a later one.
    pub sync_ack: Tracker,
    /// The dead member whose tokens it took when it joined (`quorra node
    /// --replace`): that member departed the layouts at this one's
    /// `joined`, whether or not its own entry says so yet, so no node ever
    /// sees both own the same tokens. Left out of the encoding when
    /// `None`, so members that predate it read every other entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<NodeId>,
}

/// Gossip's entry for one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The member.
    pub id: NodeId,
    /// Bumped by the member at every restart.
    pub generation: u64,
    /// Bumped by the member every gossip interval.
    pub heartbeat: u64,
    /// Bumped whenever `info` changes.
    pub version: u64,
    /// The information.
    pub info: Info,
}

/// The short form of an entry that a SYN carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// The member.
    pub id: NodeId,
    /// Its generation.
    pub generation: u64,
    /// Its heartbeat.
    pub heartbeat: u64,
    /// Its information version.
    pub version: u64,
}

/// A change sent in an ACK or ACK2: a whole entry, or only a newer heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // short-lived, built per message
pub enum Update {
    /// The whole entry (new member, new generation or newer information).
    Full(Entry),
    /// Only a newer heartbeat within a generation the receiver knows.
    Heartbeat {
        /// The member.
        id: NodeId,
        /// Its generation.
        generation: u64,
        /// Its heartbeat.
        heartbeat: u64,
    },
}

/// What a merge changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// The information changed (the ring may follow), or the member
    /// restarted (a new generation: what is addressed to it changes).
    pub info: bool,
    /// The heartbeat advanced (the member is alive).
    pub heartbeat: bool,
}

impl Entry {
    /// Its digest.
    pub fn digest(&self) -> Digest {
        Digest {
            id: self.id,
            generation: self.generation,
            heartbeat: self.heartbeat,
            version: self.version,
        }
    }

    /// The key that decides which information wins within a generation.
    fn info_key(&self) -> (u64, Status, &Info) {
        (self.version, self.info.status, &self.info)
    }

    /// Merges another view of the same member into this one.
    pub fn merge(&mut self, other: &Entry) -> Merged {
        debug_assert_eq!(self.id, other.id);
        if other.generation > self.generation {
            *self = other.clone();
            return Merged {
                info: true,
                heartbeat: true,
            };
        }
        if other.generation < self.generation {
            return Merged::default();
        }
        let mut merged = Merged::default();
        if other.info_key() > self.info_key() {
            merged.info = other.info != self.info || other.version != self.version;
            self.version = other.version;
            self.info = other.info.clone();
        }
        if other.heartbeat > self.heartbeat {
            self.heartbeat = other.heartbeat;
            merged.heartbeat = true;
        }
        merged
    }

    /// Applies a heartbeat-only update. Returns whether it advanced.
    pub fn merge_heartbeat(&mut self, generation: u64, heartbeat: u64) -> bool {
        if generation == self.generation && heartbeat > self.heartbeat {
            self.heartbeat = heartbeat;
            true
        } else {
            false
        }
    }

    /// What to send a peer whose digest of this member is `theirs` (`None`:
    /// it does not know the member), if anything.
    pub fn update_for(&self, theirs: Option<&Digest>) -> Option<Update> {
        match theirs {
            None => Some(Update::Full(self.clone())),
            Some(d) if (self.generation, self.version) > (d.generation, d.version) => {
                Some(Update::Full(self.clone()))
            }
            Some(d) if self.generation == d.generation && self.heartbeat > d.heartbeat => {
                Some(Update::Heartbeat {
                    id: self.id,
                    generation: self.generation,
                    heartbeat: self.heartbeat,
                })
            }
            _ => None,
        }
    }

    /// Whether a peer whose digest is `theirs` knows something newer about
    /// this member than this entry.
    pub fn behind(&self, theirs: &Digest) -> bool {
        (theirs.generation, theirs.version) > (self.generation, self.version)
            || (theirs.generation == self.generation && theirs.heartbeat > self.heartbeat)
    }
}
