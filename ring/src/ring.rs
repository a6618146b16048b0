//! The ring: members and their tokens, and each partition's primaries.
//!
//! [`Ring::new`] sorts the members by id and the tokens by (position, owner
//! id), so the same members in any order give the same ring, and two nodes
//! that happened to pick the same position are ordered by id rather than
//! rejected (concurrent joins can do that; the ring stays a pure function of
//! the gossiped state). It then walks the ring once per partition (see
//! [`crate::walk`]) and keeps the Q×N table of primaries, so a lookup on the
//! request path is an index into a flat array.
//!
//! Fallbacks for a sloppy quorum are not precomputed: [`PreferenceList`]
//! continues the same walk lazily past the primaries, and
//! [`Ring::sloppy_replicas`] pairs each primary the caller considers down
//! with the next live node of that walk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::RingError;
use crate::member::{MAX_TOKENS_PER_NODE, Member, NodeId, Token};
use crate::partition::{DEFAULT_PARTITIONS, PartitionId, Partitioner};
use crate::walk::{WalkRules, Walker};

/// Default replication factor, N.
pub const DEFAULT_REPLICAS: usize = 3;
/// Largest replication factor accepted.
pub const MAX_REPLICAS: usize = 16;

/// The cluster-wide placement settings, fixed when the cluster is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingConfig {
    /// Q, the number of partitions: a power of two.
    pub partitions: u32,
    /// N, the number of replicas of each partition.
    pub replicas: usize,
}

impl Default for RingConfig {
    fn default() -> Self {
        Self {
            partitions: DEFAULT_PARTITIONS,
            replicas: DEFAULT_REPLICAS,
        }
    }
}

impl RingConfig {
    /// Checks the settings, returning the partitioner they define.
    pub fn validate(&self) -> Result<Partitioner, RingError> {
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return Err(RingError::BadReplicaCount {
                replicas: self.replicas,
            });
        }
        Partitioner::new(self.partitions)
    }
}

/// What the ring keeps per member.
#[derive(Clone, Debug)]
pub(crate) struct MemberEntry {
    pub(crate) id: NodeId,
    pub(crate) zone: String,
    pub(crate) zone_index: u16,
    pub(crate) token_count: usize,
}

/// A consistent-hash ring with virtual nodes.
///
/// Invariants: `members` is sorted by id; `positions`/`owners` are sorted by
/// (position, owner), owners index `members`; `primaries` holds, for every
/// partition, `replicas_eff` distinct member indices in walk order.
#[derive(Clone, Debug)]
pub struct Ring {
    config: RingConfig,
    partitioner: Partitioner,
    members: Vec<MemberEntry>,
    zone_of: Vec<u16>,
    zones: usize,
    positions: Vec<u64>,
    owners: Vec<u32>,
    replicas_eff: usize,
    starts: Vec<u32>,
    primaries: Vec<u32>,
}

/// One replica chosen for a request under a sloppy quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// The node to send to.
    pub node: NodeId,
    /// Why this node is in the set.
    pub role: ReplicaRole,
}

/// Whether a replica is one of the partition's owners or stands in for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaRole {
    /// One of the partition's N primaries.
    Primary,
    /// A fallback holding writes as hints for `for_node`, a primary believed down.
    Fallback {
        /// The primary this node stands in for.
        for_node: NodeId,
    },
}

impl Ring {
    /// Builds the ring of `members` under `config`.
    ///
    /// Members without tokens are kept (they are known, own nothing). Errors
    /// on bad settings, duplicate node ids or too many tokens on one node.
    pub fn new(
        config: RingConfig,
        members: impl IntoIterator<Item = Member>,
    ) -> Result<Self, RingError> {
        let partitioner = config.validate()?;
        let mut members: Vec<Member> = members.into_iter().collect();
        members.sort_by_key(|m| m.id);
        if let Some(w) = members.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(RingError::DuplicateNode(w[0].id));
        }
        let zone_names: BTreeMap<&str, u16> = {
            let mut names: Vec<&str> = members
                .iter()
                .filter(|m| !m.tokens.is_empty())
                .map(|m| m.zone.as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            names
                .into_iter()
                .enumerate()
                .map(|(i, z)| (z, i as u16))
                .collect()
        };
        let zones = zone_names.len();
        let mut tokens: Vec<(u64, u32)> = Vec::new();
        let mut entries = Vec::with_capacity(members.len());
        for (index, member) in members.iter().enumerate() {
            let mut own: Vec<u64> = member.tokens.iter().map(|t| t.0).collect();
            own.sort_unstable();
            own.dedup();
            if own.len() > MAX_TOKENS_PER_NODE {
                return Err(RingError::BadTokenCount {
                    node: member.id,
                    count: own.len(),
                });
            }
            tokens.extend(own.iter().map(|&pos| (pos, index as u32)));
            entries.push(MemberEntry {
                id: member.id,
                zone: member.zone.clone(),
                // Members without tokens take no part in walks; their zone
                // index is never read, 0 is as good as any.
                zone_index: zone_names.get(member.zone.as_str()).copied().unwrap_or(0),
                token_count: own.len(),
            });
        }
        tokens.sort_unstable();
        let placed = entries.iter().filter(|e| e.token_count > 0).count();
        let mut ring = Ring {
            config,
            partitioner,
            zone_of: entries.iter().map(|e| e.zone_index).collect(),
            members: entries,
            zones,
            positions: tokens.iter().map(|t| t.0).collect(),
            owners: tokens.iter().map(|t| t.1).collect(),
            replicas_eff: config.replicas.min(placed),
            starts: Vec::new(),
            primaries: Vec::new(),
        };
        ring.compute_primaries();
        Ok(ring)
    }

