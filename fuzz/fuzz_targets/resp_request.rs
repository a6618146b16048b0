#![no_main]
//! Fuzz target: see `quorra_fuzz::resp_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| quorra_fuzz::resp_request(data));
