#![no_main]
//! cargo fuzz run twin_import — see twinscene_core_fuzz::twin_import for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| twinscene_core_fuzz::twin_import(data));
