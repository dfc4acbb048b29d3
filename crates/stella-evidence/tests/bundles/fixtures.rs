//! Keys, records and bundles for the tests, and the raw tar writer that can write what ours never would.
use stella_evidence::bundle::ProfileDigest;
use stella_evidence::{
    BundleHeader, BundleSummary, BundleWriter, Compression, RecordFacts, Signal, SigningKey, TrustStore, Window,
};

pub use crate::raw_tar::*;

pub const START: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

pub fn key() -> SigningKey {
    SigningKey::from_ed25519_seed(&[1; 32])
}

pub fn trust() -> TrustStore {
    TrustStore::from_iter([key().trusted_key()])
}

pub fn header() -> BundleHeader {
    BundleHeader {
        tenant: "acme".into(),
        window: Window { start: "2026-01-01T00:00:00Z".parse().unwrap(), end: "2026-01-02T00:00:00Z".parse().unwrap() },
        profile: "forensic".into(),
        redaction_profiles: vec![ProfileDigest::of("strict", b"strict rules"), ProfileDigest::of("default", b"rules")],
        generator: "stella 0.1.0".into(),
    }
}

/// Bytes shaped like an OTLP request (tags, lengths, repeated attribute strings), different per index.
pub fn record(index: usize, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        bytes.extend_from_slice(b"\x0a\x10service.name\x12\x08checkout\x1a\x08");
        bytes.extend_from_slice(&(index as u64).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Three traces records and two logs records, with their facts.
pub fn records() -> Vec<(Signal, Vec<u8>, RecordFacts)> {
    let facts =
        |items, min, max| RecordFacts { items, min_time_unix_nano: START + min, max_time_unix_nano: START + max };
    vec![
        (Signal::Traces, record(0, 300), facts(4, 50, 90)),
        (Signal::Logs, record(1, 120), facts(2, 10, 20)),
        (Signal::Traces, record(2, 0), facts(0, 60, 60)),
        (Signal::Traces, record(3, 2000), facts(7, 5, 500)),
        (Signal::Logs, record(4, 64), facts(1, 700, 700)),
    ]
}

pub fn write(records: &[(Signal, Vec<u8>, RecordFacts)], compression: Compression) -> (Vec<u8>, BundleSummary) {
    write_with(header(), records, &["bb".repeat(32), "aa".repeat(32), "bb".repeat(32)], &key(), compression)
}

pub fn write_with(
    header: BundleHeader,
    records: &[(Signal, Vec<u8>, RecordFacts)],
    chunks: &[String],
    key: &SigningKey,
    compression: Compression,
) -> (Vec<u8>, BundleSummary) {
    let spool = tempfile::tempdir().unwrap();
    let mut writer = BundleWriter::new(header, spool.path()).unwrap();
    for (signal, bytes, facts) in records {
        writer.add_record(*signal, bytes, *facts).unwrap();
    }
    for chunk in chunks {
        writer.add_source_chunk(chunk).unwrap();
    }
    let mut archive = Vec::new();
    let summary = writer.finish(key, compression, &mut archive).unwrap();
    (archive, summary)
}

/// The sample bundle, gzip.
pub fn bundle() -> Vec<u8> {
    write(&records(), Compression::Gzip).0
}

/// The sample bundle with its entries changed by `change`, gzip again.
pub fn rebuilt(change: impl FnOnce(&mut Vec<RawEntry>)) -> Vec<u8> {
    let mut entries = entries(&bundle());
    change(&mut entries);
    gzip(&tar(&entries))
}
