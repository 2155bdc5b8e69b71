#![no_main]
//! cargo fuzz run import_adt_3dscenes — see twinscene_core_fuzz::import_adt_3dscenes for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| twinscene_core_fuzz::import_adt_3dscenes(data));
