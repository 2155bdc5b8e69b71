#![no_main]
//! cargo fuzz run json_patch — see twinscene_core_fuzz::json_patch for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| twinscene_core_fuzz::json_patch(data));
