//! OTLP/JSON bodies of every signal through the decoder and back.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| stella_otlp::fuzzing::otlp_json(data));
