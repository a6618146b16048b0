//! The opaque causal context returned by reads and passed back on writes.
//!
//! To a client a context is just bytes: it stores them next to the values it
//! read and hands them back unchanged with the write that replaces those
//! values. Only nodes decode it, and they validate it on the way in: a
//! context that does not decode is rejected with a clear error, never
//! trusted. An empty context means "I have seen nothing".

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Causal context from a read, opaque to clients.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Context(Bytes);

impl Context {
    /// The empty context: the write is concurrent with everything stored.
    pub fn empty() -> Self {
        Self(Bytes::new())
    }

    /// A context from bytes previously obtained from [`Context::as_bytes`].
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    /// The raw bytes, for storing or sending.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Whether this is the empty context.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Context({} bytes)", self.0.len())
    }
}
