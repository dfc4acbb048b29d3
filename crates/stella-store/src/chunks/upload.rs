//! Moving sealed chunks to object storage ([`Store::upload_pending`]), evicting local copies, and what
//! reads, retention and `check` do about chunks that live there.
//!
//! ```text
//! <root>/<tenant>/<signal>/<YYYY-MM-DD>/uploaded.json   {"chunks":[<sha256>...]} (RFC 8785): confirmed in
//!                                                       object storage, chunk file and manifest both
//! ```
//! The local directory stays the write path: a chunk is sealed to disk first, uploaded later, and listed
//! in `uploaded.json` only once object storage has confirmed both of its objects. Only a listed chunk's
//! `.chunk` file may be evicted; its manifest, the day manifest and the indexes always stay local (they
//! are small and every query starts from them). A chunk that is not listed stays on disk whatever
//! happens to uploads, so nothing sealed is ever lost to an unreachable bucket.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::day;
use super::manifest::canonical;
use super::remote::RemoteChunks;
use super::store::{CheckReport, Store, StoreError, digest, io};
use crate::log::{LogFs, RealFs};

/// The bookkeeping file of a day directory.
const UPLOADED_FILE: &str = "uploaded.json";

/// Chunks one upload round uploads at most, so that during a long catch-up evictions free disk and the
/// caller's counters move every few seconds; the rest wait for the next round.
pub const ROUND_CHUNKS: u64 = 64;

/// How many uploaded chunk files stay on local disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCache {
    /// Every chunk stays on local disk as well (object storage holds a copy).
    KeepAll,
    /// Uploaded chunk files past this many bytes are evicted, oldest day first; `UpTo(0)` keeps none
    /// (upload only). Chunks not uploaded yet always stay, and do not count.
    UpTo(u64),
}

/// What one [`Store::upload_pending`] round did.
#[derive(Debug, Default)]
pub struct UploadRound {
    /// Chunks uploaded and recorded.
    pub uploaded: u64,
    /// Their chunk-file bytes.
    pub uploaded_bytes: u64,
    /// Local chunk files evicted.
    pub evicted: u64,
    /// Chunks left for a later round: after `error`, or past the round's [`ROUND_CHUNKS`].
    pub waiting: u64,
    /// The failure that stopped this round's uploads (they resume in the next round).
    pub error: Option<StoreError>,
}

/// `uploaded.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct UploadedChunks {
    chunks: BTreeSet<String>,
}

/// The chunks of the day directory `dir` confirmed in object storage (none when it has no
/// `uploaded.json`).
pub(super) fn read_uploaded(dir: &Path) -> Result<BTreeSet<String>, StoreError> {
    let path = dir.join(UPLOADED_FILE);
    let Some(bytes) = RealFs.read_file(&path).map_err(io("read", &path))? else { return Ok(BTreeSet::new()) };
    serde_json::from_slice::<UploadedChunks>(&bytes)
        .map(|uploaded| uploaded.chunks)
        .map_err(|error| StoreError::Damaged { path, message: error.to_string() })
}

/// [`read_uploaded`] for the uploader: a damaged `uploaded.json` is logged and counts as empty, so the
/// day's chunks on disk are uploaded again (same keys, same bytes) and the file is rewritten, rather than
/// one bad file stopping every upload.
fn uploaded_or_rebuilt(dir: &Path) -> Result<BTreeSet<String>, StoreError> {
    match read_uploaded(dir) {
        Err(error @ StoreError::Damaged { .. }) => {
            tracing::warn!(code = error.code(), %error, "uploading the day's chunks on disk again to rebuild it");
            Ok(BTreeSet::new())
        }
        other => other,
    }
}

/// Writes the day's `uploaded.json` (removes it when `chunks` is empty).
fn write_uploaded(dir: &Path, chunks: BTreeSet<String>) -> Result<(), StoreError> {
    let path = dir.join(UPLOADED_FILE);
    if chunks.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &path)(error)),
            _ => Ok(()),
        };
    }
    RealFs.write_atomic(&path, &canonical(&UploadedChunks { chunks })).map_err(io("write", &path))
}

/// The `.chunk` files in `dir`: (digest, size), by digest.
fn local_chunks(dir: &Path) -> Result<Vec<(String, u64)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // Retention removed the day meanwhile.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io("list", dir)(error)),
    };
    let mut chunks = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(sha256) = name.strip_suffix(".chunk") else { continue };
        // A file gone since the listing was evicted or swept meanwhile: skip it.
        if let Ok(meta) = entry.metadata() {
            chunks.push((sha256.to_string(), meta.len()));
        }
    }
    chunks.sort_unstable();
    Ok(chunks)
}

