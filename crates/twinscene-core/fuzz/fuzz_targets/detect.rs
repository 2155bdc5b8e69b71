#![no_main]
//! cargo fuzz run detect — see twinscene_core_fuzz::detect for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| twinscene_core_fuzz::detect(data));
