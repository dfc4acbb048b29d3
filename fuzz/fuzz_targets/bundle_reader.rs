//! Arbitrary bytes (as given, and inside a stored gzip stream) through the forensic bundle verifier.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| stella_evidence::fuzzing::bundle_reader(data));
