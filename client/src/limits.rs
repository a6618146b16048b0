//! Size limits every node enforces, and every client can check up front.
//!
//! Keys are small and hashed on every request; values travel whole in one
//! message. Requests above these limits fail with a typed error naming the
//! limit; they never reach storage.

/// Largest key, in bytes: 64 KiB less 64 bytes that storage keeps for its
/// own key prefixes (fjall, the default engine, takes keys up to 65,535
/// bytes). Empty keys are rejected too.
pub const MAX_KEY_LEN: usize = 64 * 1024 - 64;

/// Largest value, in bytes (16 MiB).
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;
