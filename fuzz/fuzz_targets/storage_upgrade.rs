#![no_main]
//! Fuzz target: see `quorra_fuzz::storage_upgrade`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| quorra_fuzz::storage_upgrade(data));
