use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::expected::ExpectedFiles;
use super::manifest::{FILE_SET_FORMAT_VERSION, FileSetManifest};
use super::signing::open_manifest;
use crate::BundleError;
use crate::archive::{claim_declared, read_declared};
use crate::dsse::Signer;
use crate::keys::TrustStore;

/// Checks the files of a signed set against its verified manifest, in any order, as the caller finds them
/// (tar entries, files of a directory).
///
/// Driven by the caller: [`open`](Self::open) verifies the envelope, each [`check`](Self::check) reads one
/// file, and [`finish`](Self::finish) refuses the set if a declared file was never checked.
pub struct FileSetVerifier {
    manifest: FileSetManifest,
    signer: Signer,
    expected: ExpectedFiles,
}

/// A file set whose signature, payload type and every file verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedFileSet {
    /// The verified manifest.
    pub manifest: FileSetManifest,
    /// Who signed it.
    pub signer: Signer,
}

impl FileSetVerifier {
    /// Verifies the envelope against `trust` and `payload_type`; `manifest_json`, when given, must be the
    /// envelope's exact payload (`manifest.json` beside `manifest.dsse.json`).
    pub fn open(
        envelope_json: &[u8],
        manifest_json: Option<&[u8]>,
        trust: &TrustStore,
        payload_type: &str,
    ) -> Result<FileSetVerifier, BundleError> {
        let (manifest, signer): (FileSetManifest, Signer) =
            open_manifest(envelope_json, manifest_json, trust, payload_type)?;
        if manifest.format_version != FILE_SET_FORMAT_VERSION {
            return Err(BundleError::UnsupportedFormat { version: manifest.format_version });
        }
        let declared = manifest.files.iter().map(|file| (file.path.as_str(), file.sha256.as_str(), file.size));
        let expected = ExpectedFiles::new(declared)?;
        Ok(FileSetVerifier { manifest, signer, expected })
    }

    /// The verified manifest (its files are not checked yet).
    pub fn manifest(&self) -> &FileSetManifest {
        &self.manifest
    }

    /// Who signed the manifest.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Checks the file declared as `path` from `reader`: declared once, same size, same SHA-256.
    pub fn check(&mut self, path: &str, reader: impl Read) -> Result<(), BundleError> {
        self.expected.claim(path)?;
        self.expected.check(path, reader, |_| Ok(()), |source| BundleError::Read { file: path.into(), source })
    }

    /// Claims the archive entry `name` whose header declares `size` bytes: declared once, with that size
    /// (checked before any byte is read). `name` is then a safe relative path.
    pub(crate) fn claim_entry(&mut self, name: &str, size: u64) -> Result<(), BundleError> {
        claim_declared(&mut self.expected, name, size)
    }

    /// Reads the claimed archive entry `name` from `data`, passing every chunk to `on_bytes`, and checks its
    /// digest.
    pub(crate) fn read_entry(
        &self,
        name: &str,
        data: &mut dyn Read,
        on_bytes: impl FnMut(&[u8]) -> Result<(), BundleError>,
    ) -> Result<(), BundleError> {
        read_declared(&self.expected, name, data, on_bytes)
    }

    /// Checks every declared file under `dir` (the manifest's paths are safe relative paths), then finishes.
    pub fn check_dir(mut self, dir: &Path) -> Result<VerifiedFileSet, BundleError> {
        let paths: Vec<String> = self.expected.paths().map(str::to_string).collect();
        for path in paths {
            let file_path = dir.join(&path);
            let file = match File::open(&file_path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    return Err(BundleError::MissingEntry { name: path });
                }
                Err(source) => return Err(BundleError::Read { file: file_path, source }),
            };
            self.check(&path, file)?;
        }
        self.finish()
    }

    /// Refuses the set if a declared file was not checked; otherwise the verified set.
    pub fn finish(self) -> Result<VerifiedFileSet, BundleError> {
        self.expected.finish()?;
        Ok(VerifiedFileSet { manifest: self.manifest, signer: self.signer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_set::FileSetBuilder;
    use crate::keys::SigningKey;
    use crate::payload_types::{OFFLINE_KIT_MANIFEST, ROTATION_MANIFEST};
    use crate::{ErrorClass, WriteError};

    fn signed(key: &SigningKey) -> crate::file_set::SignedManifest {
        let mut builder = FileSetBuilder::default();
        builder.add_bytes("bin/stella", b"binary").unwrap();
        builder.add_reader("INSTRUCTIONS.md", &b"read me"[..]).unwrap();
        builder.sign(ROTATION_MANIFEST, key).unwrap()
    }

    #[test]
    fn a_directory_of_the_declared_files_verifies_and_a_changed_one_does_not() {
        let key = SigningKey::from_ed25519_seed(&[5; 32]);
        let signed = signed(&key);
        let trust = TrustStore::from_iter([key.trusted_key()]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/stella"), b"binary").unwrap();
        std::fs::write(dir.path().join("INSTRUCTIONS.md"), b"read me").unwrap();
        let open = || FileSetVerifier::open(&signed.envelope_json, None, &trust, ROTATION_MANIFEST).unwrap();
        let verified = open().check_dir(dir.path()).unwrap();
        assert_eq!(verified.manifest.files.len(), 2);
        assert_eq!(verified.signer.keyid, key.keyid());

        std::fs::write(dir.path().join("bin/stella"), b"binarY").unwrap();
        let error = open().check_dir(dir.path()).unwrap_err();
        assert_eq!(error.class(), ErrorClass::DigestMismatch);
        assert!(error.to_string().contains("bin/stella"), "{error}");

        std::fs::remove_file(dir.path().join("INSTRUCTIONS.md")).unwrap();
        assert!(matches!(open().check_dir(dir.path()), Err(BundleError::MissingEntry { .. })));
    }

    #[test]
    fn the_manifest_copy_and_the_payload_type_must_match() {
        let key = SigningKey::from_ed25519_seed(&[5; 32]);
        let signed = signed(&key);
        let trust = TrustStore::from_iter([key.trusted_key()]);
        let other_copy = b"{}";
        let error =
            FileSetVerifier::open(&signed.envelope_json, Some(other_copy), &trust, ROTATION_MANIFEST).err().unwrap();
        assert_eq!(error.class(), ErrorClass::DigestMismatch);
        let error = FileSetVerifier::open(&signed.envelope_json, None, &trust, OFFLINE_KIT_MANIFEST).err().unwrap();
        assert_eq!(error.code(), "bundle.payload_type");
    }

    #[test]
    fn unsafe_and_repeated_paths_are_refused_when_building() {
        let mut builder = FileSetBuilder::default();
        assert!(matches!(builder.add_bytes("../escape", b""), Err(WriteError::InvalidPath { .. })));
        builder.add_bytes("a", b"").unwrap();
        assert!(matches!(builder.add_bytes("a", b""), Err(WriteError::DuplicatePath { .. })));
        assert!(matches!(builder.add_bytes("a/b", b""), Err(WriteError::PathConflict { .. })));
    }
}
