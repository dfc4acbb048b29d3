//! Signed releases: what `scripts/release.sh` publishes (the `stella` binary, the Debian package, the
//! CycloneDX SBOM and `SHA256SUMS`), listed with their digests in `manifest.json` and signed with the
//! **release key** as [`RELEASE_MANIFEST`](crate::payload_types::RELEASE_MANIFEST) in `manifest.dsse.json`
//! beside them.
//!
//! The release key is the publisher's: it says which build this is. A site's own key (configs, bundles,
//! offline kits) says the site chose to ship it. An offline kit carries a release under [`KIT_DIR`], and
//! `offline-kit verify` checks it against the release key as well ([`check_in_kit`]): the release's
//! signature, every release file against the release manifest, `SHA256SUMS` against the manifest, and the
//! kit's `bin/stella` against the released binary.
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::Path;

use crate::dsse::Signer;
use crate::file_set::{
    ENVELOPE_FILE, FileDigest, FileSetBuilder, FileSetManifest, FileSetVerifier, MANIFEST_FILE, SignedManifest,
    sign_manifest,
};
use crate::keys::{SigningKey, TrustStore};
use crate::payload_types::RELEASE_MANIFEST;
use crate::{BundleError, WriteError};

/// The released binary's name in a release directory.
pub const BINARY: &str = "stella";
/// The checksum file of a release, in `sha256sum` format.
pub const SUMS_FILE: &str = "SHA256SUMS";
/// Where an offline kit carries the release (its files, `manifest.json`, `manifest.dsse.json`).
pub const KIT_DIR: &str = "release";
/// Where an offline kit carries the binary it installs.
pub const KIT_BINARY: &str = "bin/stella";
/// The release's envelope in an offline kit: a kit carries a release when it holds this file.
pub const KIT_ENVELOPE: &str = "release/manifest.dsse.json";
/// The release's manifest in an offline kit.
pub const KIT_MANIFEST: &str = "release/manifest.json";
/// The release's checksums in an offline kit.
pub const KIT_SUMS: &str = "release/SHA256SUMS";

/// Signs the release in `dir`: every regular file directly in it (not `manifest.json` or
/// `manifest.dsse.json`, which are then written beside them). Refuses a directory without the binary or
/// `SHA256SUMS`, a `SHA256SUMS` that disagrees with the files, and anything but regular files.
pub fn sign_dir(dir: &Path, key: &SigningKey) -> Result<SignedManifest, WriteError> {
    let mut set = FileSetBuilder::default();
    let mut sums = None;
    for name in files(dir).map_err(crate::error::write_io("list the release directory"))? {
        let path = dir.join(&name);
        let file = File::open(&path).map_err(|source| WriteError::ReadSource {
            name: name.clone(),
            origin: Some(path.clone()),
            source,
        })?;
        set.add_reader(&name, file)?;
        if name == SUMS_FILE {
            sums = Some(fs::read(&path).map_err(crate::error::write_io("read SHA256SUMS"))?);
        }
    }
    let manifest = set.into_manifest();
    check_release(&manifest, sums.as_deref())
        .map_err(|error| WriteError::InconsistentRelease { reason: error.to_string() })?;
    let signed = sign_manifest(&manifest, RELEASE_MANIFEST, key)?;
    let write = |name: &str, bytes: &[u8]| {
        fs::write(dir.join(name), bytes).map_err(crate::error::write_io("write the release manifest"))
    };
    write(MANIFEST_FILE, &signed.manifest_json)?;
    write(ENVELOPE_FILE, &signed.envelope_json)?;
    Ok(signed)
}

/// Verifies the release in `dir` against `trust`: the signature, payload type and key, every declared file,
/// no file the release does not declare, and `SHA256SUMS` against the manifest.
pub fn verify_dir(dir: &Path, trust: &TrustStore) -> Result<(FileSetManifest, Signer), BundleError> {
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => BundleError::MissingEntry { name: name.to_string() },
            _ => BundleError::Read { file: path, source },
        })
    };
    let envelope = read(ENVELOPE_FILE)?;
    let manifest_json = read(MANIFEST_FILE)?;
    let verifier = FileSetVerifier::open(&envelope, Some(&manifest_json), trust, RELEASE_MANIFEST)?;
    let names = files(dir).map_err(|source| BundleError::Read { file: dir.to_path_buf(), source })?;
    if let Some(extra) = names.iter().find(|name| !verifier.manifest().files.iter().any(|file| &file.path == *name)) {
        return Err(BundleError::UnexpectedEntry { name: extra.clone() });
    }
    let verified = verifier.check_dir(dir)?;
    let sums = read(SUMS_FILE)?;
    check_release(&verified.manifest, Some(&sums))?;
    Ok((verified.manifest, verified.signer))
}

/// The release inside an offline kit, as read while the kit was verified.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KitRelease {
    /// `release/manifest.dsse.json`.
    pub envelope_json: Vec<u8>,
    /// `release/manifest.json`.
    pub manifest_json: Vec<u8>,
    /// `release/SHA256SUMS`.
    pub sums: Vec<u8>,
}

