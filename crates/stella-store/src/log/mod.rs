//! The ingest log. A client is answered once its request is here (per the sync policy); every consumer
//! (exporters, the tail sampler and the store sealer) reads it through its own persisted cursor.
//!
//! On disk, one directory per pipeline and tenant:
//! ```text
//! <dir>/00000000000000000000.seg     segments, named by the sequence number of their first record
//! <dir>/00000000000000012345.seg
//! <dir>/head.json                    {"reserved": R, "clean": N}: numbers below R may have been handed out
//! <dir>/cursors/<consumer>.json      {"next_seq": N, "checkpoint": C}  (temporary file, fsync, rename)
//! <dir>/quarantine/<segment>-<start>-<end>.damaged   damaged bytes, copied out once
//!
//! segment := record*
//! record  := length: u32 LE (payload bytes) | crc32: u32 LE (of seq bytes + payload) | seq: u64 LE | payload
//! ```
//! Invariants:
//! - sequence numbers only grow and are never reused: within a segment they are contiguous; a new
//!   segment may start past the last number (a gap no record fills), after recovery or a failed sync;
//! - a record is visible to readers only once fully written (and, under `always`/`batch`, synced);
//! - on open, an incomplete last record (a torn write, never acknowledged) is cut off; a damaged record
//!   with valid records after it is damage: the records after it are kept, the damaged bytes are
//!   quarantined and counted, and readers skip them; a reader never stops at damage;
//! - a failed sync cuts the unsynced bytes and starts a new segment (or stops the log if even that fails).
mod check;
mod cursor;
mod damage;
mod error;
mod fs;
mod ingest;
mod record;
mod segments;

pub use check::{LogCheck, check_log, read_log_from};
pub use cursor::{Cursor, CursorStore};
pub use damage::{Damage, quarantined};
pub use error::LogError;
pub use fs::{LogFs, RealFs};
pub use ingest::{IngestLog, LogOptions, LogReader, SyncPolicy};
pub use record::{HEADER_LEN, Record};
pub use segments::{OpenReport, SegmentInfo, SegmentLog};

#[cfg(test)]
mod model_tests;
