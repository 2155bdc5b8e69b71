#![no_main]
//! cargo fuzz run expression — see twinscene_core_fuzz::expression for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| twinscene_core_fuzz::expression(data));
