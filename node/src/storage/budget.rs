//! The node's memory budget, and how storage splits it.
//!
//! An operator gives a node one number, `--memory` ([`MemoryBudget`]), and
//! the node sizes what grows with the data from it:
//!
//! | part | share | holds |
//! | --- | --- | --- |
//! | write buffers | [`WRITE_BUFFERS`], fixed | the engine's active memtable and one being flushed |
//! | everything else | [`PROCESS_RESERVE`] and 1/8 of the budget | the process itself (code, runtime, connections), Merkle trees (8.4 KiB per partition replicated), the engine's pinned index and filter blocks (a few bytes per key), requests in flight, the allocator's slack and the caches' own overhead |
//! | object cache | half of what is left | decoded objects the store read or wrote last ([`super::cache`]) |
//! | block cache | the other half | the engine's blocks: keys, small values, blob handles |
//!
//! Why these shares: an object-cache hit saves a whole engine lookup (the
//! memtable, a table's block, a blob read) and a decode, but a cached
//! object costs about 500 bytes more than its key and value; a block-cache
//! hit saves a read and a checksum of a 4 KiB block holding the keys and
//! blob handles of dozens of keys (a million keys of 1 KiB values need
//! about 60 MiB of such blocks), so a modest block cache already holds
//! every key's block and the object cache takes the rest. Equal halves
//! keep both: the split was not tuned further. The write buffers are
//! fixed, not a share: the memtable size is stored with the data when the
//! engine first creates it and cannot change with a later `--memory`.
//!
//! The budget bounds the caches and buffers, which are what grows with the
//! data; the rest of the process (code, stacks, a request's own buffers)
//! is outside it. One bound is fjall's, not ours: writes arriving faster
//! than memtables reach the disk seal up to three more memtables (192 MiB)
//! before fjall makes writers wait for a flush, so a write burst on a slow
//! disk may exceed the budget by that much for as long as it lasts. What a node's resident memory really was under the scale
//! benchmark is in the README, next to the budget it ran with.
//!
//! Measured under the scale benchmark, at 1,000,000 keys of 1 KiB per
//! replica: with an eighth alone for everything else, a node's resident
//! memory peaked at 1,075 MiB on a 1 GiB budget; hence the fixed reserve
//! on top.
//!
//! The default, [`DEFAULT_MEMORY`], is sized for a node that holds far more
//! than fits: 1 GiB, of which 352 MiB of objects and 352 MiB of blocks. A
//! node on a machine of its own should be given most of the machine
//! (leaving the OS page cache room for the engine's files).

use std::fmt;

/// The default budget: 1 GiB.
pub const DEFAULT_MEMORY: u64 = 1 << 30;

/// The smallest budget a node runs with: 256 MiB (the write buffers, the
/// reserve, and 32 MiB of caches).
pub const MIN_MEMORY: u64 = 256 << 20;

/// The engine's memtable: 64 MiB (fjall's default, which its authors
/// recommend for nodes with memory to spare; smaller ones flush more often
/// and make more tables to compact).
pub const MEMTABLE_BYTES: u64 = 64 << 20;

/// Memory held by write buffers: the active memtable and one sealed
/// memtable being flushed.
pub const WRITE_BUFFERS: u64 = 2 * MEMTABLE_BYTES;

/// What the process takes whatever the budget, counted before the
/// budget's eighth for everything else: 64 MiB.
pub const PROCESS_RESERVE: u64 = 64 << 20;

/// How much memory a node's storage may hold; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    bytes: u64,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self {
            bytes: DEFAULT_MEMORY,
        }
    }
}

impl MemoryBudget {
    /// A budget of `bytes`, at least [`MIN_MEMORY`].
    pub fn new(bytes: u64) -> Result<Self, String> {
        if bytes < MIN_MEMORY {
            return Err(format!(
                "a memory budget of {} is too small: a node needs at least {}",
                Bytes(bytes),
                Bytes(MIN_MEMORY)
            ));
        }
        Ok(Self { bytes })
    }

    /// The whole budget, in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// What the two caches share: the budget less the write buffers, the
    /// process reserve and an eighth for everything else.
    fn caches(&self) -> u64 {
        self.bytes - WRITE_BUFFERS - PROCESS_RESERVE - self.bytes / 8
    }

    /// Bytes of the store's object cache.
    pub fn object_cache(&self) -> usize {
        usize::try_from(self.caches() / 2).unwrap_or(usize::MAX)
    }

    /// Bytes of the engine's block cache.
    pub fn block_cache(&self) -> u64 {
        self.caches() - self.caches() / 2
    }
}

/// Parses a size: a number of bytes with an optional unit, `K`, `M`, `G`
/// or `T` (powers of 1024; `KiB`, `MB` and the like mean the same), e.g.
/// `512M`, `2GiB`, `1073741824`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 512M, 2G, 1073741824)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text:?}: unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A byte count for people: `384 MiB`, `1.5 GiB`.
#[derive(Clone, Copy, Debug)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 || value.fract() == 0.0 {
            write!(f, "{value:.0} {}", UNITS[unit])
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_splits_as_the_module_doc_says() {
        let b = MemoryBudget::default();
        assert_eq!(b.object_cache(), 352 << 20);
        assert_eq!(b.block_cache(), 352 << 20);
        let min = MemoryBudget::new(MIN_MEMORY).unwrap();
        assert_eq!(min.object_cache() as u64 + min.block_cache(), 32 << 20);
    }

    #[test]
    fn every_budget_keeps_its_parts_within_it() {
        for mib in [256u64, 300, 1000, 4096, 1 << 20] {
            let b = MemoryBudget::new(mib << 20).unwrap();
            let parts = b.object_cache() as u64 + b.block_cache() + WRITE_BUFFERS;
            assert!(
                parts + PROCESS_RESERVE + b.bytes() / 8 <= b.bytes(),
                "{mib} MiB"
            );
            assert!(b.object_cache() > 0 && b.block_cache() > 0);
        }
        assert!(MemoryBudget::new(MIN_MEMORY - 1).is_err());
    }

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("1073741824"), Ok(1 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size(" 3 gb "), Ok(3 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(Bytes(384 << 20).to_string(), "384 MiB");
        assert_eq!(Bytes(1536 << 20).to_string(), "1.5 GiB");
        assert_eq!(Bytes(100).to_string(), "100 B");
    }
}
