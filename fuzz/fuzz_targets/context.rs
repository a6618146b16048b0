#![no_main]
//! Fuzz target: see `quorra_fuzz::context_bytes`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| quorra_fuzz::context_bytes(data));
