#![no_main]
//! cargo fuzz run live_message — see twinscene_core_fuzz::live_message for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| twinscene_core_fuzz::live_message(data));
