//! Reading a log without opening it (offline commands, beside or without a server): `store check` reads
//! every segment through (damage found and skipped, never changed) and lists the damage already
//! quarantined; [`read_log_from`] reads the records from a sequence number on, as a consumer would.
use std::path::{Path, PathBuf};

use super::damage::{Damage, quarantined};
use super::segments::{list_segments, scan_segment};
use super::{LogError, LogFs};

/// What a check of one log directory found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogCheck {
    /// The log directory.
    pub dir: PathBuf,
    /// Segment files.
    pub segments: usize,
    /// Whole, valid records.
    pub records: u64,
    /// Damaged ranges in the segments (each also quarantined once a server or reader met it).
    pub damage: Vec<Damage>,
    /// Quarantined ranges (files under `quarantine/`).
    pub quarantined: Vec<PathBuf>,
}

impl LogCheck {
    /// Whether the log is free of damage, found now or quarantined before.
    pub fn intact(&self) -> bool {
        self.damage.is_empty() && self.quarantined.is_empty()
    }
}

/// Checks the log in `dir`.
pub fn check_log<F: LogFs>(fs: &F, dir: &Path) -> Result<LogCheck, LogError> {
    let segments = list_segments(fs, dir)?;
    let mut records = 0u64;
    let mut damage = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        let next = segments.get(index + 1).map(|next| next.first_seq);
        damage.extend(scan_segment(fs, segment, next, &mut |_| records += 1)?);
    }
    Ok(LogCheck {
        dir: dir.to_path_buf(),
        segments: segments.len(),
        records,
        damage,
        quarantined: quarantined(fs, dir),
    })
}

/// Hands every record of the log in `dir` from `from` on to `visit`, in order, reading as a consumer does
/// (damage skipped) but changing nothing: no recovery, no quarantine.
pub fn read_log_from<F: LogFs>(
    fs: &F,
    dir: &Path,
    from: u64,
    visit: &mut dyn FnMut(super::Record),
) -> Result<(), LogError> {
    let segments = list_segments(fs, dir)?;
    for (index, segment) in segments.iter().enumerate() {
        let next = segments.get(index + 1).map(|next| next.first_seq);
        if next.is_some_and(|next| next <= from) {
            continue;
        }
        scan_segment(fs, segment, next, &mut |record| {
            if record.seq >= from {
                visit(record);
            }
        })?;
    }
    Ok(())
}
