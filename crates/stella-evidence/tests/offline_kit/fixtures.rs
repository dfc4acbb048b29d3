//! Keys, kit files and kits for the tests.
use std::path::Path;

use stella_evidence::offline_kit::{self, KitFile, KitSource, KitSummary};
use stella_evidence::{BundleError, Compression, KitTrust, Limits, SigningKey, TrustStore, VerifiedKit, verify_kit};

pub use crate::raw_tar::*;

pub fn key() -> SigningKey {
    SigningKey::from_ed25519_seed(&[2; 32])
}

pub fn trust() -> TrustStore {
    TrustStore::from_iter([key().trusted_key()])
}

/// Deterministic bytes that do not compress (an xorshift stream), different per seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The "binary": larger than one copy chunk (256 KiB), so it is streamed in several pieces.
pub fn binary() -> Vec<u8> {
    noise(7, 300 * 1024)
}

pub fn bytes(path: &str, content: &[u8], executable: bool) -> KitFile {
    KitFile { path: path.into(), source: KitSource::Bytes(content.to_vec()), executable }
}

/// The sample kit's files, the binary as a file source under `dir`; unsorted on purpose.
pub fn files(dir: &Path) -> Vec<KitFile> {
    let binary_path = dir.join("stella");
    std::fs::write(&binary_path, binary()).unwrap();
    vec![
        bytes("config/default.yaml.dsse.json", b"{\"payloadType\":\"...\"}", false),
        KitFile { path: "bin/stella".into(), source: KitSource::File(binary_path), executable: true },
        bytes("INSTRUCTIONS.md", b"# Installing Stella offline\n", false),
        bytes("bootstrap/install.sh", b"#!/bin/sh\nset -eu\n", true),
        bytes("empty.txt", b"", false),
    ]
}

/// The kit's paths in archive order.
pub const PATHS: [&str; 5] =
    ["INSTRUCTIONS.md", "bin/stella", "bootstrap/install.sh", "config/default.yaml.dsse.json", "empty.txt"];

pub fn build_kit(compression: Compression) -> (Vec<u8>, KitSummary) {
    let dir = tempfile::tempdir().unwrap();
    build_files(files(dir.path()), &key(), compression)
}

pub fn build_files(files: Vec<KitFile>, key: &SigningKey, compression: Compression) -> (Vec<u8>, KitSummary) {
    let mut kit = Vec::new();
    let summary = offline_kit::build(files, key, compression, &mut kit).unwrap();
    (kit, summary)
}

/// The sample kit, gzip.
pub fn kit() -> Vec<u8> {
    build_kit(Compression::Gzip).0
}

/// The sample kit with its entries changed by `change`, gzip again.
pub fn rebuilt(change: impl FnOnce(&mut Vec<RawEntry>)) -> Vec<u8> {
    let mut entries = entries(&kit());
    change(&mut entries);
    gzip(&tar(&entries))
}

pub fn verify(kit: &[u8]) -> Result<VerifiedKit, BundleError> {
    verify_kit(kit, &KitTrust::kit_only(&trust()), &Limits::default())
}
