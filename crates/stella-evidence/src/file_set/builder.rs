use std::collections::BTreeMap;
use std::io::{self, Read};

use super::digest::{DigestWriter, Hasher};
use super::manifest::{FILE_SET_FORMAT_VERSION, FileDigest, FileSetManifest};
use super::path::check_relative_path;
use super::signing::{SignedManifest, json_safe, sign_manifest};
use crate::WriteError;
use crate::keys::SigningKey;

/// Collects the files of a set, then signs their manifest.
///
/// ```
/// use stella_evidence::file_set::{FileSetBuilder, FileSetVerifier};
/// use stella_evidence::{payload_types, SigningKey, TrustStore};
///
/// let key = SigningKey::from_ed25519_seed(&[7; 32]);
/// let mut files = FileSetBuilder::default();
/// files.add_bytes("INSTRUCTIONS.md", b"# Install\n").unwrap();
/// let signed = files.sign(payload_types::OFFLINE_KIT_MANIFEST, &key).unwrap();
///
/// let trust = TrustStore::from_iter([key.trusted_key()]);
/// let mut verifier =
///     FileSetVerifier::open(&signed.envelope_json, Some(&signed.manifest_json), &trust, payload_types::OFFLINE_KIT_MANIFEST)
///         .unwrap();
/// verifier.check("INSTRUCTIONS.md", &b"# Install\n"[..]).unwrap();
/// assert_eq!(verifier.finish().unwrap().manifest.files.len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct FileSetBuilder {
    files: BTreeMap<String, FileDigest>,
}

impl FileSetBuilder {
    /// Adds a file held in memory.
    pub fn add_bytes(&mut self, path: &str, bytes: &[u8]) -> Result<(), WriteError> {
        let digest = Hasher::digest(bytes);
        self.insert(path, digest.sha256, digest.size)
    }

    /// Adds a file read to its end from `reader` (streamed, not held in memory).
    pub fn add_reader(&mut self, path: &str, mut reader: impl Read) -> Result<(), WriteError> {
        let mut writer = DigestWriter::new(io::sink());
        io::copy(&mut reader, &mut writer).map_err(crate::error::write_io("read a file of the set"))?;
        let (_, digest) = writer.finish();
        self.insert(path, digest.sha256, digest.size)
    }

    fn insert(&mut self, path: &str, sha256: String, size: u64) -> Result<(), WriteError> {
        check_relative_path(path).map_err(|problem| WriteError::InvalidPath { path: path.to_string(), problem })?;
        json_safe("file size", size)?;
        if self.files.contains_key(path) {
            return Err(WriteError::DuplicatePath { path: path.to_string() });
        }
        self.files.insert(path.to_string(), FileDigest { path: path.to_string(), sha256, size });
        Ok(())
    }

    /// The manifest of every file added (sorted by path), signed as `payload_type` (one of
    /// [`payload_types`](crate::payload_types)).
    pub fn sign(self, payload_type: &str, key: &SigningKey) -> Result<SignedManifest, WriteError> {
        let manifest =
            FileSetManifest { format_version: FILE_SET_FORMAT_VERSION, files: self.files.into_values().collect() };
        sign_manifest(&manifest, payload_type, key)
    }
}
