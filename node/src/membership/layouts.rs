//! Ownership transitions, derived from gossip with no coordinator.
//!
//! ## Layouts
//!
//! A member's tokens are fixed for life, so what changes ownership is a
//! member entering the layouts (a join: it chose tokens) or leaving them
//! (a leave, or an operator's removal of a dead node). Each such change is
//! stamped ([`Stamp`]: a counter one above every stamp and tracker the
//! changer knows, then its id) and gossiped in the member's entry
//! (`joined`, `departed`). The **layout at stamp s** is the ring of the
//! members that joined at or before s and had not departed at s. Every
//! node that knows the same entries computes the same layouts, and a
//! [`Tracker`] names one by its stamp and a digest of its members, so a
//! tracker set by a member that had not heard of some change is recognised
//! (its digest differs) and counted as behind.
//!
//! ## Stages
//!
//! Every member gossips three trackers, each moved forward by the member
//! itself ([`super::Membership`]), and every node derives the stage from
//! the minimum over the members that are not gone (down ones included:
//! a transition waits for a member that is down, and an operator removes a
//! member that died for good):
//!
//! 1. **ack**: the member writes to the newest layout it knows, and no
//!    write it started before knowing it is still in flight. Writes go to
//!    every *active* layout (below): a write succeeds only with its quorum
//!    in each distinct primary set.
//! 2. **sync**: the member holds the data of every partition it owns in
//!    that layout. A member gaining a partition pulls it from every old
//!    primary (the read layout's, a removed member excepted) only once
//!    every member has acked the newest layout, so nothing acknowledged
//!    after the pull can miss it, and everything acknowledged before it is
//!    on one of the primaries it pulled from, whatever W was. Members that
//!    gain nothing sync as soon as every member acked.
//! 3. **sync_ack**: the member has seen every member synced to that layout
//!    and reads from it (or a later one).
//!
//! A node **reads** from the newest layout every member synced to (the
//! *read layout*), and **writes** to every layout from the oldest any
//! member may still read from (the minimum sync_ack, the *floor*) to the
//! newest. A coordinator one stage behind reads an older layout, which
//! every write still reaches (writes go down to the floor, and the floor
//! never passes a layout some member still reads); one stage ahead, it
//! writes to more layouts than needed. Both stay monotonic on each node.
//! A node drops a partition's data only when it owns it in no active
//! layout: no member reads from a layout below the floor.

use std::collections::{BTreeMap, BTreeSet};

use quorra_gossip::{Entry, Stamp, Status, Tracker};
use quorra_ring::{Member, NodeId, Placement, Ring, RingConfig, RingError};

/// What a member contributes to the layouts.
#[derive(Clone, Debug)]
struct Record<'a> {
    id: NodeId,
    zone: &'a str,
    tokens: &'a [quorra_ring::Token],
    /// When its tokens entered the layouts (`None`: they have not).
    joined: Option<Stamp>,
    departed: Option<Stamp>,
    /// Gone for good (left or removed): known only while some layout
    /// holds its tokens.
    gone: bool,
    status: Status,
    /// The member that took its tokens (`quorra node --replace`): its
    /// departure is that member's join.
    replaced_by: Option<NodeId>,
    /// Its trackers.
    layout: &'a quorra_gossip::Layout,
}

impl Record<'_> {
    fn of(entry: &Entry) -> Record<'_> {
        let info = &entry.info;
        let owned_tokens =
            !info.tokens.is_empty() && (info.status.owns_tokens() || info.layout.joined.is_some());
        let joined = if owned_tokens {
            // Members that owned tokens before stamps existed are in every
            // layout from the first.
            Some(info.layout.joined.unwrap_or(Stamp::ZERO))
        } else {
            None
        };
        // A member that left or was removed before stamps existed is in no
        // layout.
        let departed = info
            .layout
            .departed
            .or(info.status.gone().then_some(Stamp::ZERO));
        Record {
            id: entry.id,
            zone: &info.zone,
            tokens: &info.tokens,
            joined,
            departed,
            gone: info.status.gone(),
            status: info.status,
            replaced_by: None,
            layout: &info.layout,
        }
    }

    /// Whether its tokens are in the layout at `s`.
    fn in_layout(&self, s: Stamp) -> bool {
        self.joined.is_some_and(|j| j <= s) && self.departed.is_none_or(|d| d > s)
    }
}

