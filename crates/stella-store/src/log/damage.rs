//! Damage in a segment and its quarantine.
//!
//! A record that is short or fails its checksum with a valid record after it is *damage*, not a torn
//! tail: the records after it are kept (the reader finds the next valid record and goes on), and the
//! damaged bytes are copied once to `<log dir>/quarantine/<segment>-<start>-<end>.damaged` for inspection.
//! The copy is how damage is remembered: it is counted and logged when the copy is made, readiness
//! reports the log as degraded while copies exist, and removing them (after inspection) clears that.
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::LogFs;

/// The quarantine folder of a log directory.
pub(crate) const QUARANTINE_DIR: &str = "quarantine";
const SUFFIX: &str = ".damaged";

/// A damaged byte range of one segment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// The segment file.
    pub segment: PathBuf,
    /// The damaged bytes, `[start, end)`.
    pub bytes: Range<u64>,
    /// The sequence numbers of the records lost there.
    pub lost: Range<u64>,
    /// What was found at `bytes.start`.
    pub reason: &'static str,
}

impl Damage {
    /// Records lost.
    pub fn records(&self) -> u64 {
        self.lost.end.saturating_sub(self.lost.start)
    }

    fn quarantine_path(&self, log_dir: &Path) -> PathBuf {
        let segment = self.segment.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        log_dir.join(QUARANTINE_DIR).join(format!("{segment}-{}-{}{SUFFIX}", self.bytes.start, self.bytes.end))
    }

    /// Copies the damaged bytes to the log's quarantine folder, unless a copy is already there. Returns
    /// whether this call made the copy (so damage is counted and logged once, also across restarts).
    pub(crate) fn quarantine<F: LogFs>(&self, fs: &F, log_dir: &Path) -> std::io::Result<bool> {
        let path = self.quarantine_path(log_dir);
        if fs.len(&path).is_ok() {
            return Ok(false);
        }
        let length = usize::try_from(self.bytes.end - self.bytes.start).unwrap_or(usize::MAX);
        let bytes = fs.read_at(&self.segment, self.bytes.start, length)?;
        fs.create_dir_all(&log_dir.join(QUARANTINE_DIR))?;
        fs.write_atomic(&path, &bytes)?;
        Ok(true)
    }
}

/// The quarantined ranges of the log in `log_dir` (their files), oldest segment first.
pub fn quarantined<F: LogFs>(fs: &F, log_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs
        .list(&log_dir.join(QUARANTINE_DIR))
        .unwrap_or_default()
        .into_iter()
        .filter(|path| path.to_string_lossy().ends_with(SUFFIX))
        .collect();
    files.sort();
    files
}
