#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| upkeep_fuzz::version(data));
