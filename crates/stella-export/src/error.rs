use std::path::PathBuf;

/// Why an exporter could not take a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing, syncing or rotating an export file failed.
    #[error("cannot {action} {path}: {source}; check that the directory exists, is writable and the disk has space")]
    Io {
        /// What was being done (`write`, `open`, `sync`, `rotate`).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The exporter's worker thread ended before finishing the write.
    #[error("the write of {path} was interrupted")]
    Interrupted {
        /// The file concerned.
        path: PathBuf,
    },
    /// The backend could not take the batch now; the same batch is sent again later.
    #[error("{endpoint}: {message}")]
    Retryable {
        /// A stable reason (`unavailable`, `throttled`, `timeout`, `connection`), the metric label.
        reason: &'static str,
        /// The endpoint.
        endpoint: String,
        /// What happened.
        message: String,
        /// How long the backend asked us to wait (`Retry-After`), if it said.
        retry_after: Option<std::time::Duration>,
    },
    /// The backend refused the batch for good (a 4xx other than 429, a non-retryable gRPC code); sending it
    /// again would fail the same way, so it is dropped and counted.
    #[error("{endpoint} refused the batch for good: {message}")]
    Rejected {
        /// A stable reason (`http_400`, `invalid_argument`, ...), the metric label.
        reason: String,
        /// The endpoint.
        endpoint: String,
        /// What the backend said.
        message: String,
    },
    /// The exporter may not reach its endpoint under the egress policy (sealed mode).
    #[error("{endpoint} is blocked by the egress policy")]
    EgressBlocked {
        /// The endpoint.
        endpoint: String,
    },
}

impl ExportError {
    /// A stable code, also the `reason` label of `collector_export_failures_total`.
    pub fn code(&self) -> &str {
        match self {
            ExportError::Io { .. } => "io",
            ExportError::Interrupted { .. } => "interrupted",
            ExportError::Retryable { reason, .. } => reason,
            ExportError::Rejected { reason, .. } => reason,
            ExportError::EgressBlocked { .. } => "egress_sealed",
        }
    }

    /// Whether sending the same batch again can succeed (false: drop it and count it).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ExportError::Rejected { .. } | ExportError::EgressBlocked { .. })
    }

    /// How long the backend asked to wait before the next attempt.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ExportError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Wraps an I/O error of `action` on `path`.
pub(crate) fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ExportError + use<> {
    let path = path.to_path_buf();
    move |source| ExportError::Io { action, path, source }
}
