//! OTLP requests (first byte: the signal) through the built-in redaction policies.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| stella_pipeline::redaction::fuzz_redaction(data));
