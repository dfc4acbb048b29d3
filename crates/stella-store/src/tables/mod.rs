//! Small tables for state that is not telemetry, in one redb database per data directory,
//! `<data-dir>/state.redb`, behind repository traits so their users never see redb.
//!
//! ```text
//! table                  key                    value                         retention
//! holds                  u64 (hold-<n>)         Hold as JSON                  kept (released holds stay listed)
//! incident_modes         tenant                 the collector's mode as JSON  one row per tenant, replaced
//! records/<kind>         (tenant, id)           (unix nanos, bytes)           RecordRepository::remove_older_than
//! counters/<kind>        (tenant, key)          (unix nanos, f64 total)       CounterRepository::remove_older_than
//! ```
//!
//! - [`StateDb`]: the database, opened once per process (a second open in the process shares the
//!   handle); a second process gets [`StateError::AlreadyOpen`] at once, never a wait.
//! - [`HoldRepository`] ([`RedbHolds`]) and [`IncidentRepository`] ([`RedbIncidents`]): the state
//!   retention and tail sampling act on.
//! - [`RecordRepository`] ([`RedbRecords`]) and [`CounterRepository`] ([`RedbCounters`]): generic
//!   building blocks, a replace-by-id table and a running total per tenant and kind. DORA events (#9) and
//!   federation consents, observations and budgets (#10) are kept in them; their owners give the kind,
//!   the bytes' meaning and the retention.
//!
//! Crash safety: every change is one redb write transaction, committed durably (fsync) before the call
//! returns; a crash loses nothing that returned and shows nothing half done. redb runs one write
//! transaction at a time, so concurrent changes queue for a few milliseconds.
//!
//! Migration: the first open imports `holds.json` and `incidents.json`, which held this state before,
//! into their empty tables and renames them to `*.json.migrated`.
mod counters;
mod db;
mod error;
mod holds;
mod incidents;
mod migrate;
mod records;

pub use counters::{CounterRepository, RedbCounters};
pub use db::{STATE_FILE, StateDb};
pub use error::StateError;
pub use holds::{HoldRepository, RedbHolds};
pub use incidents::{IncidentRepository, RedbIncidents};
pub use records::{Record, RecordRepository, RedbRecords};

#[cfg(test)]
mod tests;
