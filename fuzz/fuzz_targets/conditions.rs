#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| qmoi_fuzz::conditions(data));
