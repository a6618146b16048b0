//! One RESP connection: read, parse, run, answer in order.
//!
//! Everything a read brought in is parsed at once ([`codec::parse_request`]
//! takes requests off the buffer without copying) and run as one batch:
//! commands on different keys run concurrently, each its own task, and
//! their replies are written in request order, so a pipelining client
//! gets the throughput of its whole pipeline. A command that touches a key
//! an earlier command of the batch touches waits for the batch so far to
//! finish, and so does a command that changes the connection itself
//! (`AUTH`, `HELLO`, `QUORRA.CONSISTENCY` ...): the order a client sees is
//! the order it sent. A batch holds at most [`MAX_BATCH`] commands. A data
//! command read while the node admits no more requests is answered
//! `-BUSY` in its place without being started (`exec::refused_early`).
//!
//! Malformed RESP is answered `-ERR Protocol error: ...` and the
//! connection closed, as Redis does; anything a command does wrong is an
//! error reply and the connection goes on.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use quorra_client::Consistency;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, debug_span};

use super::codec::{self, Limits, Protocol, Reply};
use super::command::{self, Command};
use super::exec;
use super::gateway::Gateway;

/// Most commands run at once for one connection; a longer pipeline is run
/// in batches of this many.
pub const MAX_BATCH: usize = 512;

/// What a connection is, for `CLIENT` and `HELLO`.
#[derive(Clone, Debug)]
pub struct Session {
    /// `CLIENT ID`.
    pub id: u64,
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// RESP2 until `HELLO 3`.
    pub protocol: Protocol,
    /// Whether `AUTH` succeeded (or none is needed).
    pub authenticated: bool,
    /// The consistency of its requests (`QUORRA.CONSISTENCY`).
    pub consistency: Consistency,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
}

/// A command of the batch: its reply, or the task computing it.
enum Slot {
    Ready(Reply),
    Running(JoinHandle<Reply>),
    Waiting(Command),
}

/// The commands parsed but not yet answered, in order.
#[derive(Default)]
struct Batch {
    slots: Vec<Slot>,
    keys: HashSet<Bytes>,
}

impl Batch {
    fn conflicts(&self, keys: &[&Bytes]) -> bool {
        keys.iter().any(|k| self.keys.contains(*k))
    }

    /// Runs what waits, and encodes every reply in order into `out`.
    async fn finish(
        &mut self,
        gateway: &Arc<Gateway>,
        consistency: Consistency,
        protocol: Protocol,
        out: &mut Vec<u8>,
    ) {
        self.keys.clear();
        let waiting = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Waiting(_)))
            .count();
        if waiting > 1 {
            // Start them all before awaiting any.
            for slot in &mut self.slots {
                if let Slot::Waiting(_) = slot {
                    let Slot::Waiting(command) = std::mem::replace(slot, Slot::Ready(Reply::Null))
                    else {
                        unreachable!("matched above")
                    };
                    let gateway = gateway.clone();
                    *slot = Slot::Running(tokio::spawn(
                        exec::data(gateway, consistency, command).in_current_span(),
                    ));
                }
            }
        }
        for slot in self.slots.drain(..) {
            let reply = match slot {
                Slot::Ready(reply) => reply,
                Slot::Waiting(command) => exec::data(gateway.clone(), consistency, command).await,
                Slot::Running(task) => task.await.unwrap_or_else(|e| {
                    Reply::error(format!("ERR internal error running the command: {e}"))
                }),
            };
            reply.encode(protocol, out);
        }
    }
}

/// Closes a connection beyond [`super::gateway::MAX_CONNECTIONS`], saying why.
pub(super) async fn refuse(mut stream: tokio::net::TcpStream) {
    let mut out = Vec::new();
    Reply::error("ERR max number of clients reached").encode(Protocol::Resp2, &mut out);
    let _ = stream.write_all(&out).await;
}

/// Serves one connection until the client leaves, sends `QUIT` or breaks
/// the protocol.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    gateway: Arc<Gateway>,
    stream: S,
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let span = debug_span!("resp", client = id, %peer);
    async move {
        debug!("connected");
        let mut session = Session {
            id,
            name: None,
            protocol: Protocol::Resp2,
            authenticated: !gateway.needs_auth(),
            consistency: Consistency::QUORUM,
            peer,
            local,
        };
        let why = run(&gateway, &mut session, stream).await;
        debug!(why, "disconnected");
    }
    .instrument(span)
    .await;
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    gateway: &Arc<Gateway>,
    session: &mut Session,
    mut stream: S,
) -> &'static str {
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut out = Vec::with_capacity(16 * 1024);
    let mut batch = Batch::default();
    loop {
        let mut close = None;
        loop {
            let limits = if session.authenticated {
                Limits::AUTHENTICATED
            } else {
                Limits::UNAUTHENTICATED
            };
            let args = match codec::parse_request_within(&mut input, limits) {
                Ok(Some(args)) => args,
                Ok(None) => break,
                Err(e) => {
                    batch
                        .finish(gateway, session.consistency, session.protocol, &mut out)
                        .await;
                    Reply::error(format!("ERR {e}")).encode(session.protocol, &mut out);
                    close = Some("protocol error");
                    break;
                }
            };
            gateway.commands_total.fetch_add(1, Ordering::Relaxed);
            let command = match command::parse(&args) {
                Ok(c) => c,
                Err(reply) => {
                    batch.slots.push(Slot::Ready(reply));
                    continue;
                }
            };
            if !session.authenticated && !exec::allowed_before_auth(&command) {
                batch.slots.push(Slot::Ready(Reply::Error(
                    "NOAUTH Authentication required.".into(),
                )));
                continue;
            }
            let keys = exec::keys(&command);
            if keys.is_none() {
                // A command about the connection: after everything before it.
                batch
                    .finish(gateway, session.consistency, session.protocol, &mut out)
                    .await;
                let quit = matches!(command, Command::Quit);
                let reply = exec::session(gateway, session, command).await;
                reply.encode(session.protocol, &mut out);
                if quit {
                    close = Some("quit");
                    break;
                }
                continue;
            }
            if let Some(busy) = exec::refused_early(gateway, &command) {
                batch.slots.push(Slot::Ready(busy));
                continue;
            }
            let keys = keys.unwrap_or_default();
            if batch.conflicts(&keys) || batch.slots.len() >= MAX_BATCH {
                batch
                    .finish(gateway, session.consistency, session.protocol, &mut out)
                    .await;
            }
            batch.keys.extend(keys.into_iter().cloned());
            batch.slots.push(Slot::Waiting(command));
        }
        batch
            .finish(gateway, session.consistency, session.protocol, &mut out)
            .await;
        if !out.is_empty() {
            // Flushing matters for TLS, which buffers what it encrypts.
            if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
                return "write failed";
            }
            out.clear();
        }
        if let Some(why) = close {
            let _ = stream.flush().await;
            let _ = stream.shutdown().await;
            return why;
        }
        match stream.read_buf(&mut input).await {
            Ok(0) => return "closed by the client",
            Ok(_) => {}
            Err(_) => return "read failed",
        }
    }
}
