//! Config YAML overlaid on the default profile through validation.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| stella_collector::config::fuzz_config(data));
