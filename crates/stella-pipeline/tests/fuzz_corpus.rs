#![allow(clippy::unwrap_used)]
//! Replays the redaction fuzz corpus (`fuzz/corpus/redaction`: the shared bench payloads, whose e-mails,
//! bearer JWTs and card numbers must all be caught, plus any input the fuzzer saved).
#[test]
fn the_redaction_corpus_leaves_no_detected_secret() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/redaction");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        stella_pipeline::redaction::fuzz_redaction(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count >= 3);
}