    fn compute_primaries(&mut self) {
        let q = self.partitioner.count() as usize;
        self.starts = self
            .partitioner
            .iter()
            .map(|p| self.first_token_at_or_after(self.partitioner.start(p)) as u32)
            .collect();
        let mut walker = Walker::default();
        let mut out = Vec::with_capacity(self.replicas_eff);
        let mut primaries = Vec::with_capacity(q * self.replicas_eff);
        let rules = self.walk_rules();
        for p in 0..q {
            walker.primaries(
                self.owners.as_slice(),
                self.starts[p] as usize,
                rules,
                &mut out,
            );
            debug_assert_eq!(out.len(), self.replicas_eff);
            primaries.extend_from_slice(&out);
        }
        self.primaries = primaries;
    }

    pub(crate) fn walk_rules(&self) -> WalkRules<'_> {
        WalkRules {
            zone_of: &self.zone_of,
            zones: self.zones,
            replicas: self.replicas_eff,
        }
    }

    /// Index of the first token at or after `position`, wrapping to 0.
    fn first_token_at_or_after(&self, position: u64) -> usize {
        let index = self.positions.partition_point(|&t| t < position);
        if index == self.positions.len() {
            0
        } else {
            index
        }
    }

    /// The placement settings.
    pub fn config(&self) -> RingConfig {
        self.config
    }

    /// The partitioner (Q) of this ring.
    pub fn partitioner(&self) -> Partitioner {
        self.partitioner
    }

    /// Number of replicas each partition actually has: N, or fewer while the
    /// cluster has fewer than N nodes with tokens.
    pub fn effective_replicas(&self) -> usize {
        self.replicas_eff
    }

    /// The partition of `key` (hashtag rule applied).
    pub fn partition_of_key(&self, key: &[u8]) -> PartitionId {
        self.partitioner.of_key(key)
    }

    /// Whether `node` is a member (with or without tokens).
    pub fn contains(&self, node: NodeId) -> bool {
        self.index_of(node).is_some()
    }

    pub(crate) fn index_of(&self, node: NodeId) -> Option<usize> {
        self.members.binary_search_by_key(&node, |m| m.id).ok()
    }

    /// The members in id order, as [`Member`] values (tokens sorted).
    pub fn members(&self) -> Vec<Member> {
        let mut tokens: Vec<Vec<Token>> = vec![Vec::new(); self.members.len()];
        for (&pos, &owner) in self.positions.iter().zip(&self.owners) {
            tokens[owner as usize].push(Token(pos));
        }
        self.members
            .iter()
            .zip(tokens)
            .map(|(m, tokens)| Member::new(m.id, m.zone.clone(), tokens))
            .collect()
    }

    /// The member ids in order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().map(|m| m.id)
    }

    /// The zone of `node`, if it is a member.
    pub fn zone_of(&self, node: NodeId) -> Option<&str> {
        self.index_of(node).map(|i| self.members[i].zone.as_str())
    }

    /// Number of tokens on the ring.
    pub fn token_count(&self) -> usize {
        self.positions.len()
    }

    /// The primaries of partition `p`, in preference order.
    pub fn primaries(&self, p: PartitionId) -> impl ExactSizeIterator<Item = NodeId> + '_ {
        self.primary_indices(p)
            .iter()
            .map(|&i| self.members[i as usize].id)
    }

    /// The primaries' member indices; empty for a partition outside `0..Q`
    /// (a partition id from the network is not trusted to be in range).
    pub(crate) fn primary_indices(&self, p: PartitionId) -> &[u32] {
        let n = self.replicas_eff;
        let at = p.0 as usize * n;
        self.primaries.get(at..at + n).unwrap_or(&[])
    }

    /// Whether `node` is one of the primaries of partition `p`.
    pub fn is_primary(&self, p: PartitionId, node: NodeId) -> bool {
        self.primaries(p).any(|n| n == node)
    }

    /// Every member in the order a request for partition `p` should try
    /// them: the primaries first, then the rest of the clockwise walk. The
    /// order of the nodes is the same whoever is down; a caller skips the
    /// nodes it considers down.
    pub fn preference_list(&self, p: PartitionId) -> PreferenceList<'_> {
        let in_range = p.0 < self.partitioner.count();
        PreferenceList {
            ring: self,
            primaries: self.primary_indices(p),
            next_primary: 0,
            cursor: self.starts.get(p.0 as usize).copied().unwrap_or(0) as usize,
            // Out of range: nothing to walk.
            steps: if in_range { 0 } else { usize::MAX },
            yielded: vec![0u64; self.members.len().div_ceil(64)],
        }
    }

    /// The replicas for a request on partition `p` under a sloppy quorum:
    /// every primary `is_up` accepts, and, for each primary it rejects, the
    /// next node of the preference list that is up and not yet chosen, as a
    /// fallback for that primary. Fewer than N replicas come back only when
    /// fewer than N nodes are up.
    pub fn sloppy_replicas(&self, p: PartitionId, is_up: impl Fn(NodeId) -> bool) -> Vec<Replica> {
        let mut chosen = Vec::with_capacity(self.replicas_eff);
        let mut down = Vec::new();
        let mut list = self.preference_list(p);
        for _ in 0..self.replicas_eff {
            let Some(node) = list.next() else { break };
            if is_up(node) {
                chosen.push(Replica {
                    node,
                    role: ReplicaRole::Primary,
                });
            } else {
                down.push(node);
            }
        }
        let mut down = down.into_iter();
        let Some(mut for_node) = down.next() else {
            return chosen;
        };
        for node in list {
            if is_up(node) {
                chosen.push(Replica {
                    node,
                    role: ReplicaRole::Fallback { for_node },
                });
                match down.next() {
                    Some(next) => for_node = next,
                    None => break,
                }
            }
        }
        chosen
    }

    /// How many partition-replicas each member holds, in id order.
    pub fn partition_replica_counts(&self) -> Vec<(NodeId, u64)> {
        let mut counts = vec![0u64; self.members.len()];
        for &m in &self.primaries {
            counts[m as usize] += 1;
        }
        self.members.iter().map(|m| m.id).zip(counts).collect()
    }

    /// Largest over mean partition-replica count, over members with tokens
    /// (1.0 is perfect balance; 0.0 for an empty ring).
    pub fn balance(&self) -> f64 {
        let counts: Vec<u64> = self
            .partition_replica_counts()
            .into_iter()
            .zip(&self.members)
            .filter(|(_, m)| m.token_count > 0)
            .map(|((_, c), _)| c)
            .collect();
        if counts.is_empty() {
            return 0.0;
        }
        let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
        let max = counts.iter().copied().max().unwrap_or(0) as f64;
        if mean == 0.0 { 0.0 } else { max / mean }
    }

    /// The partitions of which `node` is a primary, in order.
    pub fn partitions_of(&self, node: NodeId) -> Vec<PartitionId> {
        let Some(index) = self.index_of(node) else {
            return Vec::new();
        };
        self.partitioner
            .iter()
            .filter(|&p| self.primary_indices(p).contains(&(index as u32)))
            .collect()
    }

    pub(crate) fn member_entries(&self) -> &[MemberEntry] {
        &self.members
    }

    pub(crate) fn token_table(&self) -> (&[u64], &[u32]) {
        (&self.positions, &self.owners)
    }
}

