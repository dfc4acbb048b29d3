use std::path::PathBuf;
use std::sync::Arc;

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
    /// A sync failed and the unsynced bytes could not be cut off either: the segment's state on disk is
    /// unknown, so the log takes no more appends until the process restarts (and recovers it).
    #[error(
        "ingest log: cannot sync {path}: {source}, and cutting the unsynced bytes off failed too ({cut}); the log refuses appends until a restart; check the disk"
    )]
    SyncLost {
        /// The segment.
        path: PathBuf,
        /// Why the sync failed.
        #[source]
        source: std::io::Error,
        /// Why the cut failed.
        cut: std::io::Error,
    },
    /// The writer failed earlier with this error and takes no more appends (see [`LogError::SyncLost`]).
    #[error("ingest log stopped after an earlier failure: {0}")]
    Stopped(Arc<LogError>),
    /// One write of a group of appends failed; every append of the group gets this.
    #[error(transparent)]
    Group(Arc<LogError>),
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
    /// The operating system's error number behind this error, if any (ENOSPC, EIO, EMFILE, ...).
    pub fn os_error(&self) -> Option<i32> {
        match self {
            LogError::Io { source, .. } | LogError::SyncLost { source, .. } => source.raw_os_error(),
            LogError::Stopped(inner) | LogError::Group(inner) => inner.os_error(),
            _ => None,
        }
    }

    /// The symbolic name of [`LogError::os_error`] for the errors a full, failing or exhausted system
    /// gives (`ENOSPC`, `EIO`, `EMFILE`, ...), for logs and answers that must name the real cause.
    pub fn os_error_name(&self) -> Option<&'static str> {
        Some(match self.os_error()? {
            5 => "EIO",
            13 => "EACCES",
            23 => "ENFILE",
            24 => "EMFILE",
            27 => "EFBIG",
            28 => "ENOSPC",
            30 => "EROFS",
            122 => "EDQUOT",
            _ => return None,
        })
    }

    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            LogError::Io { .. } => "log.io",
            LogError::SyncLost { .. } => "log.sync_lost",
            LogError::Stopped(_) => "log.stopped",
            LogError::Group(inner) => inner.code(),
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
