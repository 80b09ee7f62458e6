#![no_main]
//! See `sluice::fuzz::protobuf_encode`.
libfuzzer_sys::fuzz_target!(init: sluice::fuzz::only_escaping_panics_crash(), |data: &[u8]| sluice::fuzz::protobuf_encode(data));
