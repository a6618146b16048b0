//! The keyspace seen from one node: the `DBSIZE` estimate and the expiry
//! sweeper, both by walking this node's own copies in its store.
//!
//! **`DBSIZE` is an estimate.** Counting every key would mean asking every
//! node; instead the node counts the live keys (not deleted, not expired)
//! in the partitions it replicates, taken spread over the ring, until it
//! has counted [`SAMPLE_KEYS`] keys or read them all, and scales by the
//! share of partitions counted. Keys are hashed evenly over partitions, so
//! with more keys than that the estimate is within a few percent; with
//! fewer, every partition the node replicates is counted, which is exact
//! when the node replicates every partition (N ≥ the number of nodes).
//! A replica that missed writes counts less until it is repaired. `INFO
//! keyspace` reports the same estimate and how many partitions it counted.
//!
//! **The sweeper** purges expired keys in the background. Expired values
//! already read as absent everywhere; the sweeper turns them into
//! tombstones so they stop taking space. Each node walks the partitions
//! it is the *first* primary of (so one node sweeps each partition), and
//! for each key whose latest value has expired sends a purge update: the
//! coordinating primary reads the key at quorum, merges what it got into
//! its own copy, checks expiry again there and writes a tombstone covering
//! exactly what it then holds, which replicates, is repaired by
//! anti-entropy like any delete, and is purged after its grace. The read
//! matters: a tombstone of only the coordinator's copy would leave an older
//! sibling it had missed, which the expired value was hiding, and that
//! value would show again. A value written meanwhile is not covered and
//! survives; an expired value a replica still holds stays hidden.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use quorra_client::{Consistency, Request};
use quorra_ring::PartitionId;
use tokio::sync::watch;
use tracing::{debug, info};

use super::gateway::{Gateway, wall_ms};
use super::update::{Answer, Op, Update, visible};
use crate::storage::Store;

/// Keys the `DBSIZE` estimate counts before it extrapolates.
pub const SAMPLE_KEYS: u64 = 5_000;

/// Keys read from the store per step of a walk.
const SCAN_BATCH: usize = 256;

/// What a walk of some partitions found.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    /// Live keys in the whole cluster, estimated.
    pub keys: u64,
    /// Of them, with an expiry.
    pub expires: u64,
    /// Partitions counted.
    pub sampled: usize,
}

