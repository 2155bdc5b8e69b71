#![no_main]
//! cargo fuzz run dtdl — see twinscene_core_fuzz::dtdl for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| twinscene_core_fuzz::dtdl(data));
