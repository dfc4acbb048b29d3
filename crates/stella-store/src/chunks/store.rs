//! [`Store`]: sealed chunks on disk, with their manifests and a trace index per day.
//!
//! ```text
//! <root>/<tenant>/<signal>/<YYYY-MM-DD>/<sha256>.chunk   records exactly as logged, length-prefixed, zstd
//!                                      /<sha256>.json    its manifest (RFC 8785)
//!                                      /index.bin        traces: (trace id 16 B, chunk u32 BE, record u32 BE)*, sorted
//!                                      /day.json         the day manifest (RFC 8785): chunks in order, index digest
//! ```
//! Writes go chunk, manifest, index, then `day.json` (each by atomic rename): the day manifest is the
//! commit point. Chunk files are named by their digest, so sealing the same records again after a crash
//! rewrites the same files and lists the chunk once.
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::{CHUNK_FORMAT_VERSION, DayChunk, DayManifest, canonical};
use super::sealer::{SealedChunk, chunk_records};
use crate::log::{LogFs, RealFs};

/// One entry of a day's trace index: trace id, the chunk's position in the day manifest, the record's
/// position in the chunk.
const INDEX_ENTRY: usize = 24;

/// The store could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("store: cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what the store wrote.
    #[error("store: {path} is damaged: {message}; run `stella telemetry store check --repair`")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl StoreError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Io { .. } => "store.io",
            StoreError::Damaged { .. } => "store.damaged",
        }
    }
}

/// What `check` found.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Chunks whose bytes match their digest.
    pub chunks_ok: u64,
    /// Chunks that do not (path and reason).
    pub damaged: Vec<String>,
    /// Day indexes that differed from a rebuild from their chunks.
    pub stale_indexes: Vec<String>,
    /// Day indexes rewritten (with `--repair`).
    pub repaired_indexes: Vec<String>,
}

/// A sealed chunk and where its file is (see [`Store::chunks_overlapping`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    /// Its entry in the day manifest.
    pub chunk: super::manifest::DayChunk,
    /// Its `.chunk` file (read it with [`Store::read_chunk`]).
    pub path: PathBuf,
}

/// The chunk store under one root directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A directory name for a tenant or pipeline id (`traces/audit` -> `traces~audit`).
pub fn directory_name(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '~' }).collect()
}

impl Store {
    /// The store under `root` (`<data-dir>/store`).
    pub fn new(root: PathBuf) -> Self {
        Store { root }
    }

    fn signal_dir(&self, tenant: &str, signal: &str) -> PathBuf {
        self.root.join(directory_name(tenant)).join(signal)
    }

    fn day_dir(&self, tenant: &str, signal: &str, day: &str) -> PathBuf {
        self.signal_dir(tenant, signal).join(day)
    }

    /// Writes a sealed chunk and lists it in its day (once, whatever the retries).
    pub fn write(&self, chunk: &SealedChunk) -> Result<(), StoreError> {
        let manifest = &chunk.manifest;
        let dir = self.day_dir(&manifest.tenant, &manifest.signal, &manifest.day);
        RealFs.create_dir_all(&dir).map_err(io("create", &dir))?;
        let mut day = self.day_manifest(&manifest.tenant, &manifest.signal, &manifest.day)?.unwrap_or(DayManifest {
            format_version: CHUNK_FORMAT_VERSION,
            tenant: manifest.tenant.clone(),
            signal: manifest.signal.clone(),
            day: manifest.day.clone(),
            chunks: Vec::new(),
            index_sha256: None,
        });
        if day.chunks.iter().any(|listed| listed.sha256 == manifest.sha256) {
            return Ok(());
        }
        let chunk_path = dir.join(format!("{}.chunk", manifest.sha256));
        RealFs.write_atomic(&chunk_path, &chunk.bytes).map_err(io("write", &chunk_path))?;
        let manifest_path = dir.join(format!("{}.json", manifest.sha256));
        RealFs.write_atomic(&manifest_path, &canonical(manifest)).map_err(io("write", &manifest_path))?;
        let position = day.chunks.len() as u32;
        if manifest.signal == "traces" {
            let index_path = dir.join("index.bin");
            let existing = RealFs.read_file(&index_path).map_err(io("read", &index_path))?.unwrap_or_default();
            let index = merge_index(&existing, &chunk.trace_ids, position);
            RealFs.write_atomic(&index_path, &index).map_err(io("write", &index_path))?;
            day.index_sha256 = Some(hex::encode(Sha256::digest(&index)));
        }
        day.chunks.push(DayChunk {
            sha256: manifest.sha256.clone(),
            records: manifest.records,
            items: manifest.items,
            min_time_unix_nano: manifest.min_time_unix_nano.clone(),
            max_time_unix_nano: manifest.max_time_unix_nano.clone(),
        });
        let day_path = dir.join("day.json");
        RealFs.write_atomic(&day_path, &canonical(&day)).map_err(io("write", &day_path))
    }

