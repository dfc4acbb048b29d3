//! Offline kits that carry a signed release: the release key is checked apart from the kit's, and a
//! release file, its sums or the kit's binary changed by whoever holds only the kit's key is found.
use std::path::Path;

use sha2::{Digest, Sha256};
use stella_evidence::offline_kit::{KitFile, KitSource};
use stella_evidence::release;
use stella_evidence::{BundleError, Compression, ErrorClass, KitTrust, Limits, SigningKey, TrustStore, verify_kit};

use crate::fixtures::{binary, build_files, bytes, files, key, trust};

fn release_key() -> SigningKey {
    SigningKey::from_ed25519_seed(&[41; 32])
}

fn release_trust() -> TrustStore {
    TrustStore::from_iter([release_key().trusted_key()])
}

/// A signed release in `dir`: the binary (the kit fixture's), a package, an SBOM and their sums.
fn write_release(dir: &Path) {
    std::fs::write(dir.join("stella"), binary()).unwrap();
    std::fs::write(dir.join("stella_0.1.0-1_amd64.deb"), b"!<arch>\ndebian-binary").unwrap();
    std::fs::write(dir.join("stella.cdx.json"), br#"{"bomFormat":"CycloneDX"}"#).unwrap();
    let mut sums = String::new();
    for name in ["stella", "stella.cdx.json", "stella_0.1.0-1_amd64.deb"] {
        let digest = hex::encode(Sha256::digest(std::fs::read(dir.join(name)).unwrap()));
        sums.push_str(&format!("{digest}  {name}\n"));
    }
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    release::sign_dir(dir, &release_key()).unwrap();
}

/// The kit's files plus the release's, each read from the release directory unless `replace` gives other
/// bytes for that name.
fn kit_with_release(work: &Path, replace: &[(&str, &[u8])]) -> Vec<u8> {
    let release_dir = work.join("release");
    std::fs::create_dir_all(&release_dir).unwrap();
    write_release(&release_dir);
    let mut kit_files = files(work);
    for entry in std::fs::read_dir(&release_dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let path = format!("release/{name}");
        let file = match replace.iter().find(|(replaced, _)| *replaced == path) {
            Some((_, content)) => bytes(&path, content, false),
            None => KitFile { path, source: KitSource::File(release_dir.join(&name)), executable: false },
        };
        kit_files.push(file);
    }
    build_files(kit_files, &key(), Compression::Gzip).0
}

fn verify_with(kit: &[u8], release: Option<&TrustStore>) -> Result<stella_evidence::VerifiedKit, BundleError> {
    verify_kit(kit, &KitTrust { kit: &trust(), release }, &Limits::default())
}

#[test]
fn a_kit_carrying_a_release_verifies_with_both_keys_and_names_the_release_signer() {
    let work = tempfile::tempdir().unwrap();
    let kit = kit_with_release(work.path(), &[]);
    let verified = verify_with(&kit, Some(&release_trust())).unwrap();
    assert_eq!(verified.release.unwrap().keyid, release_key().keyid());
    assert_eq!(verified.signer.keyid, key().keyid());
    assert_ne!(key().keyid(), release_key().keyid());
}

#[test]
fn a_kit_carrying_a_release_is_refused_without_the_release_key_or_with_the_wrong_one() {
    let work = tempfile::tempdir().unwrap();
    let kit = kit_with_release(work.path(), &[]);
    let error = verify_with(&kit, None).unwrap_err();
    assert!(matches!(error, BundleError::ReleaseNotChecked), "{error}");
    assert_eq!(error.class(), ErrorClass::UntrustedKey);
    // The site's key is not the release key.
    let error = verify_with(&kit, Some(&trust())).unwrap_err();
    assert_eq!(error.class(), ErrorClass::UntrustedKey, "{error}");
}

#[test]
fn a_release_key_given_for_a_kit_without_a_release_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let (kit, _) = build_files(files(work.path()), &key(), Compression::Gzip);
    let error = verify_with(&kit, Some(&release_trust())).unwrap_err();
    assert!(matches!(&error, BundleError::MissingEntry { name } if name == release::KIT_ENVELOPE), "{error}");
}

