//! Signed manifests of a set of files: the offline kit, the air-gap exporter's rotations, and (with more
//! fields) forensic bundles. One code path signs and checks them all.
//!
//! A file set is stored as two files beside the files it covers:
//!
//! ```text
//! manifest.json        RFC 8785 JSON  {"files":[{"path":"bin/stella","sha256":"<hex>","size":123},...],"format_version":1}
//! manifest.dsse.json   RFC 8785 JSON  a DSSE envelope whose payload is exactly the bytes of manifest.json
//! ```
//!
//! Invariants:
//! - Paths are relative, `/`-separated and normal (no empty, `.` or `..` component, no backslash or control
//!   character), sorted and unique, and no path is the directory of another (`bin` and `bin/stella`); a
//!   manifest breaking this is refused before any file is opened, so a signed manifest can never point a
//!   verifier outside its directory.
//! - The manifest is parsed only after its signature and payload type verified (DSSE protocol order).
//! - A file is read at most one byte past its declared size, so a verifier's work is bounded by what the
//!   signer declared.
mod builder;
mod digest;
mod expected;
mod manifest;
mod path;
mod signing;
mod verifier;

pub use builder::FileSetBuilder;
pub(crate) use digest::{ContentDigest, DigestWriter, Hasher, digest_reader};
pub(crate) use expected::ExpectedFiles;
pub use manifest::{ENVELOPE_FILE, FILE_SET_FORMAT_VERSION, FileDigest, FileSetManifest, MANIFEST_FILE};
pub use path::PathProblem;
pub(crate) use path::check_relative_path;
pub use signing::SignedManifest;
pub(crate) use signing::{json_safe, open_manifest, sign_manifest};
pub use verifier::{FileSetVerifier, VerifiedFileSet};
