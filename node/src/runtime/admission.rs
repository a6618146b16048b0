//! Admission of client requests at the edge: a node under more load than
//! it can serve refuses the excess at once instead of queueing it.
//!
//! The core bounds the requests it coordinates
//! ([`crate::core::Options::max_requests_in_flight`]), but by the time a
//! request reaches the core it may have waited in the driver's inbox
//! behind tens of thousands of others (measured: with 10,000 SDK requests
//! in flight against three nodes, admitted writes waited a median 0.6 to
//! 0.9 s whatever the core's limit, because they queued before it). So the
//! runtime counts a client request from the moment a connection reads it
//! until its answer leaves the driver, and a connection that reads one
//! beyond the limit answers it itself with `Overloaded`: nothing of it was
//! applied, so the client may retry it anywhere. The limit is
//! [`DelayLimit`]'s: the configured count at most, less while the admitted
//! requests wait longer than a fraction of the request timeout. The count
//! is held by a [`Permit`] that travels with the request and gives its
//! place back when dropped, wherever that happens (answered, or lost with
//! a closed inbox), so a count can never leak and shed requests forever;
//! the permit also reports how long its request took, which is what the
//! limit follows.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quorra_client::RequestError;
use quorra_client::protocol::{ClientMessage, NodeMessage, RequestsStatus};

use super::delay_limit::DelayLimit;
use crate::core::options::overloaded;

/// The client requests admitted on this node and not yet answered.
#[derive(Debug)]
pub struct Admission {
    admitted: AtomicUsize,
    /// `delay.limit()`, readable without the lock.
    limit: AtomicUsize,
    delay: Mutex<DelayLimit>,
    /// The origin of the times `delay` is given.
    origin: Instant,
    shed: AtomicU64,
}

/// One admitted request's place; dropping it gives the place back.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    admitted: Instant,
    /// Whether its delay tells the limit anything (see [`Permit::judge`]).
    counted: bool,
}

impl Admission {
    /// Admits at most `ceiling` client requests at a time, fewer while
    /// they take long compared with `request_timeout` (see
    /// [`super::delay_limit`]).
    pub fn new(ceiling: usize, request_timeout: Duration) -> Arc<Self> {
        let delay = DelayLimit::new(ceiling, request_timeout);
        Arc::new(Self {
            admitted: AtomicUsize::new(0),
            limit: AtomicUsize::new(delay.limit()),
            delay: Mutex::new(delay),
            origin: Instant::now(),
            shed: AtomicU64::new(0),
        })
    }

    /// A place for one more request, or the error to answer it with.
    pub fn admit(self: &Arc<Self>) -> Result<Permit, RequestError> {
        let limit = self.limit();
        let admitted = self.admitted.fetch_add(1, Ordering::AcqRel);
        if admitted >= limit {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            self.shed.fetch_add(1, Ordering::Relaxed);
            return Err(overloaded(limit));
        }
        Ok(Permit {
            admission: self.clone(),
            admitted: Instant::now(),
            counted: true,
        })
    }

    /// Whether a request read now would be refused (without taking a
    /// place): lets a connection answer a command that would only be
    /// refused before it starts any work for it.
    pub fn full(&self) -> bool {
        self.admitted.load(Ordering::Acquire) >= self.limit()
    }

    /// What `quorra status` shows of it.
    pub fn status(&self) -> RequestsStatus {
        let delay = self.delay.lock().unwrap_or_else(|e| e.into_inner());
        RequestsStatus {
            admitted: self.admitted() as u64,
            limit: delay.limit() as u64,
            ceiling: delay.ceiling() as u64,
            target_ms: delay.target().as_millis() as u64,
            shed: self.shed(),
        }
    }

    /// Requests admitted at once now, at most.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    /// Counts a request refused without asking [`Self::admit`] (see
    /// [`Self::full`]), and returns the error to answer it with.
    pub fn refuse(&self) -> RequestError {
        self.shed.fetch_add(1, Ordering::Relaxed);
        overloaded(self.limit())
    }

    /// The request admitted at `admitted` was answered; `counted`: its
    /// delay is one the limit follows.
    fn answered(&self, admitted: Instant, counted: bool) {
        let now = Instant::now();
        let in_flight = self.admitted.fetch_sub(1, Ordering::AcqRel) - 1;
        if !counted {
            return;
        }
        let mut delay = self.delay.lock().unwrap_or_else(|e| e.into_inner());
        delay.answered(
            now.duration_since(self.origin),
            now.duration_since(admitted),
            in_flight,
        );
        self.limit.store(delay.limit(), Ordering::Release);
    }

    /// What a connection does with a client message it read: a request
    /// takes a place (`Ok(Some)`) or is answered at once (`Err`, the answer
    /// to send); other questions need none (`Ok(None)`).
    pub fn admit_message(
        self: &Arc<Self>,
        message: &ClientMessage,
    ) -> Result<Option<Permit>, NodeMessage> {
        match message {
            ClientMessage::Request { id, .. } => {
                self.admit().map(Some).map_err(|shed| NodeMessage::Outcome {
                    id: *id,
                    outcome: Err(shed),
                })
            }
            _ => Ok(None),
        }
    }

    /// Requests admitted and not yet answered.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Requests refused so far.
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }
}

impl Permit {
    /// Sets whether the request's delay counts, from its outcome: one
    /// refused or rejected at once (overloaded, invalid, a storage
    /// error) says nothing about how long requests wait, and would make a
    /// queue look short.
    pub fn judge(&mut self, outcome: &quorra_client::Outcome) {
        self.counted = matches!(
            outcome,
            Ok(_) | Err(RequestError::QuorumNotReached { .. } | RequestError::Unavailable(_))
        );
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.answered(self.admitted, self.counted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_the_limit_requests_are_refused_and_places_come_back() {
        let admission = Admission::new(2, Duration::from_secs(2));
        let a = admission.admit().expect("first");
        let b = admission.admit().expect("second");
        assert!(matches!(
            admission.admit(),
            Err(RequestError::Overloaded(m)) if m.contains("nothing of this request was applied")
        ));
        assert_eq!(admission.shed(), 1);
        drop(a);
        let c = admission.admit().expect("a place came back");
        drop((b, c));
        assert_eq!(admission.admitted(), 0);
    }
}
