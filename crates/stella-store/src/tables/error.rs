//! What can go wrong with the state database.
use std::path::PathBuf;

/// The state database could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The data directory could not be created or resolved.
    #[error("state database in {path}: {source}")]
    Io {
        /// The data directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process, or another handle in this one, has the database open: redb allows one at a time.
    #[error(
        "state database {path} is already open by another process; stop the other `stella telemetry serve` that uses this data directory, or give this one its own --data-dir"
    )]
    AlreadyOpen {
        /// The database file.
        path: PathBuf,
    },
    /// The database could not be created or opened (permissions, disk, damaged or newer file).
    #[error("cannot open state database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: redb::DatabaseError,
    },
    /// A read or a write (transaction, table, commit) failed.
    #[error("state database {path}: {source}")]
    Storage {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: redb::Error,
    },
    /// A stored time does not decode: the file was changed by something other than stella.
    #[error("state database {path}: {table} entry {key} holds a time out of range ({source}); the file is damaged")]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: String,
        /// The entry (`tenant/id`).
        key: String,
        /// Why the time does not decode.
        #[source]
        source: jiff::Error,
    },
    /// Adding to a counter would make its total NaN or infinite.
    #[error(
        "counter {key} of tenant {tenant} in {table}: adding {amount} to {total} is not a finite number; add finite amounts"
    )]
    NotFinite {
        /// The counter table.
        table: String,
        /// The tenant.
        tenant: String,
        /// The counter.
        key: String,
        /// The total before.
        total: f64,
        /// The amount refused.
        amount: f64,
    },
    /// A JSON file being imported (`holds.json`, `incidents.json`) could not be read or renamed.
    #[error("cannot migrate {path} into the state database: {source}")]
    MigrationIo {
        /// The JSON file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file being imported is not what stella wrote.
    #[error("cannot migrate {path} into the state database: it is damaged ({source}); fix or remove it")]
    MigrationDamaged {
        /// The JSON file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl StateError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StateError::Io { .. } => "state.io",
            StateError::AlreadyOpen { .. } => "state.already_open",
            StateError::Open { .. } => "state.open_failed",
            StateError::Storage { .. } => "state.storage",
            StateError::Damaged { .. } => "state.damaged",
            StateError::NotFinite { .. } => "state.invalid_amount",
            StateError::MigrationIo { .. } => "state.migration_failed",
            StateError::MigrationDamaged { .. } => "state.migration_damaged",
        }
    }
}
