//! The offline kit: everything an air-gapped host needs to install Stella (the `stella` binary, config
//! bundles, redaction profiles, bootstrap scripts, `INSTRUCTIONS.md`, ...) in one signed, deterministic
//! archive that is checked before anything is installed. The library side of `stella telemetry offline-kit
//! build` ([`build`]) and `offline-kit verify` ([`verify_kit`], [`extract_kit`]); the caller decides what
//! goes in.
//!
//! Layout, entries in this order:
//!
//! ```text
//! manifest.dsse.json   DSSE envelope (RFC 8785 JSON), payload type
//!                      application/vnd.stellaops.telemetry.offline-kit.manifest+json, payload = manifest.json
//! manifest.json        a signed file set manifest (RFC 8785 JSON): every file's path, sha256 and size
//! INSTRUCTIONS.md      the files, sorted by the bytes of their paths
//! bin/stella
//! ...
//! ```
//!
//! Tar entries are ustar regular files with mtime 0, uid/gid 0, empty owner names, and mode 0755 for
//! executables, 0644 otherwise; the same files and key give byte-identical archives (see
//! [`bundle`](crate::bundle) for what determinism covers). The signed manifest covers every file's content;
//! the executable bit is tar metadata outside the signature, so verification accepts only those two modes
//! and reports which files carry 0755.
//!
//! Verification reads the archive once, as a stream, with the reader forensic bundles use: the envelope and
//! manifest come first and are size-capped, the signature, key trust and payload type are checked before any
//! other entry is read, then every entry must be a regular file the signed manifest declares, with the
//! declared size (checked before reading it, so a bomb stops at its header), read only up to that size, with
//! the declared digest; links, directories, traversal, repeats and unknown names are refused, and every
//! declared file must be present.
//!
//! ```
//! use stella_evidence::offline_kit::{self, KitFile, KitSource, KitTrust};
//! use stella_evidence::{Compression, Limits, SigningKey, TrustStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = SigningKey::from_ed25519_seed(&[9; 32]);
//! let file = |path: &str, content: &[u8], executable| KitFile {
//!     path: path.into(),
//!     source: KitSource::Bytes(content.to_vec()),
//!     executable,
//! };
//! let files = vec![file("INSTRUCTIONS.md", b"# Install\n", false), file("bin/install.sh", b"#!/bin/sh\n", true)];
//! let mut kit = Vec::new();
//! let summary = offline_kit::build(files, &key, Compression::Gzip, &mut kit)?;
//! assert_eq!(summary.archive_bytes, kit.len() as u64);
//!
//! let trust = TrustStore::from_iter([key.trusted_key()]);
//! let verified = offline_kit::verify_kit(kit.as_slice(), &KitTrust::kit_only(&trust), &Limits::default())?;
//! assert_eq!(verified.manifest, summary.manifest);
//! assert!(verified.executables.contains("bin/install.sh"));
//! # Ok(())
//! # }
//! ```
mod build;
mod read;

use std::collections::BTreeSet;
use std::path::PathBuf;

pub use crate::error::SourceChange;
pub use build::build;
pub use read::{extract_kit, verify_kit};

#[cfg(doc)]
use crate::BundleError;
use crate::dsse::Signer;
use crate::file_set::FileSetManifest;
use crate::keys::TrustStore;

/// One file to put in a kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KitFile {
    /// Its path in the kit: relative, `/`-separated and normal (`bin/stella`), neither `manifest.json` nor
    /// `manifest.dsse.json`, and not the directory of another file's path.
    pub path: String,
    /// Where its bytes come from.
    pub source: KitSource,
    /// Written with mode 0755 (binaries, scripts) rather than 0644.
    pub executable: bool,
}

/// Where a kit file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KitSource {
    /// Bytes in memory (a rendered config bundle, `INSTRUCTIONS.md`).
    Bytes(Vec<u8>),
    /// A file on disk, streamed (hashed, then copied into the archive from the same open file), never held
    /// in memory. It must not change in between: if it does, [`build`] fails with
    /// [`WriteError::SourceChanged`](crate::WriteError::SourceChanged).
    File(PathBuf),
}

/// What [`build`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KitSummary {
    /// The signed manifest: every file's path, sha256 and size, sorted by path.
    pub manifest: FileSetManifest,
    /// Who signed it.
    pub signer: Signer,
    /// Hex SHA-256 of the whole archive as written.
    pub archive_sha256: String,
    /// Size of the archive as written.
    pub archive_bytes: u64,
}

/// The keys a kit is checked with.
#[derive(Debug, Clone, Copy)]
pub struct KitTrust<'a> {
    /// The keys trusted to sign the kit (the site's, from a trusted channel).
    pub kit: &'a TrustStore,
    /// The keys trusted to sign a release the kit carries under `release/` (the publisher's). A kit that
    /// carries a release is refused without them ([`BundleError::ReleaseNotChecked`]); given them, a kit
    /// without a release is refused (the release it should carry is missing).
    pub release: Option<&'a TrustStore>,
}

impl<'a> KitTrust<'a> {
    /// Trust for a kit that carries no release.
    pub fn kit_only(kit: &'a TrustStore) -> Self {
        KitTrust { kit, release: None }
    }
}

/// A kit whose signature, payload type, key trust and every file verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKit {
    /// The verified manifest: every file's path, sha256 and size, sorted by path.
    pub manifest: FileSetManifest,
    /// Who signed it (and whether the signature is integrity-only).
    pub signer: Signer,
    /// The paths whose archive entries have mode 0755 (tar metadata: not covered by the signature).
    pub executables: BTreeSet<String>,
    /// Who signed the release the kit carries, when it carries one (checked with [`KitTrust::release`]).
    pub release: Option<Signer>,
}