#[test]
fn a_release_file_swapped_by_the_kit_signer_is_found() {
    // Whoever holds the site's key can sign a kit with any bytes: the release signature still catches a
    // changed package, a changed SBOM, sums rewritten to match, and an unsigned extra file.
    let work = tempfile::tempdir().unwrap();
    let kit = kit_with_release(work.path(), &[("release/stella_0.1.0-1_amd64.deb", b"!<arch>\nevil")]);
    let error = verify_with(&kit, Some(&release_trust())).unwrap_err();
    assert!(
        matches!(&error, BundleError::DigestMismatch { file, .. } if file == "release/stella_0.1.0-1_amd64.deb"),
        "{error}"
    );
    assert_eq!(error.exit_code(), 10);

    let work = tempfile::tempdir().unwrap();
    let kit = kit_with_release(work.path(), &[("release/SHA256SUMS", b"00  stella\n")]);
    let error = verify_with(&kit, Some(&release_trust())).unwrap_err();
    assert_eq!(error.class(), ErrorClass::DigestMismatch, "{error}");

    let work = tempfile::tempdir().unwrap();
    let kit = kit_with_release(work.path(), &[("release/manifest.json", b"{}")]);
    let error = verify_with(&kit, Some(&release_trust())).unwrap_err();
    assert_eq!(error.class(), ErrorClass::DigestMismatch, "the manifest copy must be the signed payload: {error}");

    let work = tempfile::tempdir().unwrap();
    let release_dir = work.path().join("release");
    std::fs::create_dir_all(&release_dir).unwrap();
    write_release(&release_dir);
    let mut kit_files = files(work.path());
    for name in
        ["stella", "stella.cdx.json", "stella_0.1.0-1_amd64.deb", "SHA256SUMS", "manifest.json", "manifest.dsse.json"]
    {
        kit_files.push(KitFile {
            path: format!("release/{name}"),
            source: KitSource::File(release_dir.join(name)),
            executable: false,
        });
    }
    kit_files.push(bytes("release/extra.sh", b"#!/bin/sh\n", false));
    let (kit, _) = build_files(kit_files, &key(), Compression::Gzip);
    let error = verify_with(&kit, Some(&release_trust())).unwrap_err();
    assert!(matches!(&error, BundleError::UnexpectedEntry { name } if name == "release/extra.sh"), "{error}");
}

#[test]
fn a_kit_binary_other_than_the_released_one_is_found() {
    let work = tempfile::tempdir().unwrap();
    let release_dir = work.path().join("release");
    std::fs::create_dir_all(&release_dir).unwrap();
    write_release(&release_dir);
    let mut kit_files: Vec<KitFile> = files(work.path()).into_iter().filter(|file| file.path != "bin/stella").collect();
    kit_files.push(bytes("bin/stella", b"#!/bin/sh\necho not stella\n", true));
    for entry in std::fs::read_dir(&release_dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        kit_files.push(KitFile {
            path: format!("release/{name}"),
            source: KitSource::File(release_dir.join(&name)),
            executable: false,
        });
    }
    let (kit, _) = build_files(kit_files, &key(), Compression::Gzip);
    let error = verify_with(&kit, Some(&release_trust())).unwrap_err();
    assert!(matches!(&error, BundleError::DigestMismatch { file, .. } if file == "bin/stella"), "{error}");
}

#[test]
fn an_oversized_release_file_the_verifier_keeps_in_memory_is_refused_at_its_header() {
    // The release's manifest, envelope and sums are held in memory while the kit is read: each is capped as
    // manifests are, and refused before its bytes are read.
    let work = tempfile::tempdir().unwrap();
    let huge = vec![b'0'; 64 * 1024];
    let kit = kit_with_release(work.path(), &[("release/SHA256SUMS", &huge)]);
    let limits = Limits { max_manifest_bytes: 32 * 1024, ..Limits::default() };
    let trust = KitTrust { kit: &trust(), release: Some(&release_trust()) };
    let error = verify_kit(kit.as_slice(), &trust, &limits).unwrap_err();
    assert!(
        matches!(&error, BundleError::EntryTooLarge { name, size, .. } if name == release::KIT_SUMS && *size == 65_536),
        "{error}"
    );
}
