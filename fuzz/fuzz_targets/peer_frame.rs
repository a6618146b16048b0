#![no_main]
//! Fuzz target: see `quorra_fuzz::peer_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| quorra_fuzz::peer_frame(data));
