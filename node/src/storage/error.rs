//! Errors of the storage layer.

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// Keys must not be empty.
    #[error("empty key")]
    EmptyKey,
    /// Key above [`quorra_client::MAX_KEY_LEN`].
    #[error("key is {len} bytes; the limit is {max}")]
    KeyTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value above [`quorra_client::MAX_VALUE_LEN`], or a key's siblings
    /// together above [`super::MAX_RECORD_LEN`].
    #[error("value is {len} bytes; the limit is {max}")]
    ValueTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The engine failed (I/O error, full disk, poisoned after a failed
    /// fsync). The message is the engine's own.
    #[error("{engine} storage failed: {message}")]
    Engine {
        /// Which engine.
        engine: &'static str,
        /// What it said.
        message: String,
    },
    /// Stored bytes that do not decode: disk corruption or a bug.
    #[error("corrupt record {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why it does not decode.
        reason: String,
    },
}

impl StorageError {
    pub(crate) fn engine(engine: &'static str, error: impl std::fmt::Display) -> Self {
        StorageError::Engine {
            engine,
            message: error.to_string(),
        }
    }
}
