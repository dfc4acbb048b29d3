//! The tar layer shared by forensic bundles and offline kits: the deterministic writer with its compressors,
//! and the streaming, hostile-archive-safe reader of a signed archive.
//!
//! A signed archive is a gzip or zstd compressed tar whose first entries are `manifest.dsse.json` (a DSSE
//! envelope) and `manifest.json` (its exact payload), followed by the files the signed manifest declares,
//! sorted by name. Entries are ustar regular files with mtime 0, uid/gid 0 and empty owner names.
mod read;
mod write;

pub(crate) use read::{PayloadEntry, claim_declared, decompress, read_declared, read_signed_tar};
pub use write::Compression;
pub(crate) use write::{ArchiveEntry, EXECUTABLE_MODE, FILE_MODE, write_archive};
