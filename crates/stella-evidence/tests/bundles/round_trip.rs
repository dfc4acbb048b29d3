use std::collections::BTreeSet;

use sha2::Digest;
use stella_evidence::bundle::{TimeRange, Totals, payload_path};
use stella_evidence::{
    BundleReader, BundleWriter, Compression, KeyKind, Limits, RecordFacts, Signal, SigningKey, TrustStore, WriteError,
    canonical, verify_bundle,
};

use crate::fixtures::*;

const BOTH: [Compression; 2] = [Compression::Gzip, Compression::Zstd];

#[test]
fn a_bundle_verifies_and_reports_what_it_holds() {
    for compression in BOTH {
        let (archive, summary) = write(&records(), compression);
        let verified = verify_bundle(archive.as_slice(), &trust(), &Limits::default()).unwrap();
        assert_eq!(verified.manifest, summary.manifest);
        assert_eq!(verified.signer, summary.signer);
        assert_eq!(verified.manifest_sha256, summary.manifest_sha256);
        assert_eq!(summary.archive_sha256, hex::encode(sha2::Sha256::digest(&archive)));
        assert_eq!(summary.archive_bytes, archive.len() as u64);

        let manifest = &verified.manifest;
        assert_eq!((manifest.tenant.as_str(), manifest.profile.as_str()), ("acme", "forensic"));
        assert_eq!(manifest.window, header().window);
        assert_eq!(manifest.signals, [Signal::Traces, Signal::Logs], "only signals with records, in signal order");
        let traces = manifest.file(Signal::Traces).unwrap();
        assert_eq!((traces.path.as_str(), traces.records, traces.items, traces.size), ("otlp/traces.pb", 3, 11, 2312));
        assert_eq!(traces.time_range, TimeRange { min_time_unix_nano: START + 5, max_time_unix_nano: START + 500 });
        let logs = manifest.file(Signal::Logs).unwrap();
        assert_eq!((logs.records, logs.items, logs.size), (2, 3, 192));
        assert_eq!(manifest.file(Signal::Metrics), None);
        assert_eq!(manifest.totals, Totals { records: 5, items: 14, bytes: 2504 });
        assert_eq!(
            manifest.time_range,
            Some(TimeRange { min_time_unix_nano: START + 5, max_time_unix_nano: START + 700 })
        );
        assert_eq!(manifest.source_chunks, ["aa".repeat(32), "bb".repeat(32)], "sorted, without repeats");
        let profile_names: Vec<_> = manifest.redaction_profiles.iter().map(|profile| profile.name.as_str()).collect();
        assert_eq!(profile_names, ["default", "strict"]);
        assert_eq!(manifest.generator, "stella 0.1.0");
        assert_eq!(verified.signer.keyid, key().keyid());
        assert!(!verified.signer.integrity_only);
    }
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    for compression in BOTH {
        let first = write(&records(), compression).0;
        let mut reordered_header = header();
        reordered_header.redaction_profiles.reverse();
        let chunks = ["aa".repeat(32), "bb".repeat(32)];
        let second = write_with(reordered_header, &records(), &chunks, &key(), compression).0;
        assert_eq!(first, second, "{compression:?}");
        let other_records = write(&records()[1..], compression).0;
        assert_ne!(first, other_records);
    }
}

#[test]
fn entries_are_sorted_regular_files_with_fixed_metadata() {
    let archive = bundle();
    let tar = gunzip(&archive);
    let mut names = Vec::new();
    for entry in tar::Archive::new(tar.as_slice()).entries().unwrap().raw(true) {
        let entry = entry.unwrap();
        let header = entry.header();
        assert!(header.entry_type().is_file());
        assert_eq!((header.mode().unwrap(), header.uid().unwrap(), header.gid().unwrap()), (0o644, 0, 0));
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        names.push(String::from_utf8(entry.path_bytes().to_vec()).unwrap());
    }
    assert_eq!(names, ["manifest.dsse.json", "manifest.json", "otlp/logs.pb", "otlp/traces.pb"]);
}

