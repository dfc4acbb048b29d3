use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use stella_otlp::{Batch, Signal};

use super::{FileConfig, RotationSigner, encode_protobuf_record, encode_record, rotate};
use crate::error::io;
use crate::{BoxFuture, Delivery, Encoded, ExportError, Exporter, ExporterHealth};

/// `exporters.file` at run time: one open file per signal, written under a lock per file.
pub struct FileExporter {
    id: String,
    config: FileConfig,
    files: BTreeMap<Signal, Arc<Mutex<OpenFile>>>,
    last_error: Mutex<Option<String>>,
    signer: Option<Arc<dyn RotationSigner>>,
}

struct OpenFile {
    path: PathBuf,
    file: File,
    positions: Positions,
    /// The file may hold bytes past `positions.len` that a failed write left and could not cut.
    uncut: bool,
}

/// The sidecar `<file>.positions` (JSON): the file length the last recorded write ended at, and each
/// consumer's log position after its last write. On open, bytes past `len` (a write whose position was
/// not recorded, e.g. cut by `kill -9`) are cut off and delivered again by their consumer, which resumes
/// from its recorded position: each record lands in the file exactly once.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Positions {
    len: u64,
    consumers: BTreeMap<String, u64>,
}

fn positions_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".positions");
    path.with_file_name(name)
}

impl FileExporter {
    /// Opens (creating directories and files as needed, appending to existing ones) the file of every signal;
    /// `signer`, if any, signs the manifest of every rotated file.
    pub fn open(
        id: String,
        config: FileConfig,
        data_dir: &Path,
        signer: Option<Arc<dyn RotationSigner>>,
    ) -> Result<Self, ExportError> {
        let mut files = BTreeMap::new();
        let mut by_path: BTreeMap<PathBuf, Arc<Mutex<OpenFile>>> = BTreeMap::new();
        for signal in Signal::ALL {
            let path = config.path_for(signal, data_dir);
            let shared = match by_path.get(&path) {
                Some(existing) => Arc::clone(existing),
                None => {
                    let opened = Arc::new(Mutex::new(OpenFile::open(path.clone(), None)?));
                    by_path.insert(path, Arc::clone(&opened));
                    opened
                }
            };
            files.insert(signal, shared);
        }
        Ok(FileExporter { id, config, files, last_error: Mutex::new(None), signer })
    }

    /// The config this exporter was built from (to reuse it across reloads when unchanged).
    pub fn config(&self) -> &FileConfig {
        &self.config
    }

    /// Appends one encoded record to the file of `signal` (off the async workers) and records `delivery`.
    async fn write_record(
        &self,
        signal: Signal,
        record: Result<Vec<u8>, ExportError>,
        delivery: Delivery<'_>,
    ) -> Result<(), ExportError> {
        let Some(file) = self.files.get(&signal).cloned() else { return Ok(()) };
        let record = record?;
        let config = self.config.clone();
        let path = config.path.clone();
        let consumer = delivery.consumer.to_string();
        let next_seq = delivery.next_seq;
        let signer = self.signer.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut open = file.lock().unwrap_or_else(|poison| poison.into_inner());
            open.write(&record, &config, (&consumer, next_seq), signer.as_deref())
        })
        .await
        .unwrap_or(Err(ExportError::Interrupted { path }));
        self.remember(&written);
        written
    }

    fn remember(&self, result: &Result<(), ExportError>) {
        let mut last_error = self.last_error.lock().unwrap_or_else(|poison| poison.into_inner());
        *last_error = result.as_ref().err().map(ToString::to_string);
    }
}