impl KitRelease {
    /// The kit paths whose bytes [`check_in_kit`] needs (all small: kept while the kit is read).
    pub const KEPT: [&'static str; 3] = [KIT_ENVELOPE, KIT_MANIFEST, KIT_SUMS];

    /// Keeps the bytes of the kit file `path` when it is one of [`KEPT`](Self::KEPT).
    pub fn keep(&mut self, path: &str, bytes: &[u8]) {
        let slot = match path {
            KIT_ENVELOPE => &mut self.envelope_json,
            KIT_MANIFEST => &mut self.manifest_json,
            KIT_SUMS => &mut self.sums,
            _ => return,
        };
        slot.extend_from_slice(bytes);
    }
}

/// Checks the release a verified kit carries (`kit` is the kit's verified manifest, so the digests it
/// gives are those of the bytes read): the release signature against `trust`; each release file present
/// under [`KIT_DIR`] with the release's digest and size, and nothing else there; `SHA256SUMS` agreeing;
/// the kit's `bin/stella` being the released binary. Returns the release's signer.
pub fn check_in_kit(kit: &FileSetManifest, release: &KitRelease, trust: &TrustStore) -> Result<Signer, BundleError> {
    let verifier =
        FileSetVerifier::open(&release.envelope_json, Some(&release.manifest_json), trust, RELEASE_MANIFEST)?;
    let signed = verifier.manifest();
    let in_kit: BTreeMap<&str, &FileDigest> = kit
        .files
        .iter()
        .filter_map(|file| file.path.strip_prefix("release/").map(|name| (name, file)))
        .filter(|(name, _)| *name != MANIFEST_FILE && *name != ENVELOPE_FILE)
        .collect();
    for file in &signed.files {
        let name = format!("{KIT_DIR}/{}", file.path);
        let Some(carried) = in_kit.get(file.path.as_str()) else {
            return Err(BundleError::MissingEntry { name });
        };
        same_content(&name, carried, file)?;
    }
    if let Some(extra) = in_kit.keys().find(|name| !signed.files.iter().any(|file| file.path == **name)) {
        return Err(BundleError::UnexpectedEntry { name: format!("{KIT_DIR}/{extra}") });
    }
    check_release(signed, Some(&release.sums))?;
    let binary = signed.files.iter().find(|file| file.path == BINARY);
    let kit_binary = kit.files.iter().find(|file| file.path == KIT_BINARY);
    if let (Some(released), Some(shipped)) = (binary, kit_binary) {
        same_content(KIT_BINARY, shipped, released)?;
    }
    Ok(verifier.signer().clone())
}

/// Refuses `actual` unless it has the digest and size of the signed `expected`.
fn same_content(name: &str, actual: &FileDigest, expected: &FileDigest) -> Result<(), BundleError> {
    if actual.sha256 != expected.sha256 {
        return Err(BundleError::DigestMismatch {
            file: name.to_string(),
            actual: actual.sha256.clone(),
            expected: expected.sha256.clone(),
        });
    }
    if actual.size != expected.size {
        return Err(BundleError::SizeMismatch { file: name.to_string(), actual: actual.size, expected: expected.size });
    }
    Ok(())
}

/// A release holds the binary and `SHA256SUMS`, and `SHA256SUMS` (`<hex>  <name>` lines) lists every
/// other file of the release with the manifest's digest, once.
fn check_release(manifest: &FileSetManifest, sums: Option<&[u8]>) -> Result<(), BundleError> {
    let declared: BTreeMap<&str, &str> =
        manifest.files.iter().map(|file| (file.path.as_str(), file.sha256.as_str())).collect();
    for needed in [BINARY, SUMS_FILE] {
        if !declared.contains_key(needed) {
            return Err(BundleError::MissingEntry { name: needed.to_string() });
        }
    }
    let Some(sums) = sums else { return Err(BundleError::MissingEntry { name: SUMS_FILE.to_string() }) };
    let invalid = |reason: String| BundleError::InconsistentSums { reason };
    let text = std::str::from_utf8(sums).map_err(|_| invalid("not UTF-8".to_string()))?;
    let mut listed = BTreeMap::new();
    for (number, line) in text.lines().enumerate().map(|(index, line)| (index + 1, line)) {
        let Some((digest, name)) = line.split_once("  ").or_else(|| line.split_once(" *")) else {
            return Err(invalid(format!("line {number} is not `<sha256>  <file>`")));
        };
        let Some(expected) = declared.get(name).filter(|_| name != SUMS_FILE) else {
            return Err(invalid(format!("line {number} names {name:?}, which the release does not hold")));
        };
        if digest != *expected {
            return Err(BundleError::DigestMismatch {
                file: format!("{SUMS_FILE} line {number} ({name})"),
                actual: digest.to_string(),
                expected: expected.to_string(),
            });
        }
        if listed.insert(name, number).is_some() {
            return Err(invalid(format!("line {number} lists {name:?} again")));
        }
    }
    if let Some(missing) = declared.keys().find(|name| **name != SUMS_FILE && !listed.contains_key(*name)) {
        return Err(invalid(format!("{missing:?} is not listed")));
    }
    Ok(())
}

/// The names of the release's files in `dir`, sorted: every entry but the manifest and its envelope; a
/// directory, link or other non-regular file is refused (a release is flat).
pub fn files(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().into_string().map_err(|name| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: a release file name must be UTF-8", name.to_string_lossy()),
            )
        })?;
        if name == MANIFEST_FILE || name == ENVELOPE_FILE {
            continue;
        }
        if !entry.file_type()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: a release directory holds only regular files"),
            ));
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::ErrorClass;

    fn key() -> SigningKey {
        SigningKey::from_ed25519_seed(&[3; 32])
    }

    fn trust() -> TrustStore {
        TrustStore::from_iter([key().trusted_key()])
    }

    /// A release directory with a binary, a package and their sums (unsigned).
    fn release_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("stella"), b"\x7fELF binary").unwrap();
        fs::write(dir.path().join("stella.deb"), b"!<arch>\n").unwrap();
        write_sums(dir.path(), &["stella", "stella.deb"]);
        dir
    }

    fn write_sums(dir: &Path, names: &[&str]) {
        let lines: String = names
            .iter()
            .map(|name| format!("{}  {name}\n", hex::encode(Sha256::digest(fs::read(dir.join(name)).unwrap()))))
            .collect();
        fs::write(dir.join(SUMS_FILE), lines).unwrap();
    }

    #[test]
    fn a_signed_release_verifies_and_lists_every_file() {
        let dir = release_dir();
        let signed = sign_dir(dir.path(), &key()).unwrap();
        let (manifest, signer) = verify_dir(dir.path(), &trust()).unwrap();
        assert_eq!(signer, signed.signer);
        let paths: Vec<&str> = manifest.files.iter().map(|file| file.path.as_str()).collect();
        assert_eq!(paths, ["SHA256SUMS", "stella", "stella.deb"]);
    }

    #[test]
    fn a_changed_file_an_unsigned_file_and_a_foreign_key_are_refused() {
        let dir = release_dir();
        sign_dir(dir.path(), &key()).unwrap();
        fs::write(dir.path().join("stella.deb"), b"!<arch>\nX").unwrap();
        assert_eq!(verify_dir(dir.path(), &trust()).unwrap_err().class(), ErrorClass::DigestMismatch);

        let dir = release_dir();
        sign_dir(dir.path(), &key()).unwrap();
        fs::write(dir.path().join("install-me.sh"), b"#!/bin/sh\n").unwrap();
        let error = verify_dir(dir.path(), &trust()).unwrap_err();
        assert!(matches!(&error, BundleError::UnexpectedEntry { name } if name == "install-me.sh"), "{error}");

        let dir = release_dir();
        sign_dir(dir.path(), &key()).unwrap();
        let other = TrustStore::from_iter([SigningKey::from_ed25519_seed(&[4; 32]).trusted_key()]);
        assert_eq!(verify_dir(dir.path(), &other).unwrap_err().class(), ErrorClass::UntrustedKey);

        let dir = release_dir();
        sign_dir(dir.path(), &key()).unwrap();
        fs::remove_file(dir.path().join(ENVELOPE_FILE)).unwrap();
        let error = verify_dir(dir.path(), &trust()).unwrap_err();
        assert!(matches!(&error, BundleError::MissingEntry { name } if name == ENVELOPE_FILE), "{error}");
    }

    #[test]
    fn sums_that_disagree_with_the_files_are_refused_before_signing() {
        let dir = release_dir();
        write_sums(dir.path(), &["stella"]);
        let error = sign_dir(dir.path(), &key()).unwrap_err();
        assert!(error.to_string().contains("\"stella.deb\" is not listed"), "{error}");

        let dir = release_dir();
        fs::write(dir.path().join(SUMS_FILE), format!("{}  stella\n", "0".repeat(64))).unwrap();
        let error = sign_dir(dir.path(), &key()).unwrap_err();
        assert!(error.to_string().contains("SHA256SUMS line 1"), "{error}");

        let dir = release_dir();
        fs::remove_file(dir.path().join("stella")).unwrap();
        write_sums(dir.path(), &["stella.deb"]);
        let error = sign_dir(dir.path(), &key()).unwrap_err();
        assert!(error.to_string().contains("\"stella\" is missing"), "{error}");
        assert!(!dir.path().join(ENVELOPE_FILE).exists(), "nothing is signed");
    }

    #[test]
    fn a_release_directory_holds_only_regular_files() {
        let dir = release_dir();
        fs::create_dir(dir.path().join("nested")).unwrap();
        let error = sign_dir(dir.path(), &key()).unwrap_err();
        assert!(error.to_string().contains("only regular files"), "{error}");
    }
}
