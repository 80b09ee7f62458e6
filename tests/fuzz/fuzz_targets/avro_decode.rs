#![no_main]
//! See `sluice::fuzz::avro_decode`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzz::avro_decode(data));
