//! Stella's storage: the ingest log, the one durable point of the data path, and the embedded store.
//!
//! - [`log::SegmentLog`]: the synchronous core, per pipeline and tenant: append-only segment files of
//!   checksummed, length-prefixed records, torn-tail recovery on open, segment retention.
//! - [`log::IngestLog`]: the async front: group commit on a writer thread under a [`log::SyncPolicy`],
//!   readers that follow the committed head, and persisted [`log::Cursor`]s for consumers.
//! - [`log::LogFs`]: the filesystem seam, so a model-based test can crash the log at any point.
//! - [`chunks`]: sealed, content-addressed chunks with deterministic manifests and trace indexes.
//! - [`lock`]: the data directory's lock: one server, and offline writers only while none runs.
//! - [`tables`]: small redb tables (`<data-dir>/state.redb`) for state that is not telemetry: holds,
//!   incident mode, replace-by-id records and counters, behind repository traits.
#![deny(missing_docs)]

pub mod chunks;
pub mod lock;
pub mod log;
pub mod tables;
