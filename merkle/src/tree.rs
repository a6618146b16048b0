//! The tree: segments, branches, root; updates and the diff.

/// Children per interior node.
pub const FANOUT: usize = 32;

/// Interior nodes under the root.
pub const BRANCHES: usize = FANOUT;

/// Leaves (segments) per tree.
pub const SEGMENTS: usize = BRANCHES * FANOUT;

/// The segment of `key`: bits of a blake3 hash of it in its own domain, so
/// keys spread evenly whatever their shape (hashtags included) and
/// independently of the partition, which comes from the plain blake3 hash
/// of the same key (the keys of one partition share those bits).
pub fn segment_of(key: &[u8]) -> u32 {
    let mut h = blake3::Hasher::new_derive_key("quorra merkle segment v1");
    h.update(key);
    let b = *h.finalize().as_bytes();
    (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize % SEGMENTS) as u32
}

/// The leaf hash of `key` holding `version` (its canonical encoding): 64
/// bits of blake3 over both, the key length first so that no (key,
/// version) pair reads as another.
pub fn leaf_hash(key: &[u8], version: &[u8]) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(version);
    first_u64(h.finalize())
}

fn first_u64(h: blake3::Hash) -> u64 {
    let b = h.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// blake3 over a run of child hashes (an interior node).
fn hash_children(children: &[u64]) -> u64 {
    let mut h = blake3::Hasher::new();
    for c in children {
        h.update(&c.to_le_bytes());
    }
    first_u64(h.finalize())
}

/// One replica's tree of one partition. See the crate documentation.
#[derive(Clone, Debug)]
pub struct Tree {
    segments: Vec<u64>,
    branches: Vec<u64>,
    dirty: [bool; BRANCHES],
    root: u64,
    root_dirty: bool,
    keys: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Tree {
    /// Two trees are equal when their segments are: the same key/version
    /// sets, up to hash collisions.
    fn eq(&self, other: &Self) -> bool {
        self.segments == other.segments
    }
}

impl Eq for Tree {}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        let mut tree = Self {
            segments: vec![0; SEGMENTS],
            branches: vec![0; BRANCHES],
            dirty: [true; BRANCHES],
            root: 0,
            root_dirty: true,
            keys: 0,
        };
        tree.root();
        tree
    }

    /// Adds `key` with leaf hash `hash`.
    pub fn insert(&mut self, key: &[u8], hash: u64) {
        self.update(key, None, Some(hash));
    }

    /// Removes `key`, which had leaf hash `hash`.
    pub fn remove(&mut self, key: &[u8], hash: u64) {
        self.update(key, Some(hash), None);
    }

    /// `key` went from `old` to `new` (`None`: absent). O(1) at the leaf,
    /// plus marking its branch and the root dirty.
    pub fn update(&mut self, key: &[u8], old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        let segment = segment_of(key) as usize;
        if let Some(h) = old {
            self.segments[segment] ^= h;
            self.keys = self.keys.saturating_sub(1);
        }
        if let Some(h) = new {
            self.segments[segment] ^= h;
            self.keys += 1;
        }
        self.dirty[segment / FANOUT] = true;
        self.root_dirty = true;
    }

    /// How many keys the tree holds (as counted by inserts and removes).
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// The root hash.
    pub fn root(&mut self) -> u64 {
        if self.root_dirty {
            self.refresh_branches();
            self.root = hash_children(&self.branches);
            self.root_dirty = false;
        }
        self.root
    }

    /// The [`BRANCHES`] interior hashes, in order.
    pub fn branches(&mut self) -> &[u64] {
        self.refresh_branches();
        &self.branches
    }

    /// The [`FANOUT`] segment hashes under `branch`, in order (segment
    /// `branch * FANOUT + i` at index `i`). An out-of-range branch has none.
    pub fn segments_of(&self, branch: usize) -> &[u64] {
        if branch >= BRANCHES {
            return &[];
        }
        &self.segments[branch * FANOUT..(branch + 1) * FANOUT]
    }

    /// The hash of one segment (0 for an out-of-range one).
    pub fn segment(&self, segment: usize) -> u64 {
        self.segments.get(segment).copied().unwrap_or(0)
    }

    fn refresh_branches(&mut self) {
        for b in 0..BRANCHES {
            if self.dirty[b] {
                self.branches[b] = hash_children(&self.segments[b * FANOUT..(b + 1) * FANOUT]);
                self.dirty[b] = false;
            }
        }
    }
}