/// Where the layouts stand, as one node sees them.
#[derive(Clone, Debug)]
pub struct Stage {
    /// The newest layout.
    pub newest: Tracker,
    /// The layout reads use.
    pub read: Tracker,
    /// The oldest layout writes still go to.
    pub floor: Tracker,
    /// Every member not gone writes to the newest layout: gaining members
    /// may pull.
    pub all_acked: bool,
    /// The members not gone, with whether they are behind: not acked,
    /// synced or sync-acked to the newest layout.
    pub behind: BTreeMap<NodeId, Behind>,
    /// Members removed by an operator: no source to pull from.
    pub removed: BTreeSet<NodeId>,
    /// The active layouts' rings, oldest first, and the one reads use.
    pub placement: Placement,
}

/// Which trackers of a member are short of the newest layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Behind {
    /// Not yet writing to it.
    pub ack: bool,
    /// Not yet holding its data.
    pub sync: bool,
    /// Not yet reading from it.
    pub sync_ack: bool,
}

/// The layouts of a member table.
pub struct Layouts<'a> {
    settings: RingConfig,
    records: Vec<Record<'a>>,
    /// Every stamp of a change, and [`Stamp::ZERO`], in order.
    stamps: Vec<Stamp>,
}

impl<'a> Layouts<'a> {
    /// The layouts of `entries` under `settings`.
    pub fn new(settings: RingConfig, entries: impl Iterator<Item = &'a Entry>) -> Self {
        let mut records: Vec<Record<'a>> = entries.map(Record::of).collect();
        Self::apply_replacements(&mut records);
        let mut stamps: BTreeSet<Stamp> = BTreeSet::from([Stamp::ZERO]);
        for r in &records {
            stamps.extend(r.joined);
            stamps.extend(r.departed);
        }
        Self {
            settings,
            records,
            stamps: stamps.into_iter().collect(),
        }
    }

    /// A member that joined in a dead one's place departs that one at its
    /// join, removed, even before the dead one's own entry says so (the
    /// replacer changes both, but gossip may bring one before the other):
    /// the two never own the same tokens in one layout.
    fn apply_replacements(records: &mut [Record<'a>]) {
        let replacements: Vec<(NodeId, NodeId, Stamp)> = records
            .iter()
            .filter_map(|r| Some((r.id, r.layout.replaces?, r.joined?)))
            .collect();
        for (by, dead, joined) in replacements {
            let Some(r) = records.iter_mut().find(|r| r.id == dead) else {
                // Forgotten since (gone long ago): nothing to depart.
                continue;
            };
            r.departed = Some(r.departed.map_or(joined, |d| d.min(joined)));
            if !r.gone {
                r.gone = true;
                r.status = Status::Removed;
            }
            r.replaced_by = Some(by);
        }
    }

    /// The newest stamp.
    pub fn newest_stamp(&self) -> Stamp {
        *self.stamps.last().expect("ZERO is always there")
    }

    /// The highest counter of any stamp or tracker in `entries`: a change
    /// is stamped one above it.
    pub fn next_counter(entries: impl Iterator<Item = &'a Entry>) -> u64 {
        let mut top = 0;
        for e in entries {
            let l = &e.info.layout;
            for s in [l.joined, l.departed].into_iter().flatten() {
                top = top.max(s.counter);
            }
            for t in [l.ack, l.sync, l.sync_ack] {
                top = top.max(t.stamp.counter);
            }
        }
        top + 1
    }

    /// The digest of the layout at `s`: its members with their zones and
    /// tokens, in id order.
    pub fn digest(&self, s: Stamp) -> u64 {
        self.digest_but(s, None)
    }

    /// Whether a member followed the layout at `t`'s stamp as if member
    /// `id`'s change stamped `change` had not happened: its change came
    /// late, and must be stamped again so as not to alter a layout already
    /// followed.
    pub fn followed_without(&self, t: Tracker, id: NodeId, change: Stamp) -> bool {
        t.stamp >= change
            && t.digest != self.digest(t.stamp)
            && t.digest == self.digest_but(t.stamp, Some((id, change)))
    }

    /// [`Layouts::digest`], as a member that had not heard of the change
    /// `but` (a member and the stamp of its change) computes it.
    fn digest_but(&self, s: Stamp, but: Option<(NodeId, Stamp)>) -> u64 {
        let mut hasher = blake3::Hasher::new();
        let mut members: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| match but {
                // A replacement is one change: the replacer's join and the
                // dead member's departure.
                Some((id, change)) if r.id == id || r.replaced_by == Some(id) => {
                    let joined = r.joined.filter(|&j| j != change);
                    let departed = r.departed.filter(|&d| d != change);
                    joined.is_some_and(|j| j <= s) && departed.is_none_or(|d| d > s)
                }
                _ => r.in_layout(s),
            })
            .collect();
        members.sort_by_key(|r| r.id);
        for r in members {
            hasher.update(&r.id.0.to_le_bytes());
            hasher.update(&(r.zone.len() as u64).to_le_bytes());
            hasher.update(r.zone.as_bytes());
            hasher.update(&(r.tokens.len() as u64).to_le_bytes());
            for t in r.tokens {
                hasher.update(&t.0.to_le_bytes());
            }
        }
        let bytes = hasher.finalize();
        u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
    }

