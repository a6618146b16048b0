#![no_main]
//! Fuzz target: see `quorra_fuzz::stored_record`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| quorra_fuzz::stored_record(data));
