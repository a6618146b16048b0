//! RESP framing properties: whatever the arguments and however the bytes
//! arrive, a request encoded by a client parses back to its arguments.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use quorra_node::resp::codec::parse_request;

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

proptest! {
    #[test]
    fn requests_survive_any_split(
        requests in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6), 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire: Vec<u8> = requests.iter().flat_map(|r| encode(r)).collect();
        let cut = cut.index(wire.len() + 1);
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut got: Vec<Vec<Bytes>> = Vec::new();
        while let Some(r) = parse_request(&mut buf).unwrap() {
            got.push(r);
        }
        buf.extend_from_slice(&wire[cut..]);
        while let Some(r) = parse_request(&mut buf).unwrap() {
            got.push(r);
        }
        prop_assert!(buf.is_empty());
        let want: Vec<Vec<Bytes>> = requests
            .iter()
            .map(|r| r.iter().map(|a| Bytes::copy_from_slice(a)).collect())
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..10 {
            match parse_request(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}
