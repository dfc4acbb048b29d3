//! Archives built to attack the reader: each is refused with a coded error, without panicking and without
//! reading more than the signed manifest declares.
use std::io::{self, Read, Write};

use stella_evidence::dsse::Envelope;
use stella_evidence::file_set::PathProblem;
use stella_evidence::payload_types::BUNDLE_MANIFEST;
use stella_evidence::{BundleError, ErrorClass, Limits, verify_bundle};

use crate::fixtures::*;

fn verify(bundle: &[u8]) -> BundleError {
    verify_bundle(bundle, &trust(), &Limits::default()).unwrap_err()
}

fn malformed(bundle: &[u8]) -> BundleError {
    let error = verify(bundle);
    assert_eq!(error.class(), ErrorClass::Malformed, "{error}");
    assert_eq!((error.code(), error.exit_code()), ("bundle.malformed", 14));
    error
}

fn with_first(entry: RawEntry) -> Vec<u8> {
    rebuilt(|entries| entries.insert(0, entry))
}

#[test]
fn traversal_and_absolute_paths_are_refused() {
    let error = malformed(&with_first(RawEntry::file("../x", b"owned")));
    assert!(matches!(error, BundleError::UnsafePath { problem: PathProblem::Traversal, .. }), "{error}");
    let error = malformed(&with_first(RawEntry::file("/etc/cron.d/x", b"owned")));
    assert!(matches!(error, BundleError::UnsafePath { problem: PathProblem::Absolute, .. }), "{error}");
    let mut not_utf8 = RawEntry::file("x", b"");
    not_utf8.name = vec![b'o', 0xff];
    let error = malformed(&with_first(not_utf8));
    assert!(matches!(error, BundleError::UnsafePath { problem: PathProblem::NotUtf8, .. }), "{error}");
}

#[test]
fn links_directories_devices_and_extension_headers_are_refused() {
    for entry_type in [b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'L', b'K', b'x', b'g', b'S'] {
        let bundle = rebuilt(|entries| {
            let traces = position(entries, "otlp/traces.pb");
            entries[traces].entry_type = entry_type;
        });
        let error = malformed(&bundle);
        assert!(matches!(error, BundleError::NotRegularFile { .. }), "{}: {error}", char::from(entry_type));
    }
}

#[test]
fn an_extension_header_of_enormous_size_is_refused_without_reading_it() {
    let long_name = RawEntry {
        name: b"././@LongLink".to_vec(),
        entry_type: b'L',
        mode: 0o644,
        declared_size: 1 << 40,
        data: vec![b'a'; 512],
    };
    let error = malformed(&with_first(long_name));
    assert!(matches!(error, BundleError::NotRegularFile { entry_type: b'L', .. }), "{error}");
}

#[test]
fn duplicate_unknown_undeclared_and_unsorted_entries_are_refused() {
    let duplicate = rebuilt(|entries| {
        let envelope = entries[0].clone();
        entries.insert(1, envelope);
    });
    assert!(matches!(malformed(&duplicate), BundleError::DuplicateEntry { .. }));

    let unknown = rebuilt(|entries| entries.push(RawEntry::file("zzz", b"extra")));
    assert!(matches!(malformed(&unknown), BundleError::UnexpectedEntry { name } if name == "zzz"));

    let undeclared = rebuilt(|entries| {
        let traces = position(entries, "otlp/traces.pb");
        entries.insert(traces, RawEntry::file("otlp/metrics.pb", b"\0\0\0\0"));
    });
    assert!(matches!(malformed(&undeclared), BundleError::UnexpectedEntry { name } if name == "otlp/metrics.pb"));

    let unsorted = rebuilt(|entries| entries.swap(2, 3));
    assert!(matches!(malformed(&unsorted), BundleError::OutOfOrder { .. }));

    let manifest_first = rebuilt(|entries| entries.swap(0, 1));
    assert!(matches!(malformed(&manifest_first), BundleError::MissingEntry { name } if name == "manifest.dsse.json"));
}

#[test]
fn huge_declared_sizes_are_refused_before_reading() {
    let huge_envelope = rebuilt(|entries| entries[0].declared_size = 1 << 40);
    assert!(matches!(malformed(&huge_envelope), BundleError::EntryTooLarge { size: 1099511627776, .. }));
    let over_limit = rebuilt(|entries| {
        entries[1].declared_size = 17 * 1024 * 1024;
        entries[1].data.resize(17 * 1024 * 1024, b' ');
    });
    assert!(matches!(malformed(&over_limit), BundleError::EntryTooLarge { .. }));

    let huge_payload = rebuilt(|entries| {
        let traces = position(entries, "otlp/traces.pb");
        entries[traces].declared_size = 1 << 40;
    });
    let error = verify(&huge_payload);
    assert!(matches!(error, BundleError::SizeMismatch { actual: 1099511627776, .. }), "{error}");
}

