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
}

impl ExportError {
    /// A stable code, also the `reason` label of `collector_export_failures_total`.
    pub fn code(&self) -> &'static str {
        match self {
            ExportError::Io { .. } => "io",
            ExportError::Interrupted { .. } => "interrupted",
        }
    }
}

/// Wraps an I/O error of `action` on `path`.
pub(crate) fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ExportError + use<> {
    let path = path.to_path_buf();
    move |source| ExportError::Io { action, path, source }
}
