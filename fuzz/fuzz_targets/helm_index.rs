#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| upkeep_fuzz::helm_index(data));
