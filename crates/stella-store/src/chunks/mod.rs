//! The embedded store: the ingest log's records sealed into immutable, content-addressed chunks with
//! RFC 8785 manifests, a day manifest per tenant, signal and UTC day listing runs of chunks, and per run
//! a trace index and an index shard of its streams (services, log streams, metric series); per chunk of
//! traces a term filter of the values its spans carry, per chunk of logs a term filter of its lines'
//! trigrams and its log volume (lines and bytes per stream and millisecond).
//!
//! - [`Sealer`]: the pure rule of which records make a chunk (data only, never the wall clock).
//! - [`Store`]: chunks, manifests and indexes on disk; lookups by trace id; scans that index shards
//!   narrow ([`ScanFilter`]); retention; `check` and repair.
//! - [`StoreView`]: the read interface every query goes through (sealed chunks plus what is not sealed yet).
//! - [`RemoteChunks`]: sealed chunks also in S3-compatible object storage; [`Store::upload_pending`]
//!   moves them there and evicts local copies per [`LocalCache`]; reads of evicted chunks go there.
mod day;
mod error;
mod facts;
mod holds;
mod index;
mod manifest;
mod remote;
mod retention;
mod sealer;
mod shard;
mod store;
mod streams;
mod terms;
mod upload;
mod view;
mod volume;

pub use day::Day;
pub use facts::{RecordFacts, record_facts};
pub use holds::{Hold, HoldBook, HoldError, HoldKind};
pub use manifest::{
    CHUNK_FORMAT_VERSION, ChunkManifest, DAY_FORMAT_VERSION, DayChunk, DayManifest, LegacyDayManifest,
    RUN_FORMAT_VERSION, RunManifest, RunRef, canonical,
};
pub use remote::RemoteChunks;
pub use retention::{Cutoff, MAX_CLOCK_LEAD, cutoff as retention_cutoff};
pub use sealer::{
    OpenRecord, SealLimits, SealedChunk, Sealer, UndecodableRecord, chunk_records, unsealed_records, utc_day,
};
pub use shard::{SHARD_FORMAT_VERSION, shard_file};
pub use store::{
    CheckOptions, CheckReport, Cut, Decoded, Store, StoreError, StoredChunk, UnsealedRecord, Visit, directory_name,
};
pub use streams::{ChunkStreams, LOG_STREAM_RESOURCE_ATTRIBUTES, SEVERITY_LABEL, ScanFilter, StreamKey, StreamStats};
pub use terms::{ChunkTerms, TERMS_FORMAT_VERSION, Term, TermFilter, terms_file, trigram_terms};
pub use upload::{LocalCache, ROUND_CHUNKS, UploadRound};
pub use view::StoreView;
pub use volume::{LogVolume, StreamVolume, Tally, VOLUME_FORMAT_VERSION, slot, slots_from_to, volume_file};

#[cfg(test)]
mod remote_tests;
#[cfg(test)]
mod tests;