    /// The tracker naming the layout at `s`.
    pub fn tracker(&self, s: Stamp) -> Tracker {
        Tracker {
            stamp: s,
            digest: self.digest(s),
        }
    }

    /// The stamp `t` vouches for: its own if its digest is the layout's,
    /// else none (the member that set it had not heard of some change).
    fn vouched(&self, t: Tracker) -> Option<Stamp> {
        (self.digest(t.stamp) == t.digest).then_some(t.stamp)
    }

    /// The newest layout a member that joined at `joined` is not in
    /// (the newest of all if it has not joined).
    fn before_join(&self, joined: Option<Stamp>) -> Stamp {
        match joined {
            None => self.newest_stamp(),
            Some(j) => self
                .stamps
                .iter()
                .rev()
                .find(|&&x| x < j)
                .copied()
                .unwrap_or(Stamp::ZERO),
        }
    }

    /// The greatest layout stamp at or below `s`.
    fn at_or_below(&self, s: Stamp) -> Stamp {
        self.stamps
            .iter()
            .rev()
            .find(|&&x| x <= s)
            .copied()
            .unwrap_or(Stamp::ZERO)
    }

    /// The ring of the layout at `s`: its members with their tokens, every
    /// other member not gone known and owning nothing.
    pub fn ring(&self, s: Stamp) -> Result<Ring, RingError> {
        Ring::new(
            self.settings,
            self.records
                .iter()
                .filter(|r| !r.gone || r.in_layout(s))
                .map(|r| {
                    let tokens = if r.in_layout(s) {
                        r.tokens.to_vec()
                    } else {
                        Vec::new()
                    };
                    Member::new(r.id, r.zone.to_string(), tokens)
                }),
        )
    }

