#![allow(clippy::unwrap_used)]
//! Replays the fuzz corpus (`fuzz/corpus/bundle_reader`) through the fuzz target body, so every saved input
//! (seeds and any crash the fuzzer ever found) keeps being checked by `cargo test`.
//!
//! The seeds are written by the ignored test below:
//! `cargo test -p stella-evidence --test fuzz_corpus -- --ignored write_seed_corpus`.
use std::io::{Read, Write};
use std::path::PathBuf;

use stella_evidence::fuzzing::{bundle_reader, fuzz_signing_key};
use stella_evidence::{
    BundleHeader, BundleWriter, Compression, Limits, RecordFacts, Signal, TrustStore, verify_bundle,
};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/bundle_reader")
}

#[test]
fn the_bundle_reader_corpus_holds_every_invariant() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus()).unwrap_or_else(|error| panic!("{}: {error}", corpus().display())) {
        bundle_reader(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count >= 8, "{count} inputs");
}

#[test]
fn the_valid_seeds_still_verify_so_the_fuzzer_starts_past_the_signature() {
    let trust = TrustStore::from_iter([fuzz_signing_key().trusted_key()]);
    let read = |name: &str| std::fs::read(corpus().join(name)).unwrap();
    for archive in [read("valid.tar.gz"), read("valid.tar.zst"), stored_gzip(&read("valid.tar"))] {
        let verified = verify_bundle(archive.as_slice(), &trust, &Limits::default()).unwrap();
        assert_eq!(verified.manifest.signals, [Signal::Traces, Signal::Metrics, Signal::Logs]);
    }
    let flipped = stored_gzip(&read("digest_mismatch.tar"));
    let error = verify_bundle(flipped.as_slice(), &trust, &Limits::default()).unwrap_err();
    assert_eq!(error.code(), "bundle.digest_mismatch", "{error}");
}

#[test]
fn the_seed_bundles_are_still_written_byte_for_byte() {
    // The committed seeds pin the writer's output: a change to the tar layout shows here. The tar inside is
    // compared, then the compressed bytes, which also depend on the linked compressor: after a deliberate
    // flate2/zstd upgrade, rewrite the seeds with the ignored `write_seed_corpus` test below.
    let read = |name: &str| std::fs::read(corpus().join(name)).unwrap();
    let gzip = seed_bundle(Compression::Gzip);
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gzip.as_slice()).read_to_end(&mut tar).unwrap();
    assert!(tar == read("valid.tar"), "the tar of the seed bundle changed");
    assert!(gzip == read("valid.tar.gz"), "the gzip seed bundle changed (or the compressor did)");
    assert!(
        seed_bundle(Compression::Zstd) == read("valid.tar.zst"),
        "the zstd seed bundle changed (or the compressor did)"
    );
}

fn stored_gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::none());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn seed_bundle(compression: Compression) -> Vec<u8> {
    let header = BundleHeader {
        tenant: "fuzz".into(),
        window: stella_evidence::Window {
            start: "2026-01-01T00:00:00Z".parse().unwrap(),
            end: "2026-01-01T01:00:00Z".parse().unwrap(),
        },
        profile: "forensic".into(),
        redaction_profiles: Vec::new(),
        generator: "stella fuzz seed".into(),
    };
    let spool = tempfile::tempdir().unwrap();
    let mut writer = BundleWriter::new(header, spool.path()).unwrap();
    let facts = RecordFacts { items: 1, min_time_unix_nano: 1, max_time_unix_nano: 2 };
    for (index, signal) in Signal::ALL.into_iter().enumerate() {
        writer.add_record(signal, &[index as u8; 40], facts).unwrap();
        writer.add_record(signal, b"", facts).unwrap();
    }
    writer.add_source_chunk(&"ab".repeat(32)).unwrap();
    let mut archive = Vec::new();
    writer.finish(&fuzz_signing_key(), compression, &mut archive).unwrap();
    archive
}

/// Changes the tar header at `offset` and fixes its checksum.
fn edit_header(tar: &mut [u8], offset: usize, edit: impl FnOnce(&mut tar::Header)) {
    let mut header = tar::Header::from_byte_slice(&tar[offset..offset + 512]).clone();
    edit(&mut header);
    header.set_cksum();
    tar[offset..offset + 512].copy_from_slice(header.as_bytes());
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus/bundle_reader"]
fn write_seed_corpus() {
    let gzip = seed_bundle(Compression::Gzip);
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gzip.as_slice()).read_to_end(&mut tar).unwrap();
    let first_data_block = 512;
    let mut traversal = tar.clone();
    edit_header(&mut traversal, 0, |header| {
        let name = b"../manifest.dsse.json";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
    });
    let mut symlink = tar.clone();
    edit_header(&mut symlink, 0, |header| header.set_entry_type(tar::EntryType::Symlink));
    let mut flipped = tar.clone();
    let last = flipped.len() - 1024 - 512 + 10; // inside the data of the last payload file
    flipped[last] ^= 0xff;
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("valid.tar.gz", gzip.clone()),
        ("valid.tar.zst", seed_bundle(Compression::Zstd)),
        ("valid.tar", tar.clone()),
        ("traversal.tar", traversal),
        ("symlink.tar", symlink),
        ("digest_mismatch.tar", flipped),
        ("truncated.tar.gz", gzip[..gzip.len() / 2].to_vec()),
        ("header_only.tar", tar[..first_data_block].to_vec()),
        ("garbage", b"\x28\xb5\x2f\xfd not really zstd".to_vec()),
    ];
    std::fs::create_dir_all(corpus()).unwrap();
    for (name, bytes) in seeds {
        std::fs::write(corpus().join(name), bytes).unwrap();
    }
}
