#![no_main]
//! See `sluice::fuzz::config`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzz::config(data));
