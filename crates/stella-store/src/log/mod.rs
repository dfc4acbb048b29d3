//! The ingest log. A client is answered once its request is here (per the sync policy); every consumer
//! (exporters, later the tail sampler and the store sealer) reads it through its own persisted cursor.
//!
//! On disk, one directory per pipeline and tenant:
//! ```text
//! <dir>/00000000000000000000.seg     segments, named by the sequence number of their first record
//! <dir>/00000000000000012345.seg
//! <dir>/cursors/<consumer>.json      {"next_seq": N, "checkpoint": C}  (written by rename)
//!
//! segment := record*
//! record  := length: u32 LE (payload bytes) | crc32: u32 LE (of seq bytes + payload) | seq: u64 LE | payload
//! ```
//! Invariants: sequence numbers are contiguous across segments; a record is visible to readers only once
//! fully written; on open, a last record that is short or fails its checksum (a torn write) is cut off
//! and reported, never a crash. A damaged record anywhere else is an error naming the file and offset.
mod cursor;
mod error;
mod fs;
mod ingest;
mod record;
mod segments;

pub use cursor::{Cursor, CursorStore};
pub use error::LogError;
pub use fs::{LogFs, RealFs};
pub use ingest::{IngestLog, LogOptions, LogReader, SyncPolicy};
pub use record::{HEADER_LEN, Record};
pub use segments::{OpenReport, SegmentLog};

#[cfg(test)]
mod model_tests;
