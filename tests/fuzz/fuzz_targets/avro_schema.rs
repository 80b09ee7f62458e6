#![no_main]
//! See `sluice::fuzz::avro_schema`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzz::avro_schema(data));