/// The members in preference order for one partition: primaries first, then
/// the remaining nodes in the order the clockwise walk meets them.
#[derive(Debug, Clone)]
pub struct PreferenceList<'r> {
    ring: &'r Ring,
    primaries: &'r [u32],
    next_primary: usize,
    cursor: usize,
    steps: usize,
    yielded: Vec<u64>,
}

impl PreferenceList<'_> {
    fn mark(&mut self, member: u32) -> bool {
        let (word, bit) = (member as usize / 64, member % 64);
        let fresh = self.yielded[word] & (1 << bit) == 0;
        self.yielded[word] |= 1 << bit;
        fresh
    }
}

impl Iterator for PreferenceList<'_> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        if let Some(&m) = self.primaries.get(self.next_primary) {
            self.next_primary += 1;
            self.mark(m);
            return Some(self.ring.members[m as usize].id);
        }
        let len = self.ring.owners.len();
        while self.steps < len {
            let m = self.ring.owners[self.cursor];
            self.cursor = (self.cursor + 1) % len;
            self.steps += 1;
            if self.mark(m) {
                return Some(self.ring.members[m as usize].id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, zone: &str, tokens: &[u64]) -> Member {
        Member::new(NodeId(id), zone, tokens.iter().map(|&t| Token(t)).collect())
    }

    fn small_config() -> RingConfig {
        RingConfig {
            partitions: 4,
            replicas: 2,
        }
    }

    #[test]
    fn primaries_follow_the_clockwise_walk() {
        let q = 1u64 << 62; // partition width for Q = 4
        let ring = Ring::new(
            small_config(),
            vec![
                member(1, "a", &[0, 2 * q]),
                member(2, "a", &[q]),
                member(3, "a", &[3 * q]),
            ],
        )
        .unwrap();
        let p = |i| ring.primaries(PartitionId(i)).collect::<Vec<_>>();
        assert_eq!(p(0), vec![NodeId(1), NodeId(2)]);
        assert_eq!(p(1), vec![NodeId(2), NodeId(1)]);
        assert_eq!(p(2), vec![NodeId(1), NodeId(3)]);
        // wraps around
        assert_eq!(p(3), vec![NodeId(3), NodeId(1)]);
    }

    #[test]
    fn preference_list_lists_everyone_once_primaries_first() {
        let ring = Ring::new(
            small_config(),
            vec![
                member(1, "a", &[10, 500]),
                member(2, "a", &[20]),
                member(3, "a", &[30]),
                member(4, "a", &[40]),
            ],
        )
        .unwrap();
        let list: Vec<_> = ring.preference_list(PartitionId(0)).collect();
        assert_eq!(list, vec![NodeId(1), NodeId(2), NodeId(3), NodeId(4)]);
    }

    #[test]
    fn sloppy_replicas_replace_down_primaries_in_order() {
        let ring = Ring::new(
            RingConfig {
                partitions: 4,
                replicas: 3,
            },
            (1..=5).map(|i| member(i, "a", &[i * 10])),
        )
        .unwrap();
        let set = ring.sloppy_replicas(PartitionId(0), |n| n != NodeId(1) && n != NodeId(3));
        assert_eq!(
            set,
            vec![
                Replica {
                    node: NodeId(2),
                    role: ReplicaRole::Primary
                },
                Replica {
                    node: NodeId(4),
                    role: ReplicaRole::Fallback {
                        for_node: NodeId(1)
                    }
                },
                Replica {
                    node: NodeId(5),
                    role: ReplicaRole::Fallback {
                        for_node: NodeId(3)
                    }
                },
            ]
        );
        // Everyone down but one: one replica.
        let set = ring.sloppy_replicas(PartitionId(0), |n| n == NodeId(5));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn fewer_nodes_than_replicas_caps_n() {
        let ring = Ring::new(RingConfig::default(), vec![member(7, "a", &[1])]).unwrap();
        assert_eq!(ring.effective_replicas(), 1);
        assert_eq!(
            ring.primaries(PartitionId(5)).collect::<Vec<_>>(),
            vec![NodeId(7)]
        );
        let empty = Ring::new(RingConfig::default(), Vec::new()).unwrap();
        assert_eq!(empty.primaries(PartitionId(0)).count(), 0);
        assert_eq!(empty.preference_list(PartitionId(0)).count(), 0);
        assert!(empty.sloppy_replicas(PartitionId(0), |_| true).is_empty());
    }

    #[test]
    fn rejects_bad_settings_and_duplicates() {
        let bad = RingConfig {
            partitions: 1000,
            replicas: 3,
        };
        assert!(matches!(
            Ring::new(bad, Vec::new()),
            Err(RingError::BadPartitionCount { count: 1000 })
        ));
        let bad = RingConfig {
            partitions: 8,
            replicas: 0,
        };
        assert!(Ring::new(bad, Vec::new()).is_err());
        let dup = vec![member(1, "a", &[1]), member(1, "b", &[2])];
        assert_eq!(
            Ring::new(small_config(), dup).unwrap_err(),
            RingError::DuplicateNode(NodeId(1))
        );
    }

    #[test]
    fn partitions_out_of_range_have_no_replicas() {
        let ring = Ring::new(small_config(), vec![member(1, "a", &[5])]).unwrap();
        let p = PartitionId(4);
        assert_eq!(ring.primaries(p).count(), 0);
        assert_eq!(ring.preference_list(p).count(), 0);
        assert!(!ring.is_primary(p, NodeId(1)));
        assert!(ring.sloppy_replicas(p, |_| true).is_empty());
    }

    #[test]
    fn same_position_on_two_nodes_is_ordered_by_id() {
        let a = Ring::new(
            small_config(),
            vec![member(2, "a", &[100]), member(1, "a", &[100])],
        )
        .unwrap();
        assert_eq!(
            a.primaries(PartitionId(0)).collect::<Vec<_>>(),
            vec![NodeId(1), NodeId(2)]
        );
    }
}
