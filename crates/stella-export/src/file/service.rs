use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use stella_otlp::{Batch, Signal};

use super::{FileConfig, encode_record, rotate};
use crate::{BoxFuture, ExportError, Exporter, ExporterHealth};

/// `exporters.file` at run time: one open file per signal, written under a lock per file.
pub struct FileExporter {
    id: String,
    config: FileConfig,
    files: BTreeMap<Signal, Arc<Mutex<OpenFile>>>,
    last_error: Mutex<Option<String>>,
}

struct OpenFile {
    path: PathBuf,
    file: File,
    size: u64,
}

impl FileExporter {
    /// Opens (creating directories and files as needed, appending to existing ones) the file of every signal.
    pub fn open(id: String, config: FileConfig, data_dir: &Path) -> Result<Self, ExportError> {
        let mut files = BTreeMap::new();
        let mut by_path: BTreeMap<PathBuf, Arc<Mutex<OpenFile>>> = BTreeMap::new();
        for signal in Signal::ALL {
            let path = config.path_for(signal, data_dir);
            let shared = match by_path.get(&path) {
                Some(existing) => Arc::clone(existing),
                None => {
                    let opened = Arc::new(Mutex::new(OpenFile::open(path.clone())?));
                    by_path.insert(path, Arc::clone(&opened));
                    opened
                }
            };
            files.insert(signal, shared);
        }
        Ok(FileExporter { id, config, files, last_error: Mutex::new(None) })
    }

    /// The config this exporter was built from (to reuse it across reloads when unchanged).
    pub fn config(&self) -> &FileConfig {
        &self.config
    }

    fn remember(&self, result: &Result<(), ExportError>) {
        let mut last_error = self.last_error.lock().unwrap_or_else(|poison| poison.into_inner());
        *last_error = result.as_ref().err().map(ToString::to_string);
    }
}

impl OpenFile {
    fn open(path: PathBuf) -> Result<Self, ExportError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ExportError::Io {
                action: "create the directory of",
                path: path.clone(),
                source,
            })?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|source| ExportError::Io {
            action: "open",
            path: path.clone(),
            source,
        })?;
        let size =
            file.metadata().map_err(|source| ExportError::Io { action: "stat", path: path.clone(), source })?.len();
        Ok(OpenFile { path, file, size })
    }

    fn write(&mut self, record: &[u8], config: &FileConfig) -> Result<(), ExportError> {
        if let Some(rotation) = &config.rotation {
            let limit = rotation.max_megabytes.saturating_mul(1024 * 1024);
            if self.size > 0 && self.size + record.len() as u64 > limit {
                self.rotate(config)?;
            }
        }
        self.file.write_all(record).map_err(|source| ExportError::Io {
            action: "write",
            path: self.path.clone(),
            source,
        })?;
        self.size += record.len() as u64;
        Ok(())
    }

    fn rotate(&mut self, config: &FileConfig) -> Result<(), ExportError> {
        let path = self.path.clone();
        let io = |source| ExportError::Io { action: "rotate", path: path.clone(), source };
        self.file.sync_all().map_err(io)?;
        let localtime = config.rotation.as_ref().is_some_and(|rotation| rotation.localtime);
        let now = if localtime { jiff::Zoned::now() } else { jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC) };
        std::fs::rename(&path, rotate::rotated_name(&path, now)).map_err(io)?;
        *self = OpenFile::open(path.clone())?;
        if let Some(rotation) = &config.rotation {
            rotate::prune(&path, rotation, SystemTime::now()).map_err(io)?;
        }
        Ok(())
    }
}

impl Exporter for FileExporter {
    fn id(&self) -> &str {
        &self.id
    }

    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            let Some(file) = self.files.get(&batch.signal()).cloned() else {
                return Ok(());
            };
            let config = self.config.clone();
            let path = config.path.clone();
            let record = match encode_record(&batch.request, config.format, config.compression) {
                Ok(record) => record,
                Err(source) => {
                    return Err(ExportError::Io { action: "encode a record for", path, source });
                }
            };
            let written = tokio::task::spawn_blocking(move || {
                let mut open = file.lock().unwrap_or_else(|poison| poison.into_inner());
                open.write(&record, &config)
            })
            .await
            .unwrap_or(Err(ExportError::Interrupted { path }));
            self.remember(&written);
            written
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async move {
            for file in self.files.values() {
                let file = Arc::clone(file);
                let synced = tokio::task::spawn_blocking(move || {
                    let open = file.lock().unwrap_or_else(|poison| poison.into_inner());
                    open.file.sync_all().map_err(|source| ExportError::Io {
                        action: "sync",
                        path: open.path.clone(),
                        source,
                    })
                })
                .await;
                synced.unwrap_or_else(|_| Err(ExportError::Interrupted { path: self.config.path.clone() }))?;
            }
            Ok(())
        })
    }

    fn health(&self) -> ExporterHealth {
        match self.last_error.lock().unwrap_or_else(|poison| poison.into_inner()).as_ref() {
            Some(message) => ExporterHealth::Failing(message.clone()),
            None => ExporterHealth::Ready,
        }
    }
}