/// Counts the compressed bytes the verifier consumes.
struct Counting<'a> {
    inner: &'a [u8],
    read: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.read += read;
        Ok(read)
    }
}

/// The sample bundle's envelope and manifest, then a `otlp/traces.pb` header claiming `size` bytes.
fn metadata_then_payload_header(size: u64) -> Vec<u8> {
    let entries = entries(&bundle());
    let mut prefix = tar(&entries[..2]);
    prefix.truncate(prefix.len() - 1024);
    let mut payload = entries[position(&entries, "otlp/traces.pb")].clone();
    payload.declared_size = size;
    payload.data.clear();
    let mut header = tar(&[payload]);
    header.truncate(512);
    prefix.extend_from_slice(&header);
    prefix
}

#[test]
fn a_zstd_bomb_in_a_payload_entry_is_refused_at_its_header() {
    // 100 GiB of zeros in about 2 MB: one frame of 1 MiB of zeros, repeated (zstd reads frames back to back).
    let prefix = metadata_then_payload_header(100 << 30);
    let mut bomb = zstd::encode_all(prefix.as_slice(), 1).unwrap();
    let zeros = zstd::encode_all(io::repeat(0).take(1 << 20), 1).unwrap();
    for _ in 0..(100 * 1024) {
        bomb.extend_from_slice(&zeros);
    }
    let mut counting = Counting { inner: &bomb, read: 0 };
    let error = verify_bundle(&mut counting, &trust(), &Limits::default()).unwrap_err();
    assert!(matches!(error, BundleError::SizeMismatch { .. }), "{error}");
    assert!(counting.read < bomb.len() / 4, "read {} of {} compressed bytes", counting.read, bomb.len());
}

#[test]
fn a_gzip_bomb_in_a_payload_entry_is_refused_at_its_header() {
    let mut tar = metadata_then_payload_header(64 << 20);
    tar.resize(tar.len() + (64 << 20), 0);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&tar).unwrap();
    let error = verify(&encoder.finish().unwrap());
    assert!(matches!(error, BundleError::SizeMismatch { .. }), "{error}");
}

#[test]
fn truncated_archives_are_malformed() {
    for compression in [stella_evidence::Compression::Gzip, stella_evidence::Compression::Zstd] {
        let (bundle, _) = write(&records(), compression);
        for cut in [1, 10, bundle.len() / 4, bundle.len() / 2, bundle.len() * 3 / 4] {
            malformed(&bundle[..cut]);
        }
    }
    let tar = gunzip(&bundle());
    for cut in [0, 100, 600, 1500, tar.len() - 1100] {
        malformed(&gzip(&tar[..cut]));
    }
}

#[test]
fn garbage_is_not_a_bundle() {
    assert!(matches!(malformed(b"hello, I am not a bundle"), BundleError::UnknownCompression));
    assert!(matches!(malformed(&gzip(&[0x55; 4096])), BundleError::Archive { .. }));
    let mut zstd_garbage = vec![0x28, 0xb5, 0x2f, 0xfd];
    zstd_garbage.extend_from_slice(&[0xaa; 64]);
    assert!(matches!(malformed(&zstd_garbage), BundleError::Archive { .. }));
    assert!(matches!(malformed(&gzip(&[])), BundleError::MissingEntry { .. }));
}

#[test]
fn a_trusted_but_inconsistent_manifest_is_refused() {
    for (from, to) in [
        ("\"path\":\"otlp/logs.pb\"", "\"path\":\"../../etc/passwd\""),
        ("\"format_version\":1", "\"format_version\":2"),
    ] {
        let bundle = rebuilt(|entries| {
            let manifest = position(entries, "manifest.json");
            let text = String::from_utf8(entries[manifest].data.clone()).unwrap();
            assert!(text.contains(from));
            let changed = text.replace(from, to);
            let envelope = Envelope::sign(BUNDLE_MANIFEST, changed.as_bytes(), &key());
            entries[manifest] = RawEntry::file("manifest.json", changed.as_bytes());
            entries[0] = RawEntry::file("manifest.dsse.json", &envelope.to_json());
        });
        let error = malformed(&bundle);
        assert!(
            matches!(error, BundleError::InvalidManifest { .. } | BundleError::UnsupportedFormat { version: 2 }),
            "{error}"
        );
    }
}
