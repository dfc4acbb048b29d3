use std::collections::BTreeSet;

use sha2::Digest;
use stella_evidence::payload_types::OFFLINE_KIT_MANIFEST;
use stella_evidence::{Compression, KeyKind, KitTrust, Limits, SigningKey, TrustStore, canonical, verify_kit};

use crate::fixtures::*;

const BOTH: [Compression; 2] = [Compression::Gzip, Compression::Zstd];

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_kit_verifies_and_reports_its_files_signer_and_executables() {
    for compression in BOTH {
        let (kit, summary) = build_kit(compression);
        let verified = verify(&kit).unwrap();
        assert_eq!(verified.manifest, summary.manifest);
        assert_eq!(verified.signer, summary.signer);
        assert_eq!(verified.signer.keyid, key().keyid());
        assert!(!verified.signer.integrity_only);
        assert_eq!(summary.archive_sha256, sha256(&kit));
        assert_eq!(summary.archive_bytes, kit.len() as u64);

        let paths: Vec<&str> = verified.manifest.files.iter().map(|file| file.path.as_str()).collect();
        assert_eq!(paths, PATHS);
        let stella = &verified.manifest.files[1];
        assert_eq!((stella.size, stella.sha256.clone()), (binary().len() as u64, sha256(&binary())));
        let empty = &verified.manifest.files[4];
        assert_eq!((empty.size, empty.sha256.clone()), (0, sha256(b"")));
        let executables = BTreeSet::from(["bin/stella".to_string(), "bootstrap/install.sh".to_string()]);
        assert_eq!(verified.executables, executables);
    }
}

#[test]
fn the_same_files_give_the_same_bytes() {
    for compression in BOTH {
        let first = build_kit(compression).0;
        let other_dir = tempfile::tempdir().unwrap();
        let mut reordered = files(other_dir.path());
        reordered.reverse();
        let second = build_files(reordered, &key(), compression).0;
        assert!(first == second, "{compression:?}: same files, other order and source directory");

        let mut changed = files(other_dir.path());
        changed[2] = bytes("INSTRUCTIONS.md", b"# Installing Stella offline!\n", false);
        assert!(build_files(changed, &key(), compression).0 != first);
        let mut not_executable = files(other_dir.path());
        not_executable[3].executable = false;
        assert!(build_files(not_executable, &key(), compression).0 != first, "the mode is part of the bytes");
    }
}

#[test]
fn entries_are_the_manifest_then_the_sorted_files_with_fixed_metadata() {
    let kit = kit();
    let tar = gunzip(&kit);
    let mut names = Vec::new();
    for entry in tar::Archive::new(tar.as_slice()).entries().unwrap().raw(true) {
        let entry = entry.unwrap();
        let header = entry.header();
        let name = String::from_utf8(entry.path_bytes().to_vec()).unwrap();
        assert!(header.entry_type().is_file());
        let mode = if ["bin/stella", "bootstrap/install.sh"].contains(&name.as_str()) { 0o755 } else { 0o644 };
        assert_eq!(header.mode().unwrap(), mode, "{name}");
        assert_eq!((header.uid().unwrap(), header.gid().unwrap(), header.mtime().unwrap()), (0, 0, 0));
        assert_eq!((header.username_bytes(), header.groupname_bytes()), (Some(&b""[..]), Some(&b""[..])));
        names.push(name);
    }
    let mut expected = vec!["manifest.dsse.json", "manifest.json"];
    expected.extend(PATHS);
    assert_eq!(names, expected);

    let entries = entries(&kit);
    assert_eq!(entries[position(&entries, "bin/stella")].data, binary());
    let manifest_json = &entries[1].data;
    let manifest: serde_json::Value = serde_json::from_slice(manifest_json).unwrap();
    assert_eq!(&canonical::to_vec(&manifest).unwrap(), manifest_json, "the manifest is RFC 8785 JSON");
    assert_eq!(manifest["format_version"], 1);
    let envelope: serde_json::Value = serde_json::from_slice(&entries[0].data).unwrap();
    assert_eq!(envelope["payloadType"], OFFLINE_KIT_MANIFEST);
    assert_eq!(envelope["signatures"][0]["keyid"], key().keyid());
}

#[test]
fn an_empty_kit_is_a_signed_manifest_of_no_files() {
    let (kit, summary) = build_files(Vec::new(), &key(), Compression::Zstd);
    let verified = verify(&kit).unwrap();
    assert!(verified.manifest.files.is_empty() && verified.executables.is_empty());
    assert_eq!(verified.manifest, summary.manifest);
}

#[test]
fn an_hmac_signed_kit_is_reported_integrity_only() {
    let key = SigningKey::generate(KeyKind::HmacSha256).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (kit, summary) = build_files(files(dir.path()), &key, Compression::Gzip);
    assert!(summary.signer.integrity_only);
    let verified = verify_kit(
        kit.as_slice(),
        &KitTrust::kit_only(&TrustStore::from_iter([key.trusted_key()])),
        &Limits::default(),
    );
    assert!(verified.unwrap().signer.integrity_only);
}
