//! What framing costs: encode and decode of typical client frames (a put of
//! a 100-byte value and its answer), in ns per frame, in release mode.
//!
//! ```text
//! cargo bench -p quorra-client --bench wire
//! ```

// A benchmark prints its figures: that is its output, not logging.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use bytes::Bytes;
use quorra_client::protocol::{ClientMessage, NodeMessage};
use quorra_client::{Consistency, Context, Receipt, ReplicaAnswer, Request, Response, wire};

fn main() {
    let request = ClientMessage::Request {
        id: 123_456,
        request: Request::Put {
            key: Bytes::from_static(b"bench:00000000deadbeef"),
            value: Bytes::from(vec![b'x'; 100]),
            context: Context::from_bytes(vec![1u8; 24]),
            consistency: Consistency::QUORUM,
        },
    };
    let answer = NodeMessage::Outcome {
        id: 123_456,
        outcome: Ok(Response {
            values: vec![Bytes::from(vec![b'x'; 100])],
            context: Context::from_bytes(vec![1u8; 24]),
            receipt: Receipt {
                answered: vec![
                    ReplicaAnswer {
                        node: 1,
                        fallback_for: None,
                    },
                    ReplicaAnswer {
                        node: 2,
                        fallback_for: None,
                    },
                ],
            },
            answer: None,
        }),
    };
    let rounds = 1_000_000u32;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        let frame = wire::encode(&request).unwrap();
        bytes += frame.len();
        let back: ClientMessage = wire::decode(&frame[4..]).unwrap();
        std::hint::black_box(back);
    }
    let req = started.elapsed().as_nanos() as f64 / f64::from(rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        let frame = wire::encode(&answer).unwrap();
        let back: NodeMessage = wire::decode(&frame[4..]).unwrap();
        std::hint::black_box(back);
    }
    let ans = started.elapsed().as_nanos() as f64 / f64::from(rounds);
    println!(
        "put request frame: {} bytes, encode+decode {req:.0} ns; answer frame: encode+decode {ans:.0} ns",
        bytes / rounds as usize
    );
}
