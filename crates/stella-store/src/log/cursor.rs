use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::io;
use super::{LogError, LogFs};

/// Where a consumer stands in a log: the next record it will read, and an opaque checkpoint of its own
/// (the file exporter stores its file length, to cut off a partial write after a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cursor {
    /// The sequence number of the next record to read.
    pub next_seq: u64,
    /// The consumer's own position marker, if it keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<u64>,
}

/// The cursors of one log, one JSON file per consumer under `<log dir>/cursors/`.
pub struct CursorStore<F: LogFs> {
    fs: Arc<F>,
    dir: PathBuf,
}

impl<F: LogFs> CursorStore<F> {
    /// The cursor store of the log in `log_dir`.
    pub fn new(fs: Arc<F>, log_dir: PathBuf) -> Self {
        CursorStore { fs, dir: log_dir.join("cursors") }
    }

    fn path(&self, consumer: &str) -> PathBuf {
        let file: String =
            consumer.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '~' }).collect();
        self.dir.join(format!("{file}.json"))
    }

    /// The saved cursor of `consumer`, if it has one.
    pub fn load(&self, consumer: &str) -> Result<Option<Cursor>, LogError> {
        let path = self.path(consumer);
        let bytes = self.fs.read_file(&path).map_err(io("read", &path))?;
        let Some(bytes) = bytes else { return Ok(None) };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| LogError::BadCursor { path, reason: error.to_string() })
    }

    /// The furthest `next_seq` of every readable cursor (0 when there is none): the log never hands out a
    /// sequence number below it again, whatever happened to its segments.
    pub fn furthest(&self) -> u64 {
        let files = self.fs.list(&self.dir).unwrap_or_default();
        files
            .iter()
            .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
            .filter_map(|path| self.fs.read_file(path).ok().flatten())
            .filter_map(|bytes| serde_json::from_slice::<Cursor>(&bytes).ok())
            .map(|cursor| cursor.next_seq)
            .max()
            .unwrap_or(0)
    }

    /// Saves `cursor` for `consumer`, atomically and durably.
    pub fn save(&self, consumer: &str, cursor: &Cursor) -> Result<(), LogError> {
        self.fs.create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let path = self.path(consumer);
        let bytes = serde_json::to_vec(cursor).unwrap_or_default();
        self.fs.write_atomic(&path, &bytes).map_err(io("write", &path))
    }
}
