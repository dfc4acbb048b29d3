use std::path::PathBuf;

/// What went wrong in the ingest log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A file operation failed.
    #[error("ingest log: cannot {action} {path}: {source}; check the data directory's permissions and free space")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A record before the tail is damaged (not a torn write: data after it exists).
    #[error(
        "ingest log: damaged record in {path} at byte {offset}: {reason}; move the segment aside to start without it"
    )]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log has reached `storage.log.max_bytes`.
    #[error("ingest log is full ({bytes} of {limit} bytes); a consumer is behind or down")]
    Full {
        /// Bytes in the log.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The writer thread has stopped.
    #[error("ingest log writer has stopped")]
    Closed,
    /// A cursor file is unreadable.
    #[error("ingest log: cursor {path} is invalid: {reason}")]
    BadCursor {
        /// The cursor file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl LogError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            LogError::Io { .. } => "log.io",
            LogError::Corrupt { .. } => "log.corrupt",
            LogError::Full { .. } => "log.full",
            LogError::Closed => "log.closed",
            LogError::BadCursor { .. } => "log.bad_cursor",
        }
    }
}

/// Wraps an I/O error of `action` on `path`.
pub(crate) fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LogError + use<> {
    let path = path.to_path_buf();
    move |source| LogError::Io { action, path, source }
}
