#![allow(clippy::unwrap_used)]
//! Replays the config fuzz corpus (`fuzz/corpus/config`) through the fuzz target body.
#[test]
fn the_config_corpus_never_panics_and_errors_have_paths() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        stella_collector::config::fuzz_config(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count >= 4);
    stella_collector::config::fuzz_config(b"api: {tls: {cert_file: /dev/zero, key_file: /dev/zero}}");
}