/// Indices at which two equally long runs of hashes differ. Runs of
/// different lengths differ at every index past the shorter one.
pub fn differing(mine: &[u64], theirs: &[u64]) -> Vec<usize> {
    (0..mine.len().max(theirs.len()))
        .filter(|&i| mine.get(i) != theirs.get(i))
        .collect()
}

/// The segments on which two trees differ, found top-down as an exchange
/// between replicas finds them: roots, then branches, then the segments of
/// differing branches only.
pub fn diff(a: &mut Tree, b: &mut Tree) -> Vec<u32> {
    if a.root() == b.root() {
        return Vec::new();
    }
    let branches = differing(a.branches(), b.branches());
    let mut out = Vec::new();
    for branch in branches {
        for i in differing(a.segments_of(branch), b.segments_of(branch)) {
            out.push((branch * FANOUT + i) as u32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_tree_has_a_stable_root_and_no_keys() {
        let mut a = Tree::new();
        let mut b = Tree::default();
        assert_eq!(a.root(), b.root());
        assert_eq!(a.keys(), 0);
    }

    #[test]
    fn inserting_then_removing_restores_the_root() {
        let mut t = Tree::new();
        let empty = t.root();
        let h = leaf_hash(b"k", b"v1");
        t.insert(b"k", h);
        assert_ne!(t.root(), empty);
        t.remove(b"k", h);
        assert_eq!(t.root(), empty);
        assert_eq!(t.keys(), 0);
    }

    #[test]
    fn an_update_changes_exactly_one_segment() {
        let mut a = Tree::new();
        let mut b = Tree::new();
        for i in 0..500u32 {
            let k = i.to_le_bytes();
            a.insert(&k, leaf_hash(&k, b"v"));
            b.insert(&k, leaf_hash(&k, b"v"));
        }
        let k = 7u32.to_le_bytes();
        b.update(&k, Some(leaf_hash(&k, b"v")), Some(leaf_hash(&k, b"w")));
        assert_eq!(diff(&mut a, &mut b), vec![segment_of(&k)]);
        assert_eq!(b.keys(), 500);
    }

    #[test]
    fn keys_of_one_partition_spread_over_the_segments() {
        // The ring places keys by the plain blake3 hash; keys that share a
        // partition share its leading bits. Segments must not.
        let mut used = std::collections::BTreeSet::new();
        let mut n = 0;
        for i in 0..200_000u32 {
            let key = format!("key-{i:010}");
            let h = blake3::hash(key.as_bytes());
            if h.as_bytes()[0] == 7 && h.as_bytes()[1] < 64 {
                used.insert(segment_of(key.as_bytes()));
                n += 1;
            }
        }
        assert!(n > 150);
        assert!(
            used.len() as f64 > 0.8 * n as f64,
            "{} segments for {n} keys",
            used.len()
        );
    }

    #[test]
    fn leaf_hashes_separate_key_from_version() {
        assert_ne!(leaf_hash(b"ab", b"c"), leaf_hash(b"a", b"bc"));
    }

    #[test]
    fn differing_handles_uneven_runs() {
        assert_eq!(differing(&[1, 2, 3], &[1, 5]), vec![1, 2]);
        assert!(differing(&[], &[]).is_empty());
    }

    #[test]
    fn out_of_range_reads_are_empty() {
        let t = Tree::new();
        assert!(t.segments_of(BRANCHES).is_empty());
        assert_eq!(t.segment(SEGMENTS), 0);
    }
}
