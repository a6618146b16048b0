//! A bounded cache of the objects a store read or wrote last.
//!
//! Measured with redis-benchmark on 3 local nodes (issue 7), 40% of a
//! replica's time went to the storage engine's point lookups (fjall's
//! memtable is a skip list of every recent write: a lookup is a chain of
//! cache misses), and the same cluster on the in-memory engine did 1.3 to
//! 1.6 times the requests. Every read and every write of a key starts with
//! such a lookup (a write merges into what is stored), so the store keeps
//! the last objects it read or wrote, absent keys included, decoded.
//!
//! The cache is an optimisation only, and stays exact by construction:
//! the core changes objects only through [`super::Store::apply`], which
//! updates the cache after the engine accepted the write, on the one
//! thread that writes (the driver's). It lives and dies with its store: a
//! restarted process starts empty, and so does a store whose engine was
//! reopened after a failure ([`super::reopen`]: writes the engine had
//! accepted may be gone); a second `Store` made over the same engine (a
//! checker in the simulator) has none.
//!
//! Bounded by an estimate of the bytes it holds ([`size`]), its share of
//! the node's memory budget ([`super::budget`]). Eviction is quick_cache's
//! CLOCK-Pro, one entry at a time: keys read again stay, keys seen once go
//! first, so a scan (a tree build, a pull) does not flush what requests
//! keep using. (The first version dropped every other entry at once when
//! full, hot or not: with a key space larger than the cache, the hit rate
//! fell to half after every drop.)

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::version::Object;

/// Bytes counted per entry on top of its key and values: the decoded
/// object's allocations, the allocator's rounding and the cache's own
/// slot. Measured (`cargo bench -p quorra-node --bench cache`): with 160
/// here the process grew 2.2x the estimate for 100 B values and 1.3x for
/// 1 KiB ones, about 500 bytes per entry more than counted.
const ENTRY_OVERHEAD: usize = 512;

/// Average entry size the cache's table is first sized for (it grows if
/// entries are smaller).
const TYPICAL_ENTRY: usize = 1024;

/// A cached object (or absence) and its size by [`size`].
#[derive(Clone, Debug)]
struct Entry {
    object: Option<Object>,
    bytes: u64,
}

#[derive(Clone, Copy, Debug)]
struct BySize;

impl Weighter<Vec<u8>, Entry> for BySize {
    fn weight(&self, _key: &Vec<u8>, entry: &Entry) -> u64 {
        entry.bytes
    }
}

/// The bytes an entry counts for: its key, its values and a fixed
/// overhead.
fn size(key: &[u8], object: &Option<Object>) -> usize {
    let values: usize = object
        .iter()
        .flat_map(|o| o.values())
        .filter_map(|s| s.value())
        .map(|v| v.len())
        .sum();
    key.len() + values + ENTRY_OVERHEAD
}

/// Objects by storage key; `None` remembers an absent key.
pub struct ObjectCache {
    entries: Cache<Vec<u8>, Entry, BySize>,
    capacity: usize,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCache")
            .field("entries", &self.entries.len())
            .field("bytes", &self.bytes())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl ObjectCache {
    /// An empty cache holding about `capacity` bytes at most.
    pub fn new(capacity: usize) -> Self {
        let items = (capacity / TYPICAL_ENTRY).max(16);
        Self {
            entries: Cache::with_weighter(items, capacity as u64, BySize),
            capacity,
        }
    }

    /// `Some(object or absence)` if `key` is cached.
    pub fn get(&self, key: &[u8]) -> Option<Option<Object>> {
        self.entries.get(key).map(|e| e.object)
    }

    /// Remembers what `key` holds now.
    pub fn insert(&self, key: Vec<u8>, object: Option<Object>) {
        let bytes = size(&key, &object);
        if bytes > self.capacity / 8 {
            // Too big to be worth keeping: forget any older copy.
            self.remove(&key);
            return;
        }
        self.entries.insert(
            key,
            Entry {
                object,
                bytes: bytes as u64,
            },
        );
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &[u8]) {
        self.entries.remove(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries.clear();
    }

    /// Bytes held, by the estimate the bound uses.
    pub fn bytes(&self) -> usize {
        usize::try_from(self.entries.weight()).unwrap_or(usize::MAX)
    }

    /// The bound on [`ObjectCache::bytes`].
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{Actor, Sibling, VersionVector};
    use quorra_ring::NodeId;

    fn object(len: usize) -> Option<Object> {
        let mut o = Object::new();
        let value = Sibling::Value(bytes::Bytes::from(vec![7u8; len]));
        o.update(&VersionVector::default(), Actor::new(NodeId(1), 1), value)
            .unwrap();
        Some(o)
    }

    #[test]
    fn it_stays_within_its_bound_and_keeps_keys_read_again() {
        let cache = ObjectCache::new(1 << 20);
        // A hot set of 100 keys, read between every cold insert.
        for k in 0..100u32 {
            cache.insert(k.to_be_bytes().to_vec(), object(1000));
        }
        for k in 100..20_000u32 {
            cache.insert(k.to_be_bytes().to_vec(), object(1000));
            let hot = k % 100;
            assert!(
                cache.get(&hot.to_be_bytes()).is_some(),
                "hot key {hot} was evicted"
            );
            assert!(cache.bytes() <= cache.capacity());
        }
        // Far more than fits went through: most cold keys are gone.
        let cold = (100..20_000u32)
            .filter(|k| cache.get(&k.to_be_bytes()).is_some())
            .count();
        assert!(cold < 1000, "{cold} cold keys kept in 1 MiB");
    }

    #[test]
    fn an_entry_too_big_to_keep_replaces_nothing() {
        let cache = ObjectCache::new(64 * 1024);
        cache.insert(b"k".to_vec(), object(10));
        cache.insert(b"k".to_vec(), object(20_000));
        assert!(cache.get(b"k").is_none());
        cache.insert(b"a".to_vec(), None);
        assert_eq!(cache.get(b"a"), Some(None));
    }
}
