//! The client computes partitions itself (zero-hop routing) with its own
//! copy of the hashing rule; it must agree with the ring's for every key.

use quorra_client::routing::partition_of;
use quorra_ring::Partitioner;

#[test]
fn client_and_ring_agree_on_partitions() {
    for q in [1u32, 2, 64, 1024, 1 << 16] {
        let ring = Partitioner::new(q).unwrap();
        for i in 0..2000u32 {
            let key = match i % 4 {
                0 => format!("user:{i}"),
                1 => format!("{{tag{}}}:{i}", i % 7),
                2 => format!("{{}}{i}"),
                _ => format!("{{unclosed{i}"),
            };
            assert_eq!(
                partition_of(key.as_bytes(), q),
                ring.of_key(key.as_bytes()).0,
                "{key} with Q={q}"
            );
        }
    }
}
