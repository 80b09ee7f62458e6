#![no_main]
//! See `sluice::fuzz::body`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzz::body(data));