impl Store {
    /// One round of uploads: chunks sealed on local disk and not yet confirmed in object storage are
    /// uploaded (chunk file, then manifest) and recorded, oldest day first, at most [`ROUND_CHUNKS`];
    /// then uploaded chunk files beyond `cache` are evicted. The first failed upload ends the round's
    /// uploads. What is not uploaded is counted in [`UploadRound::waiting`] and stays on local disk for
    /// the next round. Blocking: network and disk.
    pub fn upload_pending(&self, cache: LocalCache) -> UploadRound {
        let mut round = UploadRound::default();
        let Some(remote) = &self.remote else { return round };
        for dir in self.dirs_oldest_first() {
            if let Err(error) = self.upload_day(remote, &dir, &mut round) {
                round.error.get_or_insert(error);
            }
        }
        if let LocalCache::UpTo(limit) = cache
            && let Err(error) = self.evict_beyond(limit, &mut round)
        {
            round.error.get_or_insert(error);
        }
        round
    }

    /// Day directories, oldest day first.
    fn dirs_oldest_first(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.day_dirs().into_iter().map(|(_, dir)| dir).collect();
        dirs.sort_by(|a, b| a.file_name().cmp(&b.file_name()).then_with(|| a.cmp(b)));
        dirs
    }

    /// Uploads the day's chunks that are on disk, listed in its manifest and not recorded yet.
    fn upload_day(&self, remote: &RemoteChunks, dir: &Path, round: &mut UploadRound) -> Result<(), StoreError> {
        let local = local_chunks(dir)?;
        if local.is_empty() {
            return Ok(());
        }
        let uploaded = uploaded_or_rebuilt(dir)?;
        let waiting: BTreeSet<String> =
            local.into_iter().map(|(sha256, _)| sha256).filter(|sha256| !uploaded.contains(sha256)).collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let Some(day) = day::load(dir)? else { return Ok(()) };
        for chunk in day.chunks().filter(|chunk| waiting.contains(&chunk.sha256)) {
            if round.error.is_some() || round.uploaded >= ROUND_CHUNKS {
                round.waiting += 1;
                continue;
            }
            match self.upload_chunk(remote, dir, &chunk.sha256) {
                Ok(Some(bytes)) => {
                    round.uploaded += 1;
                    round.uploaded_bytes += bytes;
                }
                Ok(None) => {}
                Err(error) => {
                    round.waiting += 1;
                    round.error = Some(error);
                }
            }
        }
        Ok(())
    }

    /// Uploads one chunk and its manifest and records it; its size, or `None` when there was nothing to
    /// upload (swept meanwhile, or damaged on disk: then `store check` reports it and it stays local).
    fn upload_chunk(&self, remote: &RemoteChunks, dir: &Path, sha256: &str) -> Result<Option<u64>, StoreError> {
        let chunk_path = dir.join(format!("{sha256}.chunk"));
        let manifest_path = dir.join(format!("{sha256}.json"));
        let (bytes, manifest) = match (std::fs::read(&chunk_path), std::fs::read(&manifest_path)) {
            (Ok(bytes), Ok(manifest)) => (bytes, manifest),
            (Err(error), _) | (_, Err(error)) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            (Err(error), _) => return Err(io("read", &chunk_path)(error)),
            (_, Err(error)) => return Err(io("read", &manifest_path)(error)),
        };
        let found = digest(&bytes);
        if found != sha256 {
            let error = StoreError::Damaged {
                path: chunk_path,
                message: format!("its SHA-256 is {found}, not its name; it is not uploaded"),
            };
            tracing::warn!(code = error.code(), %error, "chunk left on local disk");
            return Ok(None);
        }
        let size = bytes.len() as u64;
        let (chunk_key, manifest_key) = (self.key_of(remote, &chunk_path), self.key_of(remote, &manifest_path));
        remote.put(&chunk_key, bytes)?;
        remote.put(&manifest_key, manifest)?;
        let _bookkeeping = self.bookkeeping.lock().unwrap_or_else(|poison| poison.into_inner());
        let listed = day::load(dir)?.is_some_and(|day| day.chunks().any(|chunk| chunk.sha256 == sha256));
        if !listed {
            // Retention deleted the chunk while it was uploading: so goes its copy.
            remote.delete(&chunk_key)?;
            remote.delete(&manifest_key)?;
            return Ok(None);
        }
        let mut uploaded = uploaded_or_rebuilt(dir)?;
        uploaded.insert(sha256.to_string());
        write_uploaded(dir, uploaded)?;
        Ok(Some(size))
    }

