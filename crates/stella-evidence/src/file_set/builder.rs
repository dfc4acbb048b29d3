use std::collections::BTreeMap;
use std::io::Read;

use super::digest::{ContentDigest, Hasher, digest_reader};
use super::manifest::{FILE_SET_FORMAT_VERSION, FileDigest, FileSetManifest};
use super::path::{check_relative_path, nesting_conflict};
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
        self.add_digest(path, Hasher::digest(bytes))
    }

    /// Adds a file read to its end from `reader` (streamed, not held in memory).
    pub fn add_reader(&mut self, path: &str, reader: impl Read) -> Result<(), WriteError> {
        let digest = digest_reader(reader).map_err(crate::error::write_io("read a file of the set"))?;
        self.add_digest(path, digest)
    }

    /// Adds a file hashed by the caller; refuses unsafe, repeated and nested paths and sizes a manifest
    /// cannot state exactly.
    pub(crate) fn add_digest(&mut self, path: &str, digest: ContentDigest) -> Result<(), WriteError> {
        check_relative_path(path).map_err(|problem| WriteError::InvalidPath { path: path.to_string(), problem })?;
        json_safe("file size", digest.size)?;
        if self.files.contains_key(path) {
            return Err(WriteError::DuplicatePath { path: path.to_string() });
        }
        if let Some(other) = nesting_conflict(&self.files, path) {
            return Err(WriteError::PathConflict { path: path.to_string(), other: other.to_string() });
        }
        let file = FileDigest { path: path.to_string(), sha256: digest.sha256, size: digest.size };
        self.files.insert(path.to_string(), file);
        Ok(())
    }

    /// The manifest of every file added, sorted by path (what [`sign`](Self::sign) signs).
    pub(crate) fn into_manifest(self) -> FileSetManifest {
        FileSetManifest { format_version: FILE_SET_FORMAT_VERSION, files: self.files.into_values().collect() }
    }

    /// The manifest of every file added (sorted by path), signed as `payload_type` (one of
    /// [`payload_types`](crate::payload_types)).
    pub fn sign(self, payload_type: &str, key: &SigningKey) -> Result<SignedManifest, WriteError> {
        sign_manifest(&self.into_manifest(), payload_type, key)
    }
}