    /// The stage of the transitions. `at_least` is the (read, floor) this
    /// node derived before: neither goes back, so a tracker that stops
    /// vouching (a late change) holds them where they are.
    pub fn stage(&self, at_least: (Stamp, Stamp)) -> Result<Stage, RingError> {
        let newest = self.newest_stamp();
        let mut min_ack = Some(newest);
        let mut min_sync = Some(newest);
        let mut min_sync_ack = Some(newest);
        let mut behind = BTreeMap::new();
        let mut removed = BTreeSet::new();
        for r in &self.records {
            if r.gone {
                if r.status == Status::Removed {
                    removed.insert(r.id);
                }
                continue;
            }
            let ack = self.vouched(r.layout.ack);
            // A member holds, vacuously, the data of every layout before
            // it joined (it owns nothing there): a member just seen, whose
            // trackers vouch for nothing yet, must not send reads back to
            // the first layout, where nothing would be pulled from anyone.
            let sync = self
                .vouched(r.layout.sync)
                .max(Some(self.before_join(r.joined)));
            let sync_ack = self.vouched(r.layout.sync_ack);
            behind.insert(
                r.id,
                Behind {
                    ack: ack != Some(newest),
                    sync: sync != Some(newest),
                    sync_ack: sync_ack != Some(newest),
                },
            );
            min_ack = min_ack.min(ack);
            min_sync = min_sync.min(sync);
            min_sync_ack = min_sync_ack.min(sync_ack);
        }
        let (read_before, floor_before) = at_least;
        let floor = self.at_or_below(min_sync_ack.unwrap_or(Stamp::ZERO).max(floor_before));
        let read = self
            .at_or_below(min_sync.unwrap_or(Stamp::ZERO).max(read_before))
            .max(floor);
        let mut rings = Vec::new();
        let mut read_index = 0;
        for &s in self.stamps.iter().filter(|&&s| s >= floor) {
            if s == read {
                read_index = rings.len();
            }
            rings.push(self.ring(s)?);
        }
        let placement = Placement::new(rings, read_index).expect("the read layout is active");
        Ok(Stage {
            newest: self.tracker(newest),
            read: self.tracker(read),
            floor: self.tracker(floor),
            all_acked: min_ack == Some(newest),
            behind,
            removed,
            placement,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorra_gossip::{Info, Layout};
    use quorra_ring::Token;

    const SETTINGS: RingConfig = RingConfig {
        partitions: 64,
        replicas: 3,
    };

    fn stamp(counter: u64, by: u64) -> Stamp {
        Stamp {
            counter,
            by: NodeId(by),
        }
    }

    fn entry(id: u64, joined: Option<Stamp>) -> Entry {
        Entry {
            id: NodeId(id),
            generation: 1,
            heartbeat: 1,
            version: 1,
            info: Info {
                status: if joined.is_some() {
                    Status::Normal
                } else {
                    Status::Joining
                },
                address: format!("127.0.0.1:{id}"),
                zone: "z".into(),
                tokens: if joined.is_some() {
                    (0..8)
                        .map(|t| Token((id * 8 + t).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
                        .collect()
                } else {
                    Vec::new()
                },
                storage_failing: false,
                layout: Layout {
                    joined,
                    ..Layout::default()
                },
            },
        }
    }

    /// Three members joined at stamps 1 to 3, each having followed (ack,
    /// sync, sync_ack) layout 3.
    fn settled() -> Vec<Entry> {
        let mut entries: Vec<Entry> = (1..=3).map(|i| entry(i, Some(stamp(i, i)))).collect();
        let t = Layouts::new(SETTINGS, entries.iter()).tracker(stamp(3, 3));
        for e in &mut entries {
            e.info.layout.ack = t;
            e.info.layout.sync = t;
            e.info.layout.sync_ack = t;
        }
        entries
    }

    /// `Layout` as it was before `replaces`.
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct LayoutBefore {
        joined: Option<Stamp>,
        departed: Option<Stamp>,
        ack: Tracker,
        sync: Tracker,
        sync_ack: Tracker,
    }

    #[test]
    fn a_layout_without_a_replacement_encodes_as_before_it_existed() {
        let layout = Layout {
            joined: Some(stamp(3, 1)),
            departed: Some(stamp(5, 2)),
            ..Layout::default()
        };
        let bytes = rmp_serde::to_vec(&layout).unwrap();
        let before: LayoutBefore = rmp_serde::from_slice(&bytes).expect("an older node reads it");
        assert_eq!(before.joined, layout.joined);
        let back: Layout = rmp_serde::from_slice(&rmp_serde::to_vec(&before).unwrap()).unwrap();
        assert_eq!(
            back, layout,
            "an older node's entry reads with no replacement"
        );
        let replacing = Layout {
            replaces: Some(NodeId(4)),
            ..layout
        };
        let back: Layout = rmp_serde::from_slice(&rmp_serde::to_vec(&replacing).unwrap()).unwrap();
        assert_eq!(back, replacing);
    }

    #[test]
    fn a_replacement_is_one_change_whichever_entry_arrives_first() {
        let mut entries = settled();
        // Member 5 replaces member 3 at stamp 4, under its tokens; member
        // 3's own entry does not say so yet.
        let mut replacer = entry(5, Some(stamp(4, 5)));
        replacer.info.tokens = entries[2].info.tokens.clone();
        replacer.info.layout.replaces = Some(NodeId(3));
        entries.push(replacer);
        let layouts = Layouts::new(SETTINGS, entries.iter());
        let stage = layouts.stage((stamp(3, 3), stamp(3, 3))).unwrap();
        assert_eq!(stage.newest.stamp, stamp(4, 5));
        assert!(stage.removed.contains(&NodeId(3)), "no source to pull from");
        assert!(
            !stage.behind.contains_key(&NodeId(3)),
            "a replaced member is not waited for"
        );
        let (old, new) = (
            layouts.ring(stamp(3, 3)).unwrap(),
            layouts.ring(stamp(4, 5)).unwrap(),
        );
        for p in old.partitioner().iter() {
            let was: Vec<NodeId> = old
                .primaries(p)
                .map(|n| if n == NodeId(3) { NodeId(5) } else { n })
                .collect();
            assert_eq!(new.primaries(p).collect::<Vec<_>>(), was);
        }
        let digests = [stamp(3, 3), stamp(4, 5)].map(|s| layouts.digest(s));
        // Once member 3's entry says it was removed at the same stamp, the
        // layouts are the same.
        entries[2].info.status = Status::Removed;
        entries[2].info.layout.departed = Some(stamp(4, 5));
        let again = Layouts::new(SETTINGS, entries.iter());
        assert_eq!([stamp(3, 3), stamp(4, 5)].map(|s| again.digest(s)), digests);
        // A member that followed layout 4 without the replacement is seen
        // as having done so.
        let without = Tracker {
            stamp: stamp(4, 5),
            digest: Layouts::new(SETTINGS, settled().iter()).digest(stamp(3, 3)),
        };
        assert!(again.followed_without(without, NodeId(5), stamp(4, 5)));
    }

    #[test]
    fn a_member_just_seen_does_not_send_reads_back_to_the_first_layout() {
        // Joining, trackers all default: seen by a node that knows nothing
        // of earlier stages (a fresh or restarted one).
        let mut entries = settled();
        entries.push(entry(4, None));
        let stage = Layouts::new(SETTINGS, entries.iter())
            .stage((Stamp::ZERO, Stamp::ZERO))
            .unwrap();
        assert_eq!(stage.read.stamp, stamp(3, 3));
        assert_eq!(stage.newest.stamp, stamp(3, 3));
        assert!(!stage.all_acked, "the joining member has not acked");

        // It chose tokens: reads stay on layout 3 until it synced layout 4.
        // (Its sync_ack vouches for nothing yet, so the floor stays where
        // the observer had it: layout 3 for one that followed layout 3.)
        entries[3] = entry(4, Some(stamp(4, 4)));
        let stage = Layouts::new(SETTINGS, entries.iter())
            .stage((Stamp::ZERO, stamp(3, 3)))
            .unwrap();
        assert_eq!(stage.read.stamp, stamp(3, 3));
        assert_eq!(stage.newest.stamp, stamp(4, 4));
        assert_eq!(
            stage.placement.rings().len(),
            2,
            "writes go to layouts 3 and 4"
        );
        let read = stage.placement.read_ring();
        assert!(
            read.partitioner()
                .iter()
                .all(|p| !read.is_primary(p, NodeId(4)))
        );
        let newest = stage.placement.newest();
        assert!(
            newest
                .partitioner()
                .iter()
                .any(|p| newest.is_primary(p, NodeId(4)))
        );
    }
}
