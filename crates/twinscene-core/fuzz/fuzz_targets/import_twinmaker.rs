#![no_main]
//! cargo fuzz run import_twinmaker — see twinscene_core_fuzz::import_twinmaker for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| twinscene_core_fuzz::import_twinmaker(data));