    /// Evicts uploaded chunk files, oldest day first, until those left on disk fit in `limit` bytes.
    fn evict_beyond(&self, limit: u64, round: &mut UploadRound) -> Result<(), StoreError> {
        let _bookkeeping = self.bookkeeping.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut cached = Vec::new();
        for dir in self.dirs_oldest_first() {
            let uploaded = read_uploaded(&dir)?;
            if uploaded.is_empty() {
                continue;
            }
            for (sha256, size) in local_chunks(&dir)? {
                if uploaded.contains(&sha256) {
                    cached.push((dir.join(format!("{sha256}.chunk")), size));
                }
            }
        }
        let mut total: u64 = cached.iter().map(|(_, size)| size).sum();
        for (path, size) in cached {
            if total <= limit {
                break;
            }
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(io("evict", &path)(error)),
                _ => {}
            }
            total -= size;
            round.evicted += 1;
        }
        Ok(())
    }

    /// The object key of a file under the store root.
    fn key_of(&self, remote: &RemoteChunks, path: &Path) -> object_store::path::Path {
        remote.key(path.strip_prefix(&self.root).unwrap_or(path))
    }

    /// The bytes of the chunk file `path`, missing on disk (`missing`): fetched from object storage and
    /// checked against its digest; without object storage, [`StoreError::Evicted`] if it was uploaded,
    /// else the read error.
    pub(super) fn read_evicted(&self, path: &Path, missing: std::io::Error) -> Result<Vec<u8>, StoreError> {
        let sha256 = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(remote) = &self.remote else {
            let uploaded = path.parent().map(read_uploaded).transpose()?.unwrap_or_default();
            return Err(if uploaded.contains(&sha256) {
                StoreError::Evicted { path: path.to_path_buf() }
            } else {
                io("read", path)(missing)
            });
        };
        remote.fetch_chunk(&self.key_of(remote, path), &sha256)
    }

    /// Retention of chunk `sha256` of the day `dir`: deletes its objects in object storage, if attached.
    /// Whether the chunk may go (false, and a warning, when object storage failed: the sweep keeps it and
    /// tries again next time, so no object is left behind unlisted).
    pub(super) fn forget_remote(&self, dir: &Path, sha256: &str) -> bool {
        let Some(remote) = &self.remote else { return true };
        for extension in ["chunk", "json"] {
            let key = self.key_of(remote, &dir.join(format!("{sha256}.{extension}")));
            if let Err(error) = remote.delete(&key) {
                tracing::warn!(code = error.code(), %error, "retention keeps the chunk until its copy in object storage is deleted; the next sweep tries again");
                return false;
            }
        }
        true
    }

    /// Warns when retention deletes chunks of `dir` that were uploaded while this store has no object
    /// storage attached (egress sealed, backend removed): their copies stay in the bucket.
    pub(super) fn warn_left_remote(&self, dir: &Path, expired: &[super::manifest::DayChunk]) {
        if self.remote.is_some() {
            return;
        }
        let uploaded = read_uploaded(dir).unwrap_or_default();
        let left = expired.iter().filter(|chunk| uploaded.contains(&chunk.sha256)).count();
        if left > 0 {
            tracing::warn!(code = "store.remote_left", chunks = left, dir = %dir.display(), "retention deleted chunks whose copies stay in object storage: no storage.backend is attached; delete them there (a bucket lifecycle rule) or run with the backend");
        }
    }

    /// Takes retention's `expired` chunks out of the day's `uploaded.json`.
    pub(super) fn unrecord_uploaded(
        &self,
        dir: &Path,
        expired: &[super::manifest::DayChunk],
    ) -> Result<(), StoreError> {
        let mut uploaded = read_uploaded(dir)?;
        let before = uploaded.len();
        for chunk in expired {
            uploaded.remove(&chunk.sha256);
        }
        if uploaded.len() == before {
            return Ok(());
        }
        write_uploaded(dir, uploaded)
    }

    /// `check`'s read of chunk `sha256` at `path`: its bytes, from disk or (evicted) from object storage;
    /// `Ok(None)` for an evicted chunk this store cannot reach (recorded in `report`); `Err` with the
    /// report line when it cannot be read. With `remote_copies`, the object-storage copy of an uploaded
    /// chunk on disk is streamed and checked too (a bad copy is reported as damaged).
    pub(super) fn check_read(
        &self,
        path: &Path,
        sha256: &str,
        uploaded: &BTreeSet<String>,
        remote_copies: bool,
        report: &mut CheckReport,
    ) -> Result<Option<Vec<u8>>, String> {
        let is_uploaded = uploaded.contains(sha256);
        match (std::fs::read(path), &self.remote) {
            (Ok(bytes), Some(remote)) if remote_copies && is_uploaded => {
                match remote.verify_chunk(&self.key_of(remote, path), sha256) {
                    Ok(_) => report.remote_ok += 1,
                    Err(error) => report.damaged.push(error.to_string()),
                }
                Ok(Some(bytes))
            }
            (Ok(bytes), _) => Ok(Some(bytes)),
            (Err(error), Some(remote)) if error.kind() == std::io::ErrorKind::NotFound && is_uploaded => {
                let bytes =
                    remote.fetch_chunk(&self.key_of(remote, path), sha256).map_err(|error| error.to_string())?;
                report.remote_ok += 1;
                Ok(Some(bytes))
            }
            (Err(error), None) if error.kind() == std::io::ErrorKind::NotFound && is_uploaded => {
                report.remote_unchecked.push(path.display().to_string());
                Ok(None)
            }
            (Err(error), _) => Err(format!("{}: {error}", path.display())),
        }
    }
}
