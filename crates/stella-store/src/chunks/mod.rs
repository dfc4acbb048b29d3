//! The embedded store: the ingest log's records sealed into immutable, content-addressed chunks with
//! RFC 8785 manifests, a day manifest per tenant, signal and UTC day, and a trace index per day.
//!
//! - [`Sealer`]: the pure rule of which records make a chunk (data only, never the wall clock).
//! - [`Store`]: chunks, manifests and indexes on disk; lookups by trace id; `check` and repair.
mod facts;
mod holds;
mod manifest;
mod sealer;
mod store;

pub use facts::{RecordFacts, record_facts};
pub use holds::{Hold, HoldBook, HoldError, HoldKind};
pub use manifest::{CHUNK_FORMAT_VERSION, ChunkManifest, DayChunk, DayManifest, canonical};
pub use sealer::{OpenRecord, SealLimits, SealedChunk, Sealer, UndecodableRecord, chunk_records, utc_day};
pub use store::{CheckReport, Store, StoreError, StoredChunk, directory_name};

#[cfg(test)]
mod tests;
