//! Moving records written in an earlier storage layout to the current one.
//!
//! Layout 1 kept owned objects under `d` and tombstone marks under `t`, each
//! followed by a 4-byte partition; layout 2 ([`super::layout`]) uses `D`
//! and `T` with 3 bytes. [`upgrade`] runs whenever an engine is opened: it
//! walks the old tags and, in atomic batches, writes each record under its
//! new key and deletes the old one, so a crash half-way leaves every record
//! in exactly one layout and the next start finishes the job. Once done it
//! costs one empty range scan per tag.
//!
//! **Nothing is overwritten.** An older binary started on an upgraded
//! directory (a downgrade, which is not supported) sees none of the moved
//! records and may write new ones under the old tags; when the current
//! binary starts again, an object whose new key is already taken is merged
//! with what is there (version merges lose nothing), not put over it. A
//! layout-1 record that cannot be understood (a key too short, a partition
//! no ring has, an object that does not decode) is left where it is, with a
//! warning naming it: the node starts, and the bytes stay for an operator.
//!
//! Each scan resumes after the last key it saw, so the delete markers left
//! by earlier batches are not walked again; batches are bounded by records
//! and by bytes.
//!
//! The same rule serves an engine that moves its records between its own
//! containers (fjall, when its storage options change: see
//! [`super::fjall_engine`]): [`combine`] merges an object moving onto a key
//! that already holds one.

use std::ops::Bound;

use quorra_ring::{MAX_PARTITIONS, PartitionId};
use tracing::{info, warn};

use super::layout::{data_key, parse_data_key, parse_hint_key, tomb_key};
use super::store::{decode_object, encode_object};
use super::{Engine, StorageError, WriteOp};

/// Layout 1's tag of owned objects.
const LEGACY_DATA: u8 = b'd';
/// Layout 1's tag of tombstone marks.
const LEGACY_TOMB: u8 = b't';

/// Records read per scan.
const BATCH_RECORDS: usize = 256;

/// Bytes of values written per atomic batch, at most (one larger record
/// goes alone).
const BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Moves every layout-1 record to layout 2; returns how many moved (0 on
/// every start after the first).
pub fn upgrade(engine: &dyn Engine) -> Result<u64, StorageError> {
    let mut moved = 0;
    for legacy in [LEGACY_DATA, LEGACY_TOMB] {
        let end = [legacy + 1];
        let mut after: Option<Vec<u8>> = None;
        loop {
            let from = match &after {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Included(&[legacy][..]),
            };
            let found = engine.scan(from, Bound::Excluded(&end), BATCH_RECORDS)?;
            let Some((last, _)) = found.last() else { break };
            after = Some(last.clone());
            let mut ops = Vec::new();
            let mut bytes = 0;
            for (old, value) in found {
                let Some(new) = new_key(legacy, &old) else {
                    warn!(key = ?old, "a layout-1 record with a malformed key is left in place");
                    continue;
                };
                let value = if legacy == LEGACY_DATA {
                    match merged_value(engine, &new, value, &old)? {
                        Some(v) => v,
                        None => continue,
                    }
                } else {
                    value
                };
                if bytes + value.len() > BATCH_BYTES && !ops.is_empty() {
                    engine.write(std::mem::take(&mut ops))?;
                    bytes = 0;
                }
                bytes += value.len();
                ops.push(WriteOp::Put { key: new, value });
                ops.push(WriteOp::Delete { key: old });
                moved += 1;
            }
            if !ops.is_empty() {
                engine.write(ops)?;
            }
        }
    }
    if moved > 0 {
        engine.flush()?;
        info!(records = moved, "storage layout upgraded from 1 to 2");
    }
    Ok(moved)
}

/// The layout-2 key of a layout-1 record, if its key is well formed.
fn new_key(legacy: u8, old: &[u8]) -> Option<Vec<u8>> {
    let [_, p0, a, b, c, key @ ..] = old else {
        return None;
    };
    let partition = u32::from_be_bytes([*p0, *a, *b, *c]);
    if partition >= MAX_PARTITIONS {
        return None;
    }
    let partition = PartitionId(partition);
    Some(if legacy == LEGACY_DATA {
        data_key(partition, key)
    } else {
        tomb_key(partition, key)
    })
}

/// What an object moves as: itself, or merged with an object already
/// under its new key. `None` (with a warning) if either does not decode.
fn merged_value(
    engine: &dyn Engine,
    new: &[u8],
    value: Vec<u8>,
    old: &[u8],
) -> Result<Option<Vec<u8>>, StorageError> {
    let Some(present) = engine.get(new)? else {
        return Ok(Some(value));
    };
    match merge_encoded(new, &present, &value) {
        Ok(merged) => Ok(Some(merged)),
        Err(e) => {
            warn!(key = ?old, error = %e, "a layout-1 object that cannot be merged is left in place");
            Ok(None)
        }
    }
}

/// The encoding of the merge of two encoded objects stored under `key`.
fn merge_encoded(key: &[u8], present: &[u8], moving: &[u8]) -> Result<Vec<u8>, StorageError> {
    let moving = decode_object(moving, || format!("moving record {key:?}"))?;
    let mut there = decode_object(present, || format!("record {key:?}"))?;
    there.merge(&moving);
    encode_object(&there)
}

/// What a record moving onto a key that already holds `present` leaves
/// there: for an owned object or a hint, the merge of both objects (`None`,
/// with a warning, if either does not decode: the moving record then stays
/// where it was); for anything else (tombstone marks, metadata), what is
/// present.
pub fn combine(key: &[u8], present: &[u8], moving: &[u8]) -> Option<Vec<u8>> {
    if parse_data_key(key).is_none() && parse_hint_key(key).is_none() {
        return Some(present.to_vec());
    }
    match merge_encoded(key, present, moving) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            warn!(key = ?key, error = %e, "a record that cannot be merged is left in place");
            None
        }
    }
}