#[test]
fn the_manifest_is_canonical_json_without_a_clock() {
    let entries = entries(&bundle());
    let manifest_json = &entries[position(&entries, "manifest.json")].data;
    let value: serde_json::Value = serde_json::from_slice(manifest_json).unwrap();
    assert_eq!(&canonical::to_vec(&value).unwrap(), manifest_json);
    let keys: BTreeSet<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    let expected = [
        "files",
        "format_version",
        "generator",
        "profile",
        "redaction_profiles",
        "signals",
        "source_chunks",
        "tenant",
        "time_range",
        "totals",
        "window",
    ];
    assert_eq!(keys, BTreeSet::from(expected));
    assert_eq!(value["time_range"]["min_time_unix_nano"], "1767225600000000005", "nanoseconds as strings");
    assert_eq!(value["window"]["start"], "2026-01-01T00:00:00Z");
    assert_eq!(value["files"][0]["path"], "otlp/logs.pb");
    let envelope: serde_json::Value =
        serde_json::from_slice(&entries[position(&entries, "manifest.dsse.json")].data).unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.stellaops.telemetry.bundle.manifest+json");
    assert_eq!(envelope["signatures"][0]["keyid"], key().keyid());
}

#[test]
fn payload_files_hold_the_records_framed_and_unchanged() {
    let entries = entries(&bundle());
    let logs = &entries[position(&entries, payload_path(Signal::Logs))].data;
    let mut expected = Vec::new();
    for (_, bytes, _) in records().iter().filter(|(signal, _, _)| *signal == Signal::Logs) {
        expected.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        expected.extend_from_slice(bytes);
    }
    assert_eq!(logs, &expected);
}

#[test]
fn records_come_back_in_order_after_verification() {
    for compression in BOTH {
        let (archive, _) = write(&records(), compression);
        let spool = tempfile::tempdir().unwrap();
        let mut reader = BundleReader::open(archive.as_slice(), &trust(), &Limits::default(), spool.path()).unwrap();
        assert_eq!(reader.verified().manifest.totals.records, 5);
        for signal in Signal::ALL {
            let read: Vec<Vec<u8>> = reader.records(signal).unwrap().map(Result::unwrap).collect();
            let expected: Vec<Vec<u8>> =
                records().into_iter().filter(|(of, _, _)| *of == signal).map(|(_, bytes, _)| bytes).collect();
            assert_eq!(read, expected, "{signal}");
        }
        assert_eq!(reader.records(Signal::Traces).unwrap().count(), 3, "records can be read again");
    }
}

#[test]
fn an_empty_window_gives_a_signed_bundle_without_payload_files() {
    let (archive, summary) = write(&[], Compression::Zstd);
    let verified = verify_bundle(archive.as_slice(), &trust(), &Limits::default()).unwrap();
    assert!(verified.manifest.signals.is_empty() && verified.manifest.files.is_empty());
    assert_eq!(verified.manifest.time_range, None);
    assert_eq!(verified.manifest.totals, Totals::default());
    assert_eq!(verified.manifest, summary.manifest);
}

#[test]
fn an_hmac_signed_bundle_is_reported_integrity_only() {
    let key = SigningKey::generate(KeyKind::HmacSha256).unwrap();
    let (archive, summary) = write_with(header(), &records(), &[], &key, Compression::Gzip);
    assert!(summary.signer.integrity_only);
    let trust = TrustStore::from_iter([key.trusted_key()]);
    let verified = verify_bundle(archive.as_slice(), &trust, &Limits::default()).unwrap();
    assert!(verified.signer.integrity_only);
    assert_eq!(verified.signer.keyid, key.keyid());
}

#[test]
fn the_writer_refuses_what_it_cannot_state_truthfully() {
    let mut backwards = header();
    std::mem::swap(&mut backwards.window.start, &mut backwards.window.end);
    assert!(matches!(BundleWriter::new(backwards, "."), Err(WriteError::InvalidWindow { .. })));

    let spool = tempfile::tempdir().unwrap();
    let mut writer = BundleWriter::new(header(), spool.path()).unwrap();
    let error = writer.add_source_chunk("ABC").unwrap_err();
    assert_eq!(error.code(), "bundle.write.invalid_digest");
    assert!(writer.add_source_chunk(&"AA".repeat(32)).is_err(), "uppercase hex is refused");
    let inverted = RecordFacts { items: 1, min_time_unix_nano: 2, max_time_unix_nano: 1 };
    assert!(matches!(writer.add_record(Signal::Logs, b"x", inverted), Err(WriteError::InvalidRecordTimes { .. })));
    let too_large = vec![0; stella_evidence::bundle::MAX_RECORD_BYTES as usize + 1];
    assert!(matches!(
        writer.add_record(Signal::Logs, &too_large, RecordFacts::default()),
        Err(WriteError::RecordTooLarge { .. })
    ));

    let missing_dir = spool.path().join("missing");
    let mut writer = BundleWriter::new(header(), &missing_dir).unwrap();
    let error = writer.add_record(Signal::Logs, b"x", RecordFacts::default()).unwrap_err();
    assert!(error.to_string().contains(&missing_dir.display().to_string()), "{error}");
}
