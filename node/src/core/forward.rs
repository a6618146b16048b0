//! Forwarding writes to a primary.
//!
//! Writes are coordinated by a primary of the key, so that the dots of a
//! key come from nodes that keep a complete copy of it (see
//! [`crate::version::actor`]). A node that receives a write for a key it is
//! not a primary of forwards the client request to the first primary it
//! believes up and relays the outcome. The primary starts a forwarded
//! request at most once per (sender, request id), however late a duplicate
//! arrives ([`super::dedup`]), and never forwards it again. That record
//! lives in memory, so a forward is addressed to the primary's incarnation
//! (its gossip generation): after a restart, a late copy of a forward the
//! earlier incarnation executed is dropped instead of executed again under
//! a new dot, as Riak's messages to a vnode's old process are. The forwarder waits twice
//! the request timeout: the primary may wait out its own before answering.

use std::time::Duration;

use quorra_client::{Outcome, Request, RequestError};
use quorra_ring::NodeId;

use super::coordinator::{Op, ReplyTo};
use super::messages::{PeerMessage, RequestId};
use super::node::Node;
use tracing::debug;

impl Node {
    pub(super) fn forward(
        &mut self,
        now: Duration,
        reply_to: ReplyTo,
        primary: NodeId,
        request: Request,
    ) {
        self.stats.forwarded += 1;
        let id = self.next_request_id();
        let to = self.peer_incarnations.get(&primary).copied();
        self.send(primary, PeerMessage::Forward { id, to, request });
        let timeout = self.options.request_timeout * 2;
        self.track_for(
            now,
            id,
            Op::Forward {
                reply_to,
                node: primary,
            },
            timeout,
        );
    }

    pub(super) fn on_forward(
        &mut self,
        now: Duration,
        from: NodeId,
        id: RequestId,
        to: Option<u32>,
        request: Request,
    ) {
        if to.is_some_and(|to| to != self.started_as) {
            // The sender's forwarder times out: whether an earlier
            // incarnation executed it is unknown here.
            debug!(
                peer = from.0,
                id,
                ?to,
                me = self.started_as,
                "forward for another incarnation dropped"
            );
            self.stats.stale_forwards += 1;
            return;
        }
        if !self.forwards_seen.first_time(from, id) {
            return;
        }
        self.start_request(now, ReplyTo::Forwarded { node: from, id }, request);
    }

    pub(super) fn on_forward_reply(&mut self, from: NodeId, id: RequestId, outcome: Outcome) {
        let ours = |op: &Op| matches!(op, Op::Forward { node, .. } if *node == from);
        if let Some(Op::Forward { reply_to, .. }) = self.take_op_if(id, ours) {
            self.reply(reply_to, outcome);
        }
    }

    pub(super) fn forward_expired(&mut self, reply_to: ReplyTo, node: NodeId) {
        self.peer_timed_out(node);
        self.reply(
            reply_to,
            Err(RequestError::Unavailable(format!(
                "node {node}, the primary the write was forwarded to, did not answer"
            ))),
        );
    }
}
