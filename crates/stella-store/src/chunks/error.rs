//! [`StoreError`]: what can go wrong in the chunk store, on local disk and in object storage, each with
//! a stable code.
use std::path::{Path, PathBuf};

/// The store could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("store: cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what the store wrote.
    #[error("store: {path} is damaged: {message}; run `stella telemetry store check --repair`")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Object storage failed a request (unreachable, refused credentials, server error).
    #[error(
        "store: cannot {action} {key} in object storage {location}: {source}; check that storage.backend's endpoint is reachable and its bucket and credentials are right"
    )]
    Remote {
        /// `upload`, `read`, `verify` or `delete`.
        action: &'static str,
        /// The object key.
        key: String,
        /// `bucket/prefix`.
        location: String,
        /// Why (boxed: `object_store`'s error is large).
        #[source]
        source: Box<object_store::Error>,
    },
    /// An uploaded object is not in object storage any more.
    #[error(
        "store: {key} is missing from object storage {location}, though the store uploaded it; restore it from a copy of the bucket"
    )]
    RemoteMissing {
        /// The object key.
        key: String,
        /// `bucket/prefix`.
        location: String,
    },
    /// An object in object storage does not match the digest it is named by.
    #[error(
        "store: {key} in object storage {location} is damaged: its SHA-256 is {found}, not its name; restore it from a copy of the bucket"
    )]
    RemoteDamaged {
        /// The object key.
        key: String,
        /// `bucket/prefix`.
        location: String,
        /// The digest of what came back.
        found: String,
    },
    /// The runtime that carries object-storage requests stopped before answering (shutdown).
    #[error(
        "store: cannot {action} {key} in object storage: the process is shutting down; it is retried at the next start"
    )]
    RemoteStopped {
        /// What was being done.
        action: &'static str,
        /// The object key.
        key: String,
    },
    /// The ingest log holding the records not sealed yet could not be read.
    #[error("store: cannot read the records not sealed yet: {0}")]
    Log(#[source] Box<crate::log::LogError>),
    /// A chunk was moved to object storage, and this store has none attached.
    #[error(
        "store: {path} was moved to object storage and this store has no storage.backend; read it through the server whose config names the bucket"
    )]
    Evicted {
        /// The evicted chunk file.
        path: PathBuf,
    },
}

impl StoreError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Io { .. } => "store.io",
            StoreError::Damaged { .. } => "store.damaged",
            StoreError::Remote { .. } => "store.remote",
            StoreError::RemoteMissing { .. } => "store.remote_missing",
            StoreError::RemoteDamaged { .. } => "store.remote_damaged",
            StoreError::RemoteStopped { .. } => "store.remote_stopped",
            StoreError::Evicted { .. } => "store.evicted",
            StoreError::Log(error) => error.code(),
        }
    }
}

/// Deletes `path`; a file already gone is no error.
pub(crate) fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path)(error)),
        _ => Ok(()),
    }
}

/// For `map_err`: an I/O error of `action` on `path`.
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { action, path, source }
}