/// Live keys and keys with an expiry in `partition`, by this node's copy.
fn count(store: &Store, partition: PartitionId, now_ms: u64) -> (u64, u64) {
    let (mut keys, mut expires) = (0, 0);
    let mut after: Option<Vec<u8>> = None;
    loop {
        let Ok(batch) = store.scan_partition(partition, after.as_deref(), SCAN_BATCH) else {
            return (keys, expires);
        };
        for (_, object) in &batch {
            let values: Vec<Bytes> = object.live_values().cloned().collect();
            if let Some(v) = visible(&values, now_ms) {
                keys += 1;
                expires += u64::from(v.expires_at_ms.is_some());
            }
        }
        if batch.len() < SCAN_BATCH {
            return (keys, expires);
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
}

/// The partitions `node` replicates (`first_only`: of which it is the
/// first primary), from the gateway's routing table.
async fn partitions_of(gateway: &Gateway, first_only: bool) -> Option<(u32, Vec<PartitionId>)> {
    let table = gateway.routing().await?;
    let me = table
        .members
        .iter()
        .position(|m| m.id == gateway.facts.node)? as u32;
    let n = table.replicas as usize;
    let mine = (0..table.partitions)
        .filter(|&p| {
            let owners = &table.owners[p as usize * n..(p as usize + 1) * n];
            if first_only {
                owners.first() == Some(&me)
            } else {
                owners.contains(&me)
            }
        })
        .map(PartitionId)
        .collect();
    Some((table.partitions, mine))
}

/// The `DBSIZE` estimate (see the module documentation).
pub async fn estimate(gateway: &Arc<Gateway>) -> Estimate {
    let Some((total, mine)) = partitions_of(gateway, false).await else {
        return Estimate::default();
    };
    if mine.is_empty() {
        return Estimate::default();
    }
    let store = gateway.store.clone();
    let now = wall_ms();
    let (counted, sampled) = tokio::task::spawn_blocking(move || {
        let mut counted = (0, 0);
        let mut sampled = 0;
        for p in spread(&mine) {
            let (keys, expires) = count(&store, p, now);
            counted = (counted.0 + keys, counted.1 + expires);
            sampled += 1;
            if counted.0 >= SAMPLE_KEYS {
                break;
            }
        }
        (counted, sampled)
    })
    .await
    .unwrap_or_default();
    if sampled == 0 {
        return Estimate::default();
    }
    let scale = |n: u64| (n as f64 * f64::from(total) / sampled as f64).round() as u64;
    Estimate {
        keys: scale(counted.0),
        expires: scale(counted.1),
        sampled,
    }
}

/// `partitions` in an order that spreads any prefix over the whole list
/// (bit-reversed indices), so a sample is not one stretch of the ring.
fn spread(partitions: &[PartitionId]) -> impl Iterator<Item = PartitionId> + '_ {
    let n = partitions.len();
    let bits = usize::BITS - n.next_power_of_two().trailing_zeros();
    (0..n.next_power_of_two())
        .map(move |i| {
            if bits == usize::BITS {
                0
            } else {
                i.reverse_bits() >> bits
            }
        })
        .filter(move |&i| i < n)
        .map(move |i| partitions[i])
}

/// Counts of the sweeper, for `INFO`.
#[derive(Debug, Default)]
pub struct SweepStats {
    /// Expired keys the sweeper had purged.
    pub expired_keys: AtomicU64,
    /// Completed walks.
    pub sweeps: AtomicU64,
}

/// Keys of `partition` (after `after`, one batch of a walk) that hold
/// values but show none at `now_ms` (their latest value has expired), and
/// the last key read (`None`: the partition is done). The sweeper's choice,
/// which the simulator's sweepers make too.
pub fn expired_in(
    store: &Store,
    partition: PartitionId,
    after: Option<&[u8]>,
    now_ms: u64,
) -> (Vec<Bytes>, Option<Vec<u8>>) {
    let Ok(batch) = store.scan_partition(partition, after, SCAN_BATCH) else {
        return (Vec::new(), None);
    };
    let expired = batch
        .iter()
        .filter(|(_, object)| {
            let values: Vec<Bytes> = object.live_values().cloned().collect();
            !values.is_empty() && visible(&values, now_ms).is_none()
        })
        .map(|(k, _)| Bytes::copy_from_slice(k))
        .collect();
    let next = (batch.len() == SCAN_BATCH)
        .then(|| batch.last().map(|(k, _)| k.clone()))
        .flatten();
    (expired, next)
}

/// Walks this node's partitions for expired keys every `interval` until
/// `shutdown` is set (see the module documentation).
pub async fn sweep(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let interval = gateway.config.sweep_interval;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let Some((_, mine)) = partitions_of(&gateway, true).await else {
            continue;
        };
        let mut purged = 0u64;
        for partition in mine {
            let mut after: Option<Vec<u8>> = None;
            loop {
                let store = gateway.store.clone();
                let from = after.clone();
                let now = wall_ms();
                let Ok((expired, next)) = tokio::task::spawn_blocking(move || {
                    expired_in(&store, partition, from.as_deref(), now)
                })
                .await
                else {
                    break;
                };
                for key in expired {
                    let update = Update {
                        op: Op::Purge,
                        now_ms: wall_ms(),
                    };
                    let request = Request::Update {
                        key,
                        update: update.encode(),
                        consistency: Consistency::QUORUM,
                    };
                    // A failure is retried by the next walk.
                    let answer = gateway.call(request).await.ok().and_then(|r| r.answer);
                    if answer.as_deref().and_then(Answer::decode) == Some(Answer::Changed(true)) {
                        purged += 1;
                    }
                }
                match next {
                    Some(k) => after = Some(k),
                    None => break,
                }
            }
            if *shutdown.borrow() {
                return;
            }
        }
        gateway.sweep_stats.sweeps.fetch_add(1, Ordering::Relaxed);
        gateway
            .sweep_stats
            .expired_keys
            .fetch_add(purged, Ordering::Relaxed);
        if purged > 0 {
            info!(purged, "expired keys purged");
        } else {
            debug!("expiry sweep found nothing");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_visits_every_partition_once_and_starts_far_apart() {
        for n in [0usize, 1, 2, 5, 64, 341, 1024] {
            let all: Vec<PartitionId> = (0..n as u32).map(PartitionId).collect();
            let mut seen: Vec<u32> = spread(&all).map(|p| p.0).collect();
            if n >= 4 {
                // The first two are half the list apart.
                assert!(
                    seen[1].abs_diff(seen[0]) as usize >= n / 2 - 1,
                    "{n}: {seen:?}"
                );
            }
            seen.sort_unstable();
            assert_eq!(seen, (0..n as u32).collect::<Vec<_>>());
        }
    }
}
