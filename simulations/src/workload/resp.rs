//! RESP commands on string keys, as the gateway turns them into requests
//! ([`quorra_node::resp::exec`]): `GET` is a get resolved by the gateway's
//! clock; `SET` (plain, `EX`/`PX`, `KEEPTTL`, `NX`, `XX`, `GET`),
//! `EXPIRE`/`PEXPIRE` (also in the past, which deletes), `PERSIST` and
//! `DEL` are updates. Expiries are short (up to [`MAX_TTL`]), so values
//! expire, are swept and purged within a run.
//!
//! A command is drawn first ([`draw`]) and made into a request once its
//! node and arrival time are known ([`request`]): an expiry is an absolute
//! time by the receiving gateway's clock, as in the daemon.

use std::time::Duration;

use bytes::Bytes;
use quorra_client::{Consistency, Request};
use quorra_node::core::ClientTag;
use quorra_node::resp::update::{Op, SetExpiry, Update};
use rand::RngExt;

use crate::history::{Kind, RespOp};
use crate::sim::Sim;
use crate::updater::tagged;

/// Longest expiry a command sets.
pub const MAX_TTL: Duration = Duration::from_secs(3);

/// A command before its gateway's clock is known: expiries are relative.
#[derive(Clone, Debug)]
pub enum Draw {
    /// `GET`.
    Get,
    /// `SET data`, with an expiry in so many ms (`Some`), `KEEPTTL`, or
    /// none, and a condition.
    Set {
        /// The unique string.
        data: Bytes,
        /// `EX`/`PX` in ms.
        ttl_ms: Option<u64>,
        /// `KEEPTTL`.
        keep_ttl: bool,
        /// `XX` / `NX`.
        present: Option<bool>,
        /// `GET`.
        want_old: bool,
    },
    /// `EXPIRE` in so many ms from now (negative: in the past, a delete).
    Expire(i64),
    /// `PERSIST`.
    Persist,
    /// `DEL`.
    Delete,
}

fn ttl(sim: &mut Sim) -> u64 {
    sim.rng.random_range(20..=MAX_TTL.as_millis() as u64)
}

/// Draws a command; `data` is the string a `SET` writes.
pub fn draw(sim: &mut Sim, data: Bytes) -> Draw {
    let set = |ttl_ms, keep_ttl, present, want_old| Draw::Set {
        data: data.clone(),
        ttl_ms,
        keep_ttl,
        present,
        want_old,
    };
    match sim.rng.random_range(0..100) {
        0..30 => Draw::Get,
        30..45 => set(None, false, None, false),
        45..60 => set(Some(ttl(sim)), false, None, false),
        60..65 => set(None, true, None, false),
        65..73 => {
            let present = Some(sim.rng.random_bool(0.5));
            let ttl_ms = sim.rng.random_bool(0.5).then(|| ttl(sim));
            set(ttl_ms, false, present, false)
        }
        73..77 => {
            let ttl_ms = sim.rng.random_bool(0.5).then(|| ttl(sim));
            set(ttl_ms, false, None, true)
        }
        77..85 => {
            let ms = ttl(sim) as i64;
            Draw::Expire(if sim.rng.random_range(0..5) == 0 {
                -ms
            } else {
                ms
            })
        }
        85..90 => Draw::Persist,
        _ => Draw::Delete,
    }
}

/// The request for `draw` on `key`, received when the gateway's clock
/// read `sent_ms`, tagged with `tag` for the updater's log; and its kind
/// for the history.
pub fn request(
    draw: Draw,
    key: Bytes,
    sent_ms: u64,
    tag: ClientTag,
    consistency: Consistency,
) -> (Kind, Request) {
    let op = match draw {
        Draw::Get => {
            let kind = Kind::Resp {
                op: RespOp::Get {
                    shown: None,
                    at_ms: 0,
                },
                sent_ms,
            };
            return (kind, Request::Get { key, consistency });
        }
        Draw::Set {
            data,
            ttl_ms,
            keep_ttl,
            present,
            want_old,
        } => RespOp::Set {
            data,
            expiry: match (ttl_ms, keep_ttl) {
                (Some(ms), _) => SetExpiry::At(sent_ms + ms),
                (None, true) => SetExpiry::Keep,
                (None, false) => SetExpiry::Never,
            },
            present,
            want_old,
        },
        Draw::Expire(ms) => RespOp::Expire(Some(sent_ms.saturating_add_signed(ms))),
        Draw::Persist => RespOp::Expire(None),
        Draw::Delete => RespOp::Delete,
    };
    let update = Update {
        op: as_op(&op),
        now_ms: sent_ms,
    };
    let request = Request::Update {
        key,
        update: tagged(tag, &update.encode()),
        consistency,
    };
    (Kind::Resp { op, sent_ms }, request)
}

/// The gateway's operation for a RESP write.
pub fn as_op(op: &RespOp) -> Op {
    match op {
        RespOp::Set {
            data,
            expiry,
            present,
            want_old,
        } => Op::Set {
            value: data.clone(),
            expiry: *expiry,
            present: *present,
            want_old: *want_old,
        },
        RespOp::Expire(at) => Op::Expire(*at),
        RespOp::Delete => Op::Delete,
        RespOp::Purge => Op::Purge,
        RespOp::Get { .. } => unreachable!("a GET is not an update"),
    }
}
