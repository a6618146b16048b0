//! The clockwise walk that turns tokens into a partition's primary replicas.
//!
//! Starting at the first token at or after a partition's start, the walk
//! visits tokens clockwise and considers each physical node the first time
//! one of its tokens is met. With Z zones present and N replicas wanted
//! (N capped at the number of nodes), it keeps:
//!
//! - the first node met in each of the first min(Z, N) zones met (so replicas
//!   span as many zones as exist, up to N), and
//! - the first N − min(Z, N) other nodes met, whatever their zone.
//!
//! The result is listed in the order the nodes were met. The walk stops as
//! soon as both quotas are full, and reports how many tokens it consumed: the
//! token allocator uses that to know which partitions a new token can touch.
//!
//! Adding a node can only put that node into a partition's set, displacing at
//! most one other node: every node other than the new one keeps its relative
//! order, and both quotas are monotone in the set of nodes met. This is what
//! makes a join move data only onto the joining node.

/// A sequence of token owners in ring order, indexable modulo its length.
pub(crate) trait TokenSeq {
    /// Number of tokens.
    fn len(&self) -> usize;
    /// Owner (member index) of the token at `index` (< `len`).
    fn owner(&self, index: usize) -> u32;
}

impl TokenSeq for [u32] {
    fn len(&self) -> usize {
        <[u32]>::len(self)
    }
    fn owner(&self, index: usize) -> u32 {
        self[index]
    }
}

/// The owners of a ring with one extra token inserted before index `at`:
/// what the ring would look like with a candidate token, without copying it.
pub(crate) struct WithInsert<'a> {
    pub(crate) base: &'a [u32],
    pub(crate) at: usize,
    pub(crate) owner: u32,
}

impl TokenSeq for WithInsert<'_> {
    fn len(&self) -> usize {
        self.base.len() + 1
    }
    fn owner(&self, index: usize) -> u32 {
        match index.cmp(&self.at) {
            std::cmp::Ordering::Less => self.base[index],
            std::cmp::Ordering::Equal => self.owner,
            std::cmp::Ordering::Greater => self.base[index - 1],
        }
    }
}

/// Reusable scratch space for walks: "seen" marks per member and per zone,
/// reset in O(1) by bumping a generation stamp.
#[derive(Debug, Default)]
pub(crate) struct Walker {
    seen: Vec<u32>,
    zone_used: Vec<u32>,
    stamp: u32,
}

/// What the walk needs to know about the members.
#[derive(Clone, Copy)]
pub(crate) struct WalkRules<'a> {
    /// Zone index of each member.
    pub(crate) zone_of: &'a [u16],
    /// Number of distinct zones among members that own tokens.
    pub(crate) zones: usize,
    /// Replicas wanted, already capped at the number of members with tokens.
    pub(crate) replicas: usize,
}

impl Walker {
    fn next_stamp(&mut self, members: usize, zones: usize) -> u32 {
        if self.seen.len() < members {
            self.seen.resize(members, 0);
        }
        if self.zone_used.len() < zones {
            self.zone_used.resize(zones, 0);
        }
        if self.stamp == u32::MAX {
            self.seen.fill(0);
            self.zone_used.fill(0);
            self.stamp = 0;
        }
        self.stamp += 1;
        self.stamp
    }

    /// Walks `seq` clockwise from `start` and appends the primaries to `out`
    /// (cleared first) in the order met. Returns the number of tokens consumed
    /// before the set was complete (the whole ring if it never completes).
    pub(crate) fn primaries<S: TokenSeq + ?Sized>(
        &mut self,
        seq: &S,
        start: usize,
        rules: WalkRules<'_>,
        out: &mut Vec<u32>,
    ) -> usize {
        out.clear();
        let len = seq.len();
        if len == 0 || rules.replicas == 0 {
            return 0;
        }
        let stamp = self.next_stamp(rules.zone_of.len(), rules.zones.max(1));
        let zone_quota = rules.zones.min(rules.replicas);
        let other_quota = rules.replicas - zone_quota;
        let (mut zone_picks, mut other_picks) = (0, 0);
        let mut index = start % len;
        for step in 0..len {
            let member = seq.owner(index);
            index += 1;
            if index == len {
                index = 0;
            }
            let m = member as usize;
            if self.seen[m] == stamp {
                continue;
            }
            self.seen[m] = stamp;
            let zone = rules.zone_of[m] as usize;
            if zone_picks < zone_quota && self.zone_used[zone] != stamp {
                self.zone_used[zone] = stamp;
                zone_picks += 1;
                out.push(member);
            } else if other_picks < other_quota {
                other_picks += 1;
                out.push(member);
            }
            if zone_picks == zone_quota && other_picks == other_quota {
                return step + 1;
            }
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(owners: &[u32], zones_of: &[u16], zones: usize, n: usize, start: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let rules = WalkRules {
            zone_of: zones_of,
            zones,
            replicas: n,
        };
        Walker::default().primaries(owners, start, rules, &mut out);
        out
    }

    #[test]
    fn takes_distinct_nodes_in_order() {
        let owners = [0, 0, 1, 0, 2, 3];
        assert_eq!(walk(&owners, &[0; 4], 1, 3, 0), vec![0, 1, 2]);
        assert_eq!(walk(&owners, &[0; 4], 1, 3, 4), vec![2, 3, 0]);
    }

    #[test]
    fn prefers_distinct_zones() {
        // members 0,1 in zone 0; 2 in zone 1; 3 in zone 2.
        let owners = [0, 1, 2, 3];
        assert_eq!(walk(&owners, &[0, 0, 1, 2], 3, 3, 0), vec![0, 2, 3]);
        // Two zones, three replicas: both zones first, then the next node met.
        assert_eq!(walk(&owners, &[0, 0, 1, 1], 2, 3, 0), vec![0, 1, 2]);
    }

    #[test]
    fn insert_view_matches_a_real_insert() {
        let base = [0u32, 1, 2, 3];
        let view = WithInsert {
            base: &base,
            at: 2,
            owner: 9,
        };
        let got: Vec<u32> = (0..view.len()).map(|i| view.owner(i)).collect();
        assert_eq!(got, vec![0, 1, 9, 2, 3]);
    }
}
