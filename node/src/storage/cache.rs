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
//! checker in the simulator) has none. Bounded by an estimate of
//! the bytes it holds; past the bound, half of it is dropped at once.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::version::Object;

/// Default size of a store's cache: 64 MiB of keys and values.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Bytes counted per entry on top of its key and values.
const ENTRY_OVERHEAD: usize = 96;

/// Objects by storage key; `None` remembers an absent key.
#[derive(Debug)]
pub struct ObjectCache {
    entries: DashMap<Vec<u8>, (Option<Object>, usize)>,
    bytes: AtomicUsize,
    capacity: usize,
}

fn size(key: &[u8], object: &Option<Object>) -> usize {
    let values: usize = object
        .iter()
        .flat_map(|o| o.values())
        .filter_map(|s| s.value())
        .map(|v| v.len())
        .sum();
    key.len() + values + ENTRY_OVERHEAD
}

impl ObjectCache {
    /// An empty cache holding about `capacity` bytes at most.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: DashMap::new(),
            bytes: AtomicUsize::new(0),
            capacity,
        }
    }

    /// `Some(object or absence)` if `key` is cached.
    pub fn get(&self, key: &[u8]) -> Option<Option<Object>> {
        self.entries.get(key).map(|e| e.value().0.clone())
    }

    /// Remembers what `key` holds now.
    pub fn insert(&self, key: Vec<u8>, object: Option<Object>) {
        let bytes = size(&key, &object);
        if bytes > self.capacity / 8 {
            // Too big to be worth keeping: forget any older copy.
            self.remove(&key);
            return;
        }
        if let Some((_, (_, old))) = self.entries.remove(&key) {
            self.bytes.fetch_sub(old, Ordering::Relaxed);
        }
        self.entries.insert(key, (object, bytes));
        if self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes > self.capacity {
            self.shrink();
        }
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &[u8]) {
        if let Some((_, (_, old))) = self.entries.remove(key) {
            self.bytes.fetch_sub(old, Ordering::Relaxed);
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries.clear();
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// Drops every other entry.
    fn shrink(&self) {
        let mut keep = false;
        self.entries.retain(|_, (_, bytes)| {
            keep = !keep;
            if !keep {
                self.bytes.fetch_sub(*bytes, Ordering::Relaxed);
            }
            keep
        });
    }

    /// Bytes held, by the estimate the bound uses.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}
