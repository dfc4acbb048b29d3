//! Evidence for Stella: what lets an auditor prove, offline and with third-party tools, which telemetry a
//! file holds, who signed it and that nothing changed. This crate never reaches the network.
//!
//! Roles:
//! - [`canonical`] writes any `Serialize` value as RFC 8785 (JCS) bytes, the form everything here signs.
//! - [`dsse`] signs and verifies DSSE envelopes: PAE over the raw payload, standard padded base64, a `keyid`
//!   on every signature, envelopes stored as RFC 8785 JSON.
//! - [`keys`]: a [`SigningKey`] (Ed25519 by default; HMAC-SHA256, integrity-only, where only a shared
//!   secret exists), its PEM files, and the [`TrustStore`] verification looks keys up in.
//! - [`bundle`]: [`BundleWriter`] streams records into a deterministic, signed forensic bundle
//!   (`tar.gz` or `tar.zst`); [`verify_bundle`] checks one, and [`BundleReader`] hands out its records only
//!   after the whole bundle verified.
//! - [`config_bundle`]: collector configs signed as DSSE envelopes (`deploy`, `serve --config-dir`).
//! - [`forensic`] cuts a bundle of one tenant and window out of the embedded store.
//! - [`file_set`]: the same signed manifest for any set of files (offline kit, air-gap rotations).
//! - [`offline_kit`]: [`offline_kit::build`] writes the signed, deterministic install kit of an air-gapped
//!   host; [`verify_kit`] checks one as a stream with the bundle verifier's hostile-archive rules, and
//!   [`extract_kit`] extracts it into a new directory only once all of it verified.
//! - [`audit`]: the hash-chained audit trail, anchored in the state database and by signed checkpoints.
//! - [`service`]: the server's evidence: its key and trust, bundles on demand and into the archive.
//! - [`rotation`]: signed manifests of the files a file exporter rotates.
//! - [`ErrorClass`]: the stable failure classes (`bundle.digest_mismatch`, ...) with their exit codes.
//! - [`payload_types`]: the DSSE payload types Stella signs.
//!
//! Sign a bundle, then verify it:
//!
//! ```
//! use stella_evidence::{
//!     BundleHeader, BundleWriter, Compression, KeyKind, Limits, RecordFacts, Signal, SigningKey, TrustStore,
//!     Window, verify_bundle,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = SigningKey::generate(KeyKind::Ed25519)?;
//! let header = BundleHeader {
//!     tenant: "acme".into(),
//!     window: Window { start: "2026-01-01T00:00:00Z".parse()?, end: "2026-01-02T00:00:00Z".parse()? },
//!     profile: "forensic".into(),
//!     redaction_profiles: Vec::new(),
//!     generator: "stella 0.1.0".into(),
//! };
//! let mut writer = BundleWriter::new(header, std::env::temp_dir())?;
//! let facts = RecordFacts { items: 1, min_time_unix_nano: 1_767_225_600_000_000_000, max_time_unix_nano: 1_767_225_600_000_000_000 };
//! writer.add_record(Signal::Traces, b"an OTLP ExportTraceServiceRequest", facts)?;
//! let mut archive = Vec::new();
//! writer.finish(&key, Compression::Gzip, &mut archive)?;
//!
//! let trust = TrustStore::from_iter([key.trusted_key()]);
//! let verified = verify_bundle(archive.as_slice(), &trust, &Limits::default())?;
//! assert_eq!(verified.manifest.tenant, "acme");
//! assert_eq!(verified.signer.keyid, key.keyid());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod archive;
mod error;
mod error_class;

pub mod audit;
pub mod bundle;
pub mod canonical;
pub mod config_bundle;
pub mod dsse;
pub mod file_set;
pub mod forensic;
pub mod fuzzing;
pub mod keys;
pub mod offline_kit;
pub mod payload_types;
pub mod release;
pub mod rotation;
pub mod service;

pub use bundle::{
    BundleError, BundleHeader, BundleManifest, BundleReader, BundleSummary, BundleWriter, Compression, Limits,
    RecordFacts, VerifiedBundle, Window, WriteError, verify_bundle,
};
pub use dsse::{Envelope, Signer};
pub use error_class::ErrorClass;
pub use keys::{KeyKind, SigningKey, TrustStore, TrustedKey};
pub use offline_kit::{KitFile, KitSource, KitSummary, KitTrust, VerifiedKit, extract_kit, verify_kit};
pub use stella_otlp::Signal;