impl OpenFile {
    /// Opens `path` for appending; `carried` are the consumer positions to keep (after a rotation).
    fn open(path: PathBuf, carried: Option<BTreeMap<String, u64>>) -> Result<Self, ExportError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create the directory of", &path))?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io("open", &path))?;
        let size = file.metadata().map_err(io("stat", &path))?.len();
        let recorded = std::fs::read(positions_path(&path))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Positions>(&bytes).ok());
        let mut positions = recorded.unwrap_or(Positions { len: size, consumers: BTreeMap::new() });
        if size > positions.len {
            file.set_len(positions.len).map_err(io("truncate", &path))?;
            let cut_bytes = size - positions.len;
            tracing::warn!(path = %path.display(), cut_bytes, "file exporter: cut an unrecorded tail; its consumer writes it again");
        }
        // Shorter than recorded: rotated after the last record; continue from its length.
        positions.len = positions.len.min(size);
        if let Some(carried) = carried {
            positions.consumers = carried;
        }
        let open = OpenFile { path, file, positions, uncut: false };
        open.save_positions()?;
        Ok(open)
    }

    fn save_positions(&self) -> Result<(), ExportError> {
        let sidecar = positions_path(&self.path);
        let temporary = sidecar.with_extension("positions.tmp");
        let bytes = serde_json::to_vec(&self.positions).unwrap_or_default();
        std::fs::write(&temporary, bytes)
            .and_then(|()| std::fs::rename(&temporary, &sidecar))
            .map_err(io("record positions in", &sidecar))
    }

    fn write(
        &mut self,
        record: &[u8],
        config: &FileConfig,
        delivery: (&str, u64),
        signer: Option<&dyn RotationSigner>,
    ) -> Result<(), ExportError> {
        if let Some(rotation) = &config.rotation {
            let limit = rotation.max_megabytes.saturating_mul(1024 * 1024);
            if self.positions.len > 0 && self.positions.len + record.len() as u64 > limit {
                self.rotate(config, signer)?;
            }
        }
        if self.uncut {
            // An earlier failed write could not be cut back: do it before appending anything.
            self.file.set_len(self.positions.len).map_err(io("truncate", &self.path))?;
            self.uncut = false;
        }
        let saved = self.positions.clone();
        if let Err(source) = self.file.write_all(record) {
            self.undo(saved);
            return Err(ExportError::Io { action: "write", path: self.path.clone(), source });
        }
        self.positions.len += record.len() as u64;
        let (consumer, next_seq) = delivery;
        self.positions.consumers.insert(consumer.to_string(), next_seq);
        if let Err(error) = self.save_positions() {
            // Not recorded means not delivered: the consumer retries this batch, so the bytes must go, or
            // the retry would write them twice.
            self.undo(saved);
            return Err(error);
        }
        Ok(())
    }

    /// Takes back a write that did not complete: the file is cut to the recorded length and the positions
    /// are as before (if the cut fails, it is done before the next write).
    fn undo(&mut self, saved: Positions) {
        self.uncut = self.file.set_len(saved.len).is_err();
        self.positions = saved;
    }

    fn rotate(&mut self, config: &FileConfig, signer: Option<&dyn RotationSigner>) -> Result<(), ExportError> {
        let path = self.path.clone();
        self.file.sync_all().map_err(io("rotate", &path))?;
        let localtime = config.rotation.as_ref().is_some_and(|rotation| rotation.localtime);
        let now = if localtime { jiff::Zoned::now() } else { jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC) };
        let rotated = rotate::rotated_name(&path, now);
        std::fs::rename(&path, &rotated).map_err(io("rotate", &path))?;
        if let Some(signer) = signer {
            // The rotation stands either way; a manifest that could not be written is reported, and the
            // rotated file can still be signed later from its unchanged bytes.
            match signer.sign_rotation(&rotated) {
                Ok(manifest) => {
                    tracing::info!(file = %rotated.display(), manifest = %manifest.display(), "file exporter: rotated file signed")
                }
                Err(message) => {
                    tracing::error!(file = %rotated.display(), %message, "file exporter: cannot write the signed manifest of a rotated file")
                }
            }
        }
        let consumers = std::mem::take(&mut self.positions.consumers);
        *self = OpenFile::open(path.clone(), Some(consumers))?;
        if let Some(rotation) = &config.rotation {
            rotate::prune(&path, rotation, SystemTime::now()).map_err(io("prune rotated files of", &path))?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), ExportError> {
        self.file.sync_all().map_err(io("sync", &self.path))?;
        let sidecar = positions_path(&self.path);
        File::open(&sidecar).and_then(|positions| positions.sync_all()).map_err(io("sync", &sidecar))
    }
}

impl Exporter for FileExporter {
    fn id(&self) -> &str {
        &self.id
    }

    fn export<'a>(&'a self, batch: &'a Batch, delivery: Delivery<'a>) -> BoxFuture<'a, Result<(), ExportError>> {
        let config = &self.config;
        let record = encode_record(&batch.request, config.format, config.compression)
            .map_err(io("encode a record for", &config.path));
        Box::pin(self.write_record(batch.signal(), record, delivery))
    }

    fn takes_encoded(&self) -> bool {
        self.config.format == super::Format::Proto
    }

    fn export_encoded<'a>(
        &'a self,
        encoded: &'a Encoded,
        delivery: Delivery<'a>,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        let config = &self.config;
        let record =
            encode_protobuf_record(&encoded.bytes, config.compression).map_err(io("encode a record for", &config.path));
        Box::pin(self.write_record(encoded.signal, record, delivery))
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async move {
            for file in self.files.values() {
                let file = Arc::clone(file);
                let synced = tokio::task::spawn_blocking(move || {
                    file.lock().unwrap_or_else(|poison| poison.into_inner()).sync()
                })
                .await;
                synced.unwrap_or_else(|_| Err(ExportError::Interrupted { path: self.config.path.clone() }))?;
            }
            Ok(())
        })
    }

    fn resume_point(&self, signal: Signal, consumer: &str) -> Option<u64> {
        let file = self.files.get(&signal)?.lock().unwrap_or_else(|poison| poison.into_inner());
        file.positions.consumers.get(consumer).copied()
    }

    fn health(&self) -> ExporterHealth {
        match self.last_error.lock().unwrap_or_else(|poison| poison.into_inner()).as_ref() {
            Some(message) => ExporterHealth::Failing(message.clone()),
            None => ExporterHealth::Ready,
        }
    }
}
