//! Keys, records and bundles for the tests, and a raw tar writer that can write what ours never would.
use std::io::{Read, Write};

use stella_evidence::bundle::ProfileDigest;
use stella_evidence::{
    BundleHeader, BundleSummary, BundleWriter, Compression, RecordFacts, Signal, SigningKey, TrustStore, Window,
};

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

/// One tar entry as written, free of every rule a well-formed bundle follows.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub entry_type: u8,
    pub declared_size: u64,
    pub data: Vec<u8>,
}

impl RawEntry {
    pub fn file(name: &str, data: &[u8]) -> RawEntry {
        RawEntry {
            name: name.as_bytes().to_vec(),
            entry_type: b'0',
            declared_size: data.len() as u64,
            data: data.to_vec(),
        }
    }

    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.name).unwrap()
    }
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut tar).unwrap();
    tar
}

pub fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(tar).unwrap();
    encoder.finish().unwrap()
}

/// The entries of a gzip bundle.
pub fn entries(bundle: &[u8]) -> Vec<RawEntry> {
    let tar = gunzip(bundle);
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap().raw(true) {
        let mut entry = entry.unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let name = entry.path_bytes().to_vec();
        let entry_type = entry.header().entry_type().as_byte();
        entries.push(RawEntry { name, entry_type, declared_size: data.len() as u64, data });
    }
    entries
}

/// A tar of `entries` exactly as given (names unchecked, sizes as declared, data as is).
pub fn tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..entry.name.len()].copy_from_slice(&entry.name);
        header.set_size(entry.declared_size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::new(entry.entry_type));
        if entry.entry_type == b'2' {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&entry.data);
        bytes.resize(bytes.len().next_multiple_of(512), 0);
    }
    bytes.extend_from_slice(&[0; 1024]);
    bytes
}

/// The sample bundle with its entries changed by `change`, gzip again.
pub fn rebuilt(change: impl FnOnce(&mut Vec<RawEntry>)) -> Vec<u8> {
    let mut entries = entries(&bundle());
    change(&mut entries);
    gzip(&tar(&entries))
}

pub fn position(entries: &[RawEntry], name: &str) -> usize {
    entries.iter().position(|entry| entry.name() == name).unwrap()
}