    /// The day manifest of `tenant`'s `signal` on `day`, if that day has chunks.
    pub fn day_manifest(&self, tenant: &str, signal: &str, day: &str) -> Result<Option<DayManifest>, StoreError> {
        let path = self.day_dir(tenant, signal, day).join("day.json");
        let Some(bytes) = RealFs.read_file(&path).map_err(io("read", &path))? else { return Ok(None) };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| StoreError::Damaged { path, message: error.to_string() })
    }

    /// The days that hold `tenant`'s `signal`, newest first.
    pub fn days(&self, tenant: &str, signal: &str) -> Vec<String> {
        let dir = self.signal_dir(tenant, signal);
        let mut days: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        days.sort_unstable_by(|a, b| b.cmp(a));
        days
    }

    /// The records (as logged) of every chunk of `tenant` holding a span of `trace_id`.
    pub fn records_with_trace(&self, tenant: &str, trace_id: &[u8; 16]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut records = Vec::new();
        for day in self.days(tenant, "traces") {
            let Some(manifest) = self.day_manifest(tenant, "traces", &day)? else { continue };
            let dir = self.day_dir(tenant, "traces", &day);
            let mut wanted: Vec<(u32, u32)> = lookup(&dir.join("index.bin"), trace_id)?;
            wanted.sort_unstable();
            let mut current: Option<(u32, Vec<Vec<u8>>)> = None;
            for (position, record) in wanted {
                if current.as_ref().is_none_or(|(open, _)| *open != position) {
                    let Some(chunk) = manifest.chunks.get(position as usize) else { continue };
                    let path = dir.join(format!("{}.chunk", chunk.sha256));
                    current = Some((position, self.read_chunk(&path)?));
                }
                if let Some(found) = current.as_ref().and_then(|(_, chunk)| chunk.get(record as usize)) {
                    records.push(found.clone());
                }
            }
        }
        Ok(records)
    }

    /// Visits the records (as logged) of `tenant`'s `signal` chunks whose time range overlaps
    /// `[start, end]` (unix nanos) and that hold `service` (if given), newest day first; `visit` returns
    /// false to stop.
    pub fn scan(
        &self,
        tenant: &str,
        signal: &str,
        (start, end): (u64, u64),
        service: Option<&str>,
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let first_day = super::sealer::utc_day(start);
        for day in self.days(tenant, signal) {
            // A chunk belongs to the day of its first record; late records can reach back one day.
            if day < previous_day(&first_day) {
                break;
            }
            let Some(manifest) = self.day_manifest(tenant, signal, &day)? else { continue };
            let dir = self.day_dir(tenant, signal, &day);
            for chunk in manifest.chunks.iter().rev() {
                let time = |text: &str| text.parse::<u64>().unwrap_or(0);
                if time(&chunk.max_time_unix_nano) < start || time(&chunk.min_time_unix_nano) > end {
                    continue;
                }
                if let Some(service) = service {
                    let path = dir.join(format!("{}.json", chunk.sha256));
                    let bytes = std::fs::read(&path).map_err(io("read", &path))?;
                    let chunk_manifest: super::manifest::ChunkManifest = serde_json::from_slice(&bytes)
                        .map_err(|error| StoreError::Damaged { path: path.clone(), message: error.to_string() })?;
                    if !chunk_manifest.services.iter().any(|known| known == service) {
                        continue;
                    }
                }
                for record in self.read_chunk(&dir.join(format!("{}.chunk", chunk.sha256)))? {
                    if !visit(&record) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Every chunk of `tenant`'s `signal` whose time range overlaps `[start, end]` (unix nanos, inclusive),
    /// oldest day first and in sealing order within a day: the order a forensic bundle lists records in.
    pub fn chunks_overlapping(
        &self,
        tenant: &str,
        signal: &str,
        (start, end): (u64, u64),
    ) -> Result<Vec<StoredChunk>, StoreError> {
        // A chunk belongs to the day of its first record; late records can reach back one day.
        let first_day = previous_day(&super::sealer::utc_day(start));
        let last_day = super::sealer::utc_day(end);
        let mut found = Vec::new();
        for day in self.days(tenant, signal).into_iter().rev() {
            if day < first_day || day > last_day {
                continue;
            }
            let Some(manifest) = self.day_manifest(tenant, signal, &day)? else { continue };
            let dir = self.day_dir(tenant, signal, &day);
            for chunk in manifest.chunks {
                let time = |text: &str| text.parse::<u64>().unwrap_or(0);
                if time(&chunk.max_time_unix_nano) >= start && time(&chunk.min_time_unix_nano) <= end {
                    found.push(StoredChunk { path: dir.join(format!("{}.chunk", chunk.sha256)), chunk });
                }
            }
        }
        Ok(found)
    }

    /// The records of a chunk file.
    pub fn read_chunk(&self, path: &Path) -> Result<Vec<Vec<u8>>, StoreError> {
        let bytes = std::fs::read(path).map_err(io("read", path))?;
        chunk_records(&bytes).map_err(|message| StoreError::Damaged { path: path.to_path_buf(), message })
    }

    /// Bytes of `tenant`'s `signal` on disk.
    pub fn bytes(&self, tenant: &str, signal: &str) -> u64 {
        fn size(path: &Path) -> u64 {
            std::fs::read_dir(path)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|entry| match entry.file_type() {
                            Ok(kind) if kind.is_dir() => size(&entry.path()),
                            _ => entry.metadata().map_or(0, |meta| meta.len()),
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        size(&self.signal_dir(tenant, signal))
    }

    /// Retention: deletes `tenant`'s `signal` chunks whose newest item is older than `cutoff` (unix nanos),
    /// except those `held` keeps (given a chunk's min and max item time); returns the deleted digests.
    /// A day left with no chunk is removed; otherwise its manifest and index are rebuilt from the chunks it
    /// keeps (the new `day.json` is written before any file is deleted).
    pub fn sweep(
        &self,
        tenant: &str,
        signal: &str,
        cutoff: u64,
        held: &dyn Fn(u64, u64) -> bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut deleted = Vec::new();
        let mut days = self.days(tenant, signal);
        days.reverse();
        for day in days {
            let Some(mut manifest) = self.day_manifest(tenant, signal, &day)? else { continue };
            let time = |text: &str| text.parse::<u64>().unwrap_or(u64::MAX);
            let (expired, kept): (Vec<DayChunk>, Vec<DayChunk>) = manifest.chunks.iter().cloned().partition(|chunk| {
                let (min, max) = (time(&chunk.min_time_unix_nano), time(&chunk.max_time_unix_nano));
                max < cutoff && !held(min, max)
            });
            if expired.is_empty() {
                continue;
            }
            let dir = self.day_dir(tenant, signal, &day);
            if kept.is_empty() {
                std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
            } else {
                if signal == "traces" {
                    let mut index = Vec::new();
                    for (position, chunk) in kept.iter().enumerate() {
                        let path = dir.join(format!("{}.chunk", chunk.sha256));
                        let bytes = std::fs::read(&path).map_err(io("read", &path))?;
                        index = merge_index(&index, &trace_entries(&path, &bytes)?, position as u32);
                    }
                    let index_path = dir.join("index.bin");
                    RealFs.write_atomic(&index_path, &index).map_err(io("write", &index_path))?;
                    manifest.index_sha256 = Some(hex::encode(Sha256::digest(&index)));
                }
                manifest.chunks = kept;
                let day_path = dir.join("day.json");
                RealFs.write_atomic(&day_path, &canonical(&manifest)).map_err(io("write", &day_path))?;
                for chunk in &expired {
                    for extension in ["chunk", "json"] {
                        let path = dir.join(format!("{}.{extension}", chunk.sha256));
                        std::fs::remove_file(&path).map_err(io("remove", &path))?;
                    }
                }
            }
            deleted.extend(expired.into_iter().map(|chunk| chunk.sha256));
        }
        Ok(deleted)
    }

    /// Verifies every chunk against its digest and every trace index against a rebuild from its chunks;
    /// with `repair`, rewrites indexes that differ (damaged chunks are reported, never changed).
    pub fn check(&self, repair: bool) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport::default();
        let tenants = std::fs::read_dir(&self.root).map(|entries| entries.filter_map(Result::ok).collect::<Vec<_>>());
        for tenant_dir in tenants.unwrap_or_default() {
            for signal in ["traces", "metrics", "logs"] {
                let signal_dir = tenant_dir.path().join(signal);
                let mut days: Vec<PathBuf> = std::fs::read_dir(&signal_dir)
                    .map(|entries| entries.filter_map(Result::ok).map(|entry| entry.path()).collect())
                    .unwrap_or_default();
                days.sort();
                for dir in days {
                    self.check_day(&dir, signal, repair, &mut report)?;
                }
            }
        }
        Ok(report)
    }

    fn check_day(&self, dir: &Path, signal: &str, repair: bool, report: &mut CheckReport) -> Result<(), StoreError> {
        let day_path = dir.join("day.json");
        let Some(bytes) = RealFs.read_file(&day_path).map_err(io("read", &day_path))? else { return Ok(()) };
        let mut manifest: DayManifest = serde_json::from_slice(&bytes)
            .map_err(|error| StoreError::Damaged { path: day_path.clone(), message: error.to_string() })?;
        let mut index = Vec::new();
        for (position, chunk) in manifest.chunks.iter().enumerate() {
            let path = dir.join(format!("{}.chunk", chunk.sha256));
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(error) => {
                    report.damaged.push(format!("{}: {error}", path.display()));
                    continue;
                }
            };
            let digest = hex::encode(Sha256::digest(&bytes));
            if digest != chunk.sha256 {
                report.damaged.push(format!("{}: its SHA-256 is {digest}, not its name", path.display()));
                continue;
            }
            report.chunks_ok += 1;
            if signal == "traces" {
                index = merge_index(&index, &trace_entries(&path, &bytes)?, position as u32);
            }
        }
        if signal != "traces" {
            return Ok(());
        }
        let index_path = dir.join("index.bin");
        let current = RealFs.read_file(&index_path).map_err(io("read", &index_path))?.unwrap_or_default();
        let digest = hex::encode(Sha256::digest(&index));
        if current != index || manifest.index_sha256.as_deref() != Some(digest.as_str()) {
            report.stale_indexes.push(index_path.display().to_string());
            if repair {
                RealFs.write_atomic(&index_path, &index).map_err(io("write", &index_path))?;
                manifest.index_sha256 = Some(digest);
                RealFs.write_atomic(&day_path, &canonical(&manifest)).map_err(io("write", &day_path))?;
                report.repaired_indexes.push(index_path.display().to_string());
            }
        }
        Ok(())
    }
}

/// The UTC day before `day` (`YYYY-MM-DD`).
fn previous_day(day: &str) -> String {
    day.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|date| date.yesterday().ok())
        .map_or_else(|| day.to_string(), |date| date.to_string())
}

/// (trace id, record position) of every span in a chunk's bytes.
fn trace_entries(path: &Path, bytes: &[u8]) -> Result<Vec<([u8; 16], u32)>, StoreError> {
    let records = chunk_records(bytes).map_err(|message| StoreError::Damaged { path: path.to_path_buf(), message })?;
    let mut entries = Vec::new();
    for (position, record) in records.iter().enumerate() {
        if let Some(facts) = super::facts::record_facts(stella_otlp::Signal::Traces, record) {
            entries.extend(facts.trace_ids.into_iter().map(|id| (id, position as u32)));
        }
    }
    Ok(entries)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { action, path, source }
}

/// `existing` entries plus `(id, position, record)` for each of `ids`, sorted and distinct.
fn merge_index(existing: &[u8], ids: &[([u8; 16], u32)], position: u32) -> Vec<u8> {
    let mut entries: Vec<[u8; INDEX_ENTRY]> =
        existing.chunks_exact(INDEX_ENTRY).filter_map(|entry| entry.try_into().ok()).collect();
    entries.extend(ids.iter().map(|(id, record)| {
        let mut entry = [0u8; INDEX_ENTRY];
        entry[..16].copy_from_slice(id);
        entry[16..20].copy_from_slice(&position.to_be_bytes());
        entry[20..].copy_from_slice(&record.to_be_bytes());
        entry
    }));
    entries.sort_unstable();
    entries.dedup();
    entries.concat()
}

/// (chunk position, record position) listed for `trace_id` in an index file (binary search with
/// positioned reads).
fn lookup(path: &Path, trace_id: &[u8; 16]) -> Result<Vec<(u32, u32)>, StoreError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StoreError::Io { action: "open", path: path.to_path_buf(), source }),
    };
    let length = file.metadata().map_err(io("read", path))?.len();
    let entries = length / INDEX_ENTRY as u64;
    let read = |at: u64| -> Result<[u8; INDEX_ENTRY], StoreError> {
        let mut entry = [0u8; INDEX_ENTRY];
        file.read_exact_at(&mut entry, at * INDEX_ENTRY as u64).map_err(io("read", path))?;
        Ok(entry)
    };
    // The first entry whose id is not below `trace_id`.
    let (mut low, mut high) = (0u64, entries);
    while low < high {
        let middle = low + (high - low) / 2;
        if read(middle)?[..16] < trace_id[..] {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    let mut positions = Vec::new();
    while low < entries {
        let entry = read(low)?;
        if entry[..16] != trace_id[..] {
            break;
        }
        let word = |at: usize| u32::from_be_bytes([entry[at], entry[at + 1], entry[at + 2], entry[at + 3]]);
        positions.push((word(16), word(20)));
        low += 1;
    }
    Ok(positions)
}
