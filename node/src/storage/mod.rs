//! Storage: engines behind one synchronous trait, group commit, and the
//! typed store the node core uses.
//!
//! ## The engine trait
//!
//! An [`Engine`] is an ordered byte map with atomic batches, range scans and
//! an explicit **flush**. Writes are applied (visible to reads) at once and
//! numbered with a log sequence number ([`Lsn`]); they become *durable* only
//! when a later [`Engine::flush`] returns, and [`Engine::durable_lsn`] says
//! how far that is. This is what group commit needs: apply a batch of
//! writes, flush once, then release every acknowledgement that waited for an
//! LSN up to the flushed one ([`commit`]). Methods take `&self`, so a driver
//! may flush on one thread while the core applies the next batch on another.
//!
//! ## Engines and what their flush guarantees ([`Durability`])
//!
//! - [`fjall_engine`] (default): an LSM tree with a write-ahead journal;
//!   flush is `fdatasync` of the journal. Survives power loss.
//! - [`sled_engine`]: sled 0.34, which the design card names. Its flush is
//!   `sync_file_range` on Linux, which writes the data out but does not flush
//!   file metadata or the drive's cache: it survives a process crash, *not*
//!   necessarily a power loss, whatever sled's documentation says. Its
//!   [`Engine::sync_all`] adds an fsync of every file, for the few records
//!   that must survive power loss on every engine (a node's incarnation and
//!   identity: see [`crate::core::node`]).
//! - [`memory`]: a `BTreeMap`, for the simulator and a cache mode. Nothing
//!   survives the process; the simulator's crash model rolls it back to its
//!   last flush.
//!
//! The default is fjall: it really syncs, and measured here it is also the
//! faster of the two at durable group commit (figures in the foundation
//! issue's note, from `cargo bench -p quorra-node --bench storage`).
//!
//! ## Layout ([`layout`]) and the typed store ([`store`])
//!
//! One ordered keyspace holds owned data (by partition, then key), hints
//! (by target node, partition, key) and node metadata, under distinct
//! prefixes, so one atomic batch can touch all three and a partition's keys
//! are one range scan. [`store::Store`] encodes objects, enforces the size
//! limits and never panics on bad bytes: corrupt records are typed errors.
//!
//! Limits: keys up to [`quorra_client::MAX_KEY_LEN`] (64 KiB), each value up
//! to [`quorra_client::MAX_VALUE_LEN`] (16 MiB), all siblings of a key
//! together up to [`MAX_RECORD_LEN`] (64 MiB).

pub mod budget;
pub mod cache;
pub mod commit;
mod error;
pub mod fjall_engine;
mod journal_sync;
pub mod layout;
mod lsn;
pub mod memory;
pub mod reopen;
pub mod sled_engine;
pub mod store;
pub mod upgrade;

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

pub use budget::MemoryBudget;
pub use commit::{GroupCommit, SyncMode};
pub use error::StorageError;
pub use store::Store;

/// Largest stored record of one key (all its siblings and their history), in
/// bytes: 64 MiB, room for a few maximum-size siblings.
pub const MAX_RECORD_LEN: usize = 64 * 1024 * 1024;

/// A log sequence number: the n-th write batch applied since the engine was
/// opened. 0 means "nothing".
pub type Lsn = u64;

/// One key-value pair read from an engine.
pub type Pair = (Vec<u8>, Vec<u8>);

/// What a successful [`Engine::flush`] protects against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Data is `fdatasync`ed: survives process crash and power loss.
    Fsync,
    /// Data is handed to the OS: survives a process crash, may be lost on
    /// power loss or kernel crash.
    OsBuffers,
    /// Data lives in process memory: lost when the process ends.
    Memory,
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Fsync => "fsync (survives power loss)",
            Durability::OsBuffers => "OS buffers (survives a process crash, not power loss)",
            Durability::Memory => "memory (lost when the process ends)",
        })
    }
}

/// One operation of an atomic batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` (no error if absent).
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

/// An ordered byte map with atomic batches and explicit durability.
pub trait Engine: Send + Sync {
    /// The engine's name, for logs and errors.
    fn name(&self) -> &'static str;

    /// What a successful flush protects against.
    fn durability(&self) -> Durability;

    /// The value of `key`, if any (applied writes included, durable or not).
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Applies `ops` atomically, in order, and returns their LSN. The writes
    /// are visible at once and durable once a flush returns an LSN at least
    /// this large.
    fn write(&self, ops: Vec<WriteOp>) -> Result<Lsn, StorageError>;

    /// Up to `limit` pairs with keys in the range, in key order.
    fn scan(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>, StorageError>;

    /// Makes every write applied before the call durable (as far as
    /// [`Engine::durability`] goes) and returns the LSN now durable.
    fn flush(&self) -> Result<Lsn, StorageError>;

    /// Like [`Engine::flush`], but the writes also survive a power loss,
    /// whatever [`Engine::durability`] says: for the records whose loss a
    /// node could not notice and that must never go back (its incarnation
    /// and identity). The default is the flush itself, for engines whose
    /// flush is an fsync (fjall) or that keep nothing anyway (memory);
    /// sled, whose flush is `sync_file_range`, also fsyncs its files.
    fn sync_all(&self) -> Result<Lsn, StorageError> {
        self.flush()
    }

    /// The highest LSN known durable.
    fn durable_lsn(&self) -> Lsn;

    /// The highest LSN applied.
    fn applied_lsn(&self) -> Lsn;
}

/// Whether the range `(from, to)` is empty because its start lies after its
/// end. Engines answer such scans with nothing rather than panicking, as
/// some ordered maps would.
pub(crate) fn inverted(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    use Bound::{Excluded, Included};
    match (from, to) {
        (Included(a), Included(b)) => a > b,
        (Included(a) | Excluded(a), Excluded(b)) | (Excluded(a), Included(b)) => a >= b,
        _ => false,
    }
}

/// The engines a node can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// fjall: LSM tree, fdatasync on flush (default).
    #[default]
    Fjall,
    /// sled: flush by sync_file_range.
    Sled,
    /// In memory only: a cache; everything is lost when the node stops.
    Memory,
}

impl EngineKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EngineKind; 3] = [EngineKind::Fjall, EngineKind::Sled, EngineKind::Memory];

    /// The name used on the command line and in config files.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Fjall => "fjall",
            EngineKind::Sled => "sled",
            EngineKind::Memory => "memory",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EngineKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown storage engine {s:?}; expected fjall, sled or memory"))
    }
}

/// Opens (or creates) an engine of `kind` in `dir` (ignored for memory),
/// with its records in the current layout ([`upgrade`]) and the block cache
/// of the default memory budget.
pub fn open_engine(kind: EngineKind, dir: &Path) -> Result<Arc<dyn Engine>, StorageError> {
    open_engine_with(kind, dir, MemoryBudget::default().block_cache())
}

/// [`open_engine`] with a block cache of `block_cache` bytes (the engine's
/// share of a [`MemoryBudget`]; the memory engine has none).
pub fn open_engine_with(
    kind: EngineKind,
    dir: &Path,
    block_cache: u64,
) -> Result<Arc<dyn Engine>, StorageError> {
    let engine: Arc<dyn Engine> = match kind {
        EngineKind::Fjall => Arc::new(fjall_engine::FjallEngine::open(
            dir,
            block_cache,
            &upgrade::combine,
        )?),
        EngineKind::Sled => Arc::new(sled_engine::SledEngine::open(dir, block_cache)?),
        EngineKind::Memory => Arc::new(memory::MemoryEngine::new()),
    };
    upgrade::upgrade(engine.as_ref())?;
    Ok(engine)
}
