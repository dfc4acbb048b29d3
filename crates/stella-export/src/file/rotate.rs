//! Size rotation and pruning of rotated files (lumberjack semantics, as the upstream file exporter):
//! `traces.jsonl` becomes `traces-2026-11-29T10-15-30.123.jsonl`; old rotated files beyond `max_backups`
//! or older than `max_days` are deleted.
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::RotationConfig;

/// The name a file gets when it is rotated at `now`.
pub(crate) fn rotated_name(path: &Path, now: jiff::Zoned) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let extension = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    let stamp = now.strftime("%Y-%m-%dT%H-%M-%S%.3f");
    path.with_file_name(format!("{stem}-{stamp}{extension}"))
}

/// Rotated files of `path`, oldest first (their names sort by time).
pub(crate) fn rotated_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let Some(directory) = path.parent() else {
        return Ok(Vec::new());
    };
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let extension = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    let prefix = format!("{stem}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let middle = name.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(&extension));
        if middle.is_some_and(|stamp| stamp.len() == 23 && stamp.starts_with(|c: char| c.is_ascii_digit())) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Deletes a rotated file and its signed manifest, if it has one.
fn remove_with_manifest(rotated: &Path) -> std::io::Result<()> {
    std::fs::remove_file(rotated)?;
    match std::fs::remove_file(super::rotation_manifest_path(rotated)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Deletes rotated files of `path` beyond `max_backups` (oldest first) or older than `max_days`.
pub(crate) fn prune(path: &Path, rotation: &RotationConfig, now: SystemTime) -> std::io::Result<()> {
    let mut rotated = rotated_files(path)?;
    if rotation.max_backups > 0 && rotated.len() > rotation.max_backups {
        let excess = rotated.len() - rotation.max_backups;
        for old in rotated.drain(..excess) {
            remove_with_manifest(&old)?;
        }
    }
    if rotation.max_days > 0 {
        let max_age = Duration::from_secs(rotation.max_days * 86_400);
        for old in rotated {
            let modified = std::fs::metadata(&old)?.modified()?;
            if now.duration_since(modified).is_ok_and(|age| age > max_age) {
                remove_with_manifest(&old)?;
            }
        }
    }
    Ok(())
}
