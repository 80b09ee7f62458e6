#![no_main]
//! See `sluice::fuzz::json_schema_compat`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzz::json_schema_compat(data));
