//! Protobuf export requests of every signal through the decoder, validator, wire counter and JSON codec.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| stella_otlp::fuzzing::otlp_protobuf(data));
