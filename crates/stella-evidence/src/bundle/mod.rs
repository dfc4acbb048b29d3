//! Forensic bundles: the records of one tenant and window, signed, in a deterministic archive an auditor can
//! check offline with our tool or with `tar`, `sha256sum` and any DSSE verifier.
//!
//! Layout (ARCHITECTURE.md §3 "Bundles"), entries in this order, which is the byte order of their names:
//!
//! ```text
//! manifest.dsse.json   DSSE envelope (RFC 8785 JSON), payload type
//!                      application/vnd.stellaops.telemetry.bundle.manifest+json, payload = manifest.json
//! manifest.json        the BundleManifest, RFC 8785 JSON
//! otlp/logs.pb         only the signals that have records; each file is a stream of frames:
//! otlp/metrics.pb
//! otlp/traces.pb         +----------------------+---------------------------------------------+
//!                        | u32 big-endian: len  | len bytes: one OTLP Export*ServiceRequest   |  ...
//!                        +----------------------+---------------------------------------------+
//! ```
//!
//! The frames are the OpenTelemetry file exporter's proto framing; an `Export*ServiceRequest` has the same
//! wire format as `TracesData`/`MetricsData`/`LogsData`. Records are the stored bytes, never re-encoded, in
//! the order they were added. A signal without records has no file and is not listed in `signals`.
//!
//! Determinism: the same header, records, chunk digests and key give a byte-identical archive. Tar entries
//! are ustar headers with mtime 0, uid/gid 0, mode 0644, empty owner names and nothing else; the gzip header
//! has no timestamp and no file name; compression levels are fixed per format; the manifest is canonical and
//! has no wall-clock field; Ed25519 and HMAC signatures are deterministic. (Bytes can differ between builds
//! that link another version of the compressor; digests inside the archive cannot.)
//!
//! Verification ([`verify_bundle`]) reads the archive once, as a stream (the signed-archive reader it shares
//! with [offline kits](crate::offline_kit)):
//! 1. the input must be gzip or zstd (by magic bytes); entries must be regular files with names from the
//!    layout, the payload files sorted and unique: links, directories, devices, tar extension headers,
//!    absolute or `..` paths and unknown names are refused;
//! 2. the envelope and manifest come first and are read only up to [`Limits::max_manifest_bytes`]; the
//!    envelope is verified (trusted key, then payload type) and `manifest.json` must be its exact payload;
//! 3. each payload file must be declared by the now-trusted manifest with the same size *before* it is read,
//!    and is read only up to that size, so decompression is bounded by what the signer declared (a gzip bomb
//!    stops at its header); its SHA-256 and its framing (record count, no record above
//!    [`Limits::max_record_bytes`]) must match;
//! 4. every declared file must have been seen.
//!
//! [`BundleReader`] runs the same verification while spooling the payload files, and hands records out only
//! after all of it passed.
mod framing;
mod layout;
mod manifest;
mod reader;
mod serde_text;
mod verify;
mod writer;

pub use crate::archive::Compression;
pub use crate::error::{BundleError, SourceChange, WriteError};
pub use framing::{FramingError, MAX_RECORD_BYTES};
pub use layout::payload_path;
pub use manifest::{BUNDLE_FORMAT_VERSION, BundleFile, BundleManifest, ProfileDigest, TimeRange, Totals, Window};
pub use reader::{BundleReader, Records};
pub use verify::{Limits, VerifiedBundle, verify_bundle};
pub use writer::{BundleHeader, BundleSummary, BundleWriter, RecordFacts};
