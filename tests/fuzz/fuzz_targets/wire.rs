#![no_main]
//! See `sluice::fuzz::wire`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzz::wire(data));
