//! [`Store`]: sealed chunks on disk, with their manifests, a trace index and an index shard per day.
//!
//! ```text
//! <root>/<tenant>/<signal>/<YYYY-MM-DD>/<sha256>.chunk   records exactly as logged, length-prefixed, zstd
//!                                      /<sha256>.json    its manifest (RFC 8785)
//!                                      /index.bin        traces: (trace id 16 B, chunk u32 BE, record u32 BE)*, sorted
//!                                      /services.bin     traces: index shard, service -> chunks (+ times, spans)
//!                                      /streams.bin      logs: index shard, stream labels -> chunks (+ times, records)
//!                                      /series.bin       metrics: index shard, name + labels -> chunks (+ times, points)
//!                                      /day.json         the day manifest (RFC 8785): chunks in order, index digests
//! ```
//! Writes go chunk, manifest, indexes, then `day.json` (each by atomic rename): the day manifest is the
//! commit point, and it records the digest of each index. Chunk files are named by their digest, so
//! sealing the same records again after a crash rewrites the same files and lists the chunk once. An
//! index shard is trusted only when its digest and chunk count match the day manifest; otherwise a write
//! rebuilds it from the day's chunks, a scan reads every chunk of the day, and `check` reports it.
//!
//! With object storage attached ([`Store::with_remote`]), a day also has `uploaded.json`, the chunks
//! confirmed there, and the `.chunk` file of an uploaded chunk may be evicted: reads then fetch it from
//! object storage and check it against its digest (see `upload.rs`).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use stella_otlp::Signal;

pub use super::error::StoreError;
pub(crate) use super::error::io;
use super::index::{DayIndexes, IndexBuilder, lookup, merge_index, retain_index};
use super::manifest::{CHUNK_FORMAT_VERSION, ChunkManifest, DayChunk, DayManifest, canonical};
use super::remote::RemoteChunks;
use super::sealer::{SealedChunk, chunk_records};
use super::shard::{DayShard, matching_chunks, shard_file};
use super::streams::ScanFilter;
use crate::log::{LogFs, RealFs};

/// What `check` found.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Chunks whose bytes match their digest.
    pub chunks_ok: u64,
    /// Chunks that do not (path and reason).
    pub damaged: Vec<String>,
    /// Day indexes (`index.bin`) and index shards missing or differing from a rebuild from their chunks.
    pub stale_indexes: Vec<String>,
    /// Day indexes and index shards rewritten (with `--repair`).
    pub repaired_indexes: Vec<String>,
    /// Chunks read back from object storage and found to match their digest (counted in `chunks_ok`
    /// too): evicted chunks, and with [`CheckOptions::remote_copies`] the copies of cached ones.
    pub remote_ok: u64,
    /// Evicted chunks not verified because this store has no object storage attached (their days'
    /// indexes are not checked either).
    pub remote_unchecked: Vec<String>,
}

/// What [`Store::check_with`] verifies besides every local chunk and index.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// Rewrite stale indexes.
    pub repair: bool,
    /// Also stream the object-storage copy of every uploaded chunk still on local disk and check its
    /// digest (evicted chunks are always read back from object storage: their days' indexes need them).
    pub remote_copies: bool,
}

/// A sealed chunk and where its file is (see [`Store::scan_plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    /// Its entry in the day manifest.
    pub chunk: super::manifest::DayChunk,
    /// Its `.chunk` file (read it with [`Store::read_chunk`]).
    pub path: PathBuf,
}

/// What a reader sees of one tenant's signal at one instant: the sealed chunks overlapping a time range
/// and the records not sealed into a chunk yet, both oldest first (sealing order, then log order), so a
/// record is in exactly one of them. A running server takes it under the open chunk's lock (a seal
/// holds that lock until its chunk and index are written); an offline reader has no unsealed records.
#[derive(Debug, Default)]
pub struct Cut {
    /// Sealed chunks, oldest day first and in sealing order within a day.
    pub chunks: Vec<StoredChunk>,
    /// Records not sealed yet, in log order.
    pub unsealed: Vec<UnsealedRecord>,
}

/// A record of the open chunk, as logged, with its latest item time.
#[derive(Debug, Clone)]
pub struct UnsealedRecord {
    /// The OTLP request, exactly as logged.
    pub payload: Vec<u8>,
    /// Its latest item time, unix nanoseconds.
    pub max_time: u64,
}

/// One step of [`Cut::visit_newest_first`].
#[derive(Debug, Clone, Copy)]
pub enum Visit<'a> {
    /// No record still to come has an item later than this (unix nanoseconds).
    Bound(u64),
    /// A record, as logged.
    Record(&'a [u8]),
}

impl Cut {
    /// The sealed chunks of `tenant`'s `signal` that a scan of `range` with `filter` reads (see
    /// [`Store::scan_plan`]), with no unsealed records: what an offline reader sees.
    pub fn sealed<'f>(
        store: &Store,
        tenant: &str,
        signal: &str,
        range: (u64, u64),
        filter: impl Into<ScanFilter<'f>>,
    ) -> Result<Cut, StoreError> {
        let mut chunks = store.scan_plan(tenant, signal, range, filter)?;
        chunks.reverse();
        Ok(Cut { chunks, unsealed: Vec::new() })
    }

    /// Visits every record newest source first: the unsealed records (newest first), then the chunks
    /// (newest first); `visit` returns false to stop.
    pub fn visit(&self, store: &Store, visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<(), StoreError> {
        for record in self.unsealed.iter().rev() {
            if !visit(&record.payload) {
                return Ok(());
            }
        }
        for chunk in self.chunks.iter().rev() {
            for record in store.read_chunk(&chunk.path)? {
                if !visit(&record) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Visits every record by descending latest item time of its source (an unsealed record, or a whole
    /// chunk), with a [`Visit::Bound`] before each source: a caller that holds the items seen so far
    /// can hand out those later than the bound, newest first, before reading on. `visit` returns false
    /// to stop.
    pub fn visit_newest_first(
        &self,
        store: &Store,
        visit: &mut dyn FnMut(Visit<'_>) -> bool,
    ) -> Result<(), StoreError> {
        enum Source<'c> {
            Unsealed(&'c UnsealedRecord),
            Sealed(&'c StoredChunk),
        }
        let mut sources: Vec<(u64, Source<'_>)> = self
            .unsealed
            .iter()
            .map(|record| (record.max_time, Source::Unsealed(record)))
            .chain(self.chunks.iter().map(|chunk| (chunk.chunk.max_time(), Source::Sealed(chunk))))
            .collect();
        // Stable: among equal times, the newer source (later in the cut) comes first.
        sources.reverse();
        sources.sort_by_key(|(max_time, _)| std::cmp::Reverse(*max_time));
        for (max_time, source) in sources {
            if !visit(Visit::Bound(max_time)) {
                return Ok(());
            }
            match source {
                Source::Unsealed(record) => {
                    if !visit(Visit::Record(&record.payload)) {
                        return Ok(());
                    }
                }
                Source::Sealed(chunk) => {
                    for record in store.read_chunk(&chunk.path)? {
                        if !visit(Visit::Record(&record)) {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The chunk store under one root directory.
#[derive(Debug, Clone)]
pub struct Store {
    pub(super) root: PathBuf,
    /// Chunk files read by this handle and its clones.
    chunk_reads: Arc<AtomicU64>,
    /// Object storage for sealed chunks, if attached.
    pub(super) remote: Option<RemoteChunks>,
    /// Held while a day's upload bookkeeping (`uploaded.json`, evictions) or its retention changes, so
    /// an upload never records a chunk retention just deleted.
    pub(super) bookkeeping: Arc<std::sync::Mutex<()>>,
    /// The newest item time (unix nanos) of any chunk this handle and its clones wrote or looked at:
    /// retention follows the wall clock only so far past it (see [`retention_cutoff`](super::retention_cutoff)).
    newest: Arc<AtomicU64>,
}

/// A directory name for a tenant or pipeline id (`traces/audit` -> `traces~audit`).
pub fn directory_name(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '~' }).collect()
}

impl Store {
    /// The store under `root` (`<data-dir>/store`).
    pub fn new(root: PathBuf) -> Self {
        Store {
            root,
            chunk_reads: Arc::new(AtomicU64::new(0)),
            remote: None,
            bookkeeping: Arc::default(),
            newest: Arc::default(),
        }
    }

    /// The newest item time (unix nanos) of the chunks written, and of the newest day of every tenant
    /// and signal passed to [`Store::learn_newest`]; 0 when none.
    pub fn newest_time(&self) -> u64 {
        self.newest.load(Ordering::Relaxed)
    }

    /// Takes the newest chunk of `tenant`'s `signal` on disk into [`Store::newest_time`].
    pub fn learn_newest(&self, tenant: &str, signal: &str) -> Result<(), StoreError> {
        let Some(day) = self.days(tenant, signal).into_iter().next() else { return Ok(()) };
        let Some(manifest) = self.day_manifest(tenant, signal, &day)? else { return Ok(()) };
        let newest = manifest.chunks.iter().map(DayChunk::max_time).max().unwrap_or(0);
        self.newest.fetch_max(newest, Ordering::Relaxed);
        Ok(())
    }

    /// The store under `root` with sealed chunks also in `remote` (see [`Store::upload_pending`]).
    pub fn with_remote(root: PathBuf, remote: RemoteChunks) -> Self {
        Store { remote: Some(remote), ..Store::new(root) }
    }

    /// The object storage attached, if any.
    pub fn remote(&self) -> Option<&RemoteChunks> {
        self.remote.as_ref()
    }

    fn signal_dir(&self, tenant: &str, signal: &str) -> PathBuf {
        self.root.join(directory_name(tenant)).join(signal)
    }

    pub(super) fn day_dir(&self, tenant: &str, signal: &str, day: &str) -> PathBuf {
        self.signal_dir(tenant, signal).join(day)
    }

    /// Writes a sealed chunk and lists it in its day (once, whatever the retries), with the day's indexes.
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
            shard_sha256: None,
        });
        self.newest.fetch_max(manifest.max_time_unix_nano.parse().unwrap_or(0), Ordering::Relaxed);
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
            day.index_sha256 = Some(write_index(&index_path, &index)?);
        }
        if let Ok(signal) = manifest.signal.parse::<Signal>() {
            day.shard_sha256 = match self.shard_to_extend(&dir, signal, &day) {
                Some(mut shard) => {
                    shard.insert_chunk(position, &chunk.streams);
                    Some(write_index(&dir.join(shard_file(signal)), &shard.encode())?)
                }
                None => None,
            };
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

    /// The shard a new chunk of `day` extends: the one on disk when the day manifest vouches for it, else
    /// one rebuilt from the day's chunks (the first write to a day sealed before shards existed, or after
    /// a crash between the shard and the day manifest). `None` when a chunk of the day cannot be read:
    /// then the day goes without a shard (its scans read every chunk) until `store check --repair`.
    fn shard_to_extend(&self, dir: &Path, signal: Signal, day: &DayManifest) -> Option<DayShard> {
        match load_shard(dir, signal, day) {
            Ok(Some(shard)) => return Some(shard),
            Ok(None) if day.chunks.is_empty() => return Some(DayShard::new(signal)),
            Ok(None) => {}
            Err(error) => tracing::warn!(code = error.code(), %error, "index shard rejected; rebuilding it"),
        }
        match self.rebuild_indexes(dir, signal, &day.chunks) {
            Ok(rebuilt) => Some(rebuilt.shard),
            Err(error) => {
                tracing::warn!(code = error.code(), %error, "cannot rebuild the day's index shard; its scans read every chunk until `stella telemetry store check --repair`");
                None
            }
        }
    }

    /// Both indexes of a day rebuilt from `chunks` (each chunk read once).
    fn rebuild_indexes(&self, dir: &Path, signal: Signal, chunks: &[DayChunk]) -> Result<DayIndexes, StoreError> {
        let mut builder = IndexBuilder::new(signal);
        for (position, chunk) in chunks.iter().enumerate() {
            let records = self.read_chunk(&dir.join(format!("{}.chunk", chunk.sha256)))?;
            builder.add_chunk(position as u32, &records);
        }
        Ok(builder.finish())
    }

    /// The day manifest of `tenant`'s `signal` on `day`, if that day has chunks.
    pub fn day_manifest(&self, tenant: &str, signal: &str, day: &str) -> Result<Option<DayManifest>, StoreError> {
        day_manifest_in(&self.day_dir(tenant, signal, day))
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
    /// `[start, end]` (unix nanos) and that may hold what `filter` wants (an `Option<&str>` is a service),
    /// newest day first and newest chunk first within a day; `visit` returns false to stop. The day's
    /// index shard rules chunks out without reading them (see [`Store::scan_plan`]); `visit` still sees
    /// every record of a chunk it reads, matching or not.
    pub fn scan<'f>(
        &self,
        tenant: &str,
        signal: &str,
        range: (u64, u64),
        filter: impl Into<ScanFilter<'f>>,
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let filter = filter.into();
        for day in self.scan_days(tenant, signal, range.0) {
            for chunk in self.day_plan(tenant, signal, &day, range, &filter)? {
                for record in self.read_chunk(&chunk.path)? {
                    if !visit(&record) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// The chunks [`Store::scan`] reads for the same arguments, in the order it reads them: those whose
    /// time range overlaps `range` and that the day's index shard (or, for a day without a usable shard,
    /// the chunk manifest's services) does not rule out.
    pub fn scan_plan<'f>(
        &self,
        tenant: &str,
        signal: &str,
        range: (u64, u64),
        filter: impl Into<ScanFilter<'f>>,
    ) -> Result<Vec<StoredChunk>, StoreError> {
        let filter = filter.into();
        let mut plan = Vec::new();
        for day in self.scan_days(tenant, signal, range.0) {
            plan.extend(self.day_plan(tenant, signal, &day, range, &filter)?);
        }
        Ok(plan)
    }

    /// The days a scan from `start` reads, newest first.
    fn scan_days(&self, tenant: &str, signal: &str, start: u64) -> Vec<String> {
        // A chunk belongs to the day of its first record; late records can reach back one day.
        let first_day = previous_day(&super::sealer::utc_day(start));
        self.days(tenant, signal).into_iter().take_while(|day| *day >= first_day).collect()
    }

    /// The chunks of one day a scan reads, newest first.
    fn day_plan(
        &self,
        tenant: &str,
        signal: &str,
        day: &str,
        range: (u64, u64),
        filter: &ScanFilter<'_>,
    ) -> Result<Vec<StoredChunk>, StoreError> {
        let Some(manifest) = self.day_manifest(tenant, signal, day)? else { return Ok(Vec::new()) };
        let dir = self.day_dir(tenant, signal, day);
        let admitted: Option<BTreeSet<u32>> = match signal.parse::<Signal>() {
            Ok(kind) if filter.narrows() => usable(shard_matches(&dir, kind, &manifest, filter, range)),
            _ => None,
        };
        let mut plan = Vec::new();
        for (position, chunk) in manifest.chunks.iter().enumerate().rev() {
            if !overlaps(chunk, range) {
                continue;
            }
            let wanted = match &admitted {
                Some(admitted) => admitted.contains(&(position as u32)),
                None if filter.service.is_some() => {
                    let path = dir.join(format!("{}.json", chunk.sha256));
                    let bytes = std::fs::read(&path).map_err(io("read", &path))?;
                    let chunk_manifest: ChunkManifest = serde_json::from_slice(&bytes)
                        .map_err(|error| StoreError::Damaged { path: path.clone(), message: error.to_string() })?;
                    filter.admits_services(&chunk_manifest.services)
                }
                None => true,
            };
            if wanted {
                plan.push(StoredChunk { path: dir.join(format!("{}.chunk", chunk.sha256)), chunk: chunk.clone() });
            }
        }
        Ok(plan)
    }

    /// The records of a chunk file; an evicted one is read back from object storage and checked
    /// against its digest.
    pub fn read_chunk(&self, path: &Path) -> Result<Vec<Vec<u8>>, StoreError> {
        self.chunk_reads.fetch_add(1, Ordering::Relaxed);
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => self.read_evicted(path, error)?,
            Err(error) => return Err(io("read", path)(error)),
        };
        chunk_records(&bytes).map_err(|message| StoreError::Damaged { path: path.to_path_buf(), message })
    }

    /// Chunk files read (and decompressed) by this store and its clones since it was made: what index
    /// shards save.
    pub fn chunks_read(&self) -> u64 {
        self.chunk_reads.load(Ordering::Relaxed)
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
    /// A day left with no chunk is removed; otherwise its manifest and indexes are renumbered for the
    /// chunks it keeps (the new `day.json` is written before any file is deleted).
    pub fn sweep(
        &self,
        tenant: &str,
        signal: &str,
        cutoff: u64,
        held: &dyn Fn(u64, u64) -> bool,
    ) -> Result<Vec<String>, StoreError> {
        let _bookkeeping = self.bookkeeping.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut deleted = Vec::new();
        // Once object storage fails a deletion, this sweep keeps the remaining expired chunks too (one
        // warning, not one per chunk); the next sweep tries again.
        let mut remote_down = false;
        let mut days = self.days(tenant, signal);
        days.reverse();
        for day in days {
            let Some(mut manifest) = self.day_manifest(tenant, signal, &day)? else { continue };
            let dir = self.day_dir(tenant, signal, &day);
            let time = |text: &str| text.parse::<u64>().unwrap_or(u64::MAX);
            let (mut kept, mut expired) = (Vec::new(), Vec::new());
            for (position, chunk) in manifest.chunks.iter().enumerate() {
                let (min, max) = (time(&chunk.min_time_unix_nano), time(&chunk.max_time_unix_nano));
                let mut expires = max < cutoff && !held(min, max);
                if expires && !remote_down {
                    remote_down = !self.forget_remote(&dir, &chunk.sha256);
                }
                expires &= !remote_down;
                if expires { expired.push(chunk.clone()) } else { kept.push(position as u32) }
            }
            if expired.is_empty() {
                continue;
            }
            self.warn_left_remote(&dir, &expired);
            if kept.is_empty() {
                std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
            } else {
                let kept_chunks: Vec<DayChunk> =
                    kept.iter().filter_map(|position| manifest.chunks.get(*position as usize).cloned()).collect();
                if let Ok(kind) = signal.parse::<Signal>() {
                    self.keep_indexed(&dir, kind, &mut manifest, (&kept, &kept_chunks))?;
                }
                manifest.chunks = kept_chunks;
                let day_path = dir.join("day.json");
                RealFs.write_atomic(&day_path, &canonical(&manifest)).map_err(io("write", &day_path))?;
                self.unrecord_uploaded(&dir, &expired)?;
                for chunk in &expired {
                    for extension in ["chunk", "json"] {
                        let path = dir.join(format!("{}.{extension}", chunk.sha256));
                        match std::fs::remove_file(&path) {
                            // An evicted chunk has no local file.
                            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                                return Err(io("remove", &path)(error));
                            }
                            _ => {}
                        }
                    }
                }
            }
            deleted.extend(expired.into_iter().map(|chunk| chunk.sha256));
        }
        Ok(deleted)
    }

    /// Writes the indexes of `manifest`'s day for the chunks it keeps (their ascending positions, and
    /// them) and records their digests in `manifest`: the current indexes renumbered when the manifest
    /// vouches for them (no chunk read), else rebuilt from the kept chunks. A shard that cannot be rebuilt
    /// is left out (the day's scans read every chunk); a trace index that cannot be is an error.
    fn keep_indexed(
        &self,
        dir: &Path,
        signal: Signal,
        manifest: &mut DayManifest,
        (kept, kept_chunks): (&[u32], &[DayChunk]),
    ) -> Result<(), StoreError> {
        let index_path = dir.join("index.bin");
        let current_index = match signal {
            Signal::Traces => RealFs
                .read_file(&index_path)
                .map_err(io("read", &index_path))?
                .filter(|bytes| manifest.index_sha256.as_deref() == Some(digest(bytes).as_str())),
            _ => None,
        };
        let current_shard = usable(load_shard(dir, signal, manifest));
        let needs_index = signal == Signal::Traces && current_index.is_none();
        let rebuilt = if needs_index || current_shard.is_none() {
            match self.rebuild_indexes(dir, signal, kept_chunks) {
                Ok(rebuilt) => Some(rebuilt),
                Err(error) if needs_index => return Err(error),
                Err(error) => {
                    tracing::warn!(code = error.code(), %error, "cannot rebuild the day's index shard; its scans read every chunk until `stella telemetry store check --repair`");
                    None
                }
            }
        } else {
            None
        };
        let (rebuilt_index, rebuilt_shard) = rebuilt.map_or((None, None), |day| (Some(day.index), Some(day.shard)));
        if signal == Signal::Traces {
            let index = current_index.map(|bytes| retain_index(&bytes, kept)).or(rebuilt_index).unwrap_or_default();
            manifest.index_sha256 = Some(write_index(&index_path, &index)?);
        }
        let shard = current_shard
            .map(|mut shard| {
                shard.retain_chunks(kept);
                shard
            })
            .or(rebuilt_shard);
        manifest.shard_sha256 = match shard {
            Some(shard) => Some(write_index(&dir.join(shard_file(signal)), &shard.encode())?),
            None => None,
        };
        Ok(())
    }

    /// Verifies every chunk against its digest and every day's indexes (trace index, index shard) against a
    /// rebuild from its chunks; with `repair`, rewrites indexes that differ or are missing (damaged chunks
    /// are reported, never changed). Evicted chunks are read back from object storage.
    pub fn check(&self, repair: bool) -> Result<CheckReport, StoreError> {
        self.check_with(CheckOptions { repair, remote_copies: false })
    }

    /// [`Store::check`], and with `options.remote_copies` the object-storage copy of every uploaded chunk
    /// still on local disk too.
    pub fn check_with(&self, options: CheckOptions) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport::default();
        for (signal, dir) in self.day_dirs() {
            self.check_day(&dir, signal, options, &mut report)?;
        }
        Ok(report)
    }

    /// Every day directory of every tenant and signal, sorted by path (tenant, signal, day).
    pub(super) fn day_dirs(&self) -> Vec<(Signal, PathBuf)> {
        let subdirectories = |dir: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                        .map(|entry| entry.path())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut dirs = Vec::new();
        for tenant_dir in subdirectories(&self.root) {
            for signal in Signal::ALL {
                dirs.extend(subdirectories(&tenant_dir.join(signal.as_str())).into_iter().map(|day| (signal, day)));
            }
        }
        dirs.sort_by(|(_, a), (_, b)| a.cmp(b));
        dirs
    }

    /// Checks one day. A day with a damaged or missing chunk keeps its indexes as they are: a rebuild
    /// would drop that chunk's entries; they are checked again once the chunk is restored.
    fn check_day(
        &self,
        dir: &Path,
        signal: Signal,
        options: CheckOptions,
        report: &mut CheckReport,
    ) -> Result<(), StoreError> {
        let repair = options.repair;
        let day_path = dir.join("day.json");
        let Some(mut manifest) = day_manifest_in(dir)? else { return Ok(()) };
        let uploaded = super::upload::read_uploaded(dir).unwrap_or_else(|error| {
            // The bookkeeping only says which missing chunk files were evicted; the uploader rebuilds it.
            report.damaged.push(error.to_string());
            BTreeSet::new()
        });
        let mut builder = IndexBuilder::new(signal);
        let mut intact = true;
        for (position, chunk) in manifest.chunks.iter().enumerate() {
            let path = dir.join(format!("{}.chunk", chunk.sha256));
            let bytes = match self.check_read(&path, &chunk.sha256, &uploaded, options.remote_copies, report) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    intact = false;
                    continue;
                }
                Err(error) => {
                    report.damaged.push(error);
                    intact = false;
                    continue;
                }
            };
            let found = digest(&bytes);
            if found != chunk.sha256 {
                report.damaged.push(format!("{}: its SHA-256 is {found}, not its name", path.display()));
                intact = false;
                continue;
            }
            self.chunk_reads.fetch_add(1, Ordering::Relaxed);
            match chunk_records(&bytes) {
                Ok(records) => builder.add_chunk(position as u32, &records),
                Err(message) => {
                    report.damaged.push(format!("{}: {message}", path.display()));
                    intact = false;
                    continue;
                }
            }
            report.chunks_ok += 1;
        }
        if !intact {
            return Ok(());
        }
        let rebuilt = builder.finish();
        let mut changed = false;
        if signal == Signal::Traces {
            let path = dir.join("index.bin");
            changed |= check_index(&path, &rebuilt.index, &mut manifest.index_sha256, repair, report)?;
        }
        let path = dir.join(shard_file(signal));
        changed |= check_index(&path, &rebuilt.shard.encode(), &mut manifest.shard_sha256, repair, report)?;
        if changed {
            RealFs.write_atomic(&day_path, &canonical(&manifest)).map_err(io("write", &day_path))?;
        }
        Ok(())
    }
}

/// The day manifest in the day directory `dir`, if the day has chunks.
pub(super) fn day_manifest_in(dir: &Path) -> Result<Option<DayManifest>, StoreError> {
    let path = dir.join("day.json");
    let Some(bytes) = RealFs.read_file(&path).map_err(io("read", &path))? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|error| StoreError::Damaged { path, message: error.to_string() })
}

/// Compares an index file and its recorded digest with `rebuilt`; reports it stale if either differs
/// (or the file is missing) and, with `repair`, writes it and records its digest. Whether it wrote.
fn check_index(
    path: &Path,
    rebuilt: &[u8],
    recorded: &mut Option<String>,
    repair: bool,
    report: &mut CheckReport,
) -> Result<bool, StoreError> {
    let current = RealFs.read_file(path).map_err(io("read", path))?;
    let expected = digest(rebuilt);
    if current.as_deref() == Some(rebuilt) && recorded.as_deref() == Some(expected.as_str()) {
        return Ok(false);
    }
    report.stale_indexes.push(path.display().to_string());
    if !repair {
        return Ok(false);
    }
    *recorded = Some(write_index(path, rebuilt)?);
    report.repaired_indexes.push(path.display().to_string());
    Ok(true)
}

/// The path and bytes of the day's index shard, checked against the digest its day manifest records;
/// `Ok(None)` when the manifest records none (a day sealed before shards existed).
fn verified_shard(dir: &Path, signal: Signal, day: &DayManifest) -> Result<Option<(PathBuf, Vec<u8>)>, StoreError> {
    let Some(recorded) = &day.shard_sha256 else { return Ok(None) };
    let path = dir.join(shard_file(signal));
    let Some(bytes) = RealFs.read_file(&path).map_err(io("read", &path))? else {
        return Err(StoreError::Damaged { path, message: "missing, though its day manifest lists it".into() });
    };
    let found = digest(&bytes);
    if found != *recorded {
        let message = format!("its SHA-256 is {found}, its day manifest says {recorded}");
        return Err(StoreError::Damaged { path, message });
    }
    Ok(Some((path, bytes)))
}

/// A shard read from `path` covering `chunks` chunks must cover exactly the day's.
fn check_covers(path: &Path, chunks: u32, day: &DayManifest) -> Result<(), StoreError> {
    if chunks as usize == day.chunks.len() {
        return Ok(());
    }
    let message = format!("it covers {chunks} chunks, its day lists {}", day.chunks.len());
    Err(StoreError::Damaged { path: path.to_path_buf(), message })
}

/// The day's index shard, checked against its day manifest; `Ok(None)` when the manifest records none.
pub(super) fn load_shard(dir: &Path, signal: Signal, day: &DayManifest) -> Result<Option<DayShard>, StoreError> {
    let Some((path, bytes)) = verified_shard(dir, signal, day)? else { return Ok(None) };
    let shard =
        DayShard::decode(signal, &bytes).map_err(|message| StoreError::Damaged { path: path.clone(), message })?;
    check_covers(&path, shard.chunks(), day)?;
    Ok(Some(shard))
}

/// The positions of the day's chunks its index shard does not rule out for `filter` in `range`;
/// `Ok(None)` when the manifest records no shard.
fn shard_matches(
    dir: &Path,
    signal: Signal,
    day: &DayManifest,
    filter: &ScanFilter<'_>,
    range: (u64, u64),
) -> Result<Option<BTreeSet<u32>>, StoreError> {
    let Some((path, bytes)) = verified_shard(dir, signal, day)? else { return Ok(None) };
    let (chunks, positions) = matching_chunks(signal, &bytes, filter, range)
        .map_err(|message| StoreError::Damaged { path: path.clone(), message })?;
    check_covers(&path, chunks, day)?;
    Ok(Some(positions))
}

/// What a shard lookup found, if the shard can be trusted; a damaged shard is logged and the caller
/// reads every chunk of the day instead.
fn usable<T>(found: Result<Option<T>, StoreError>) -> Option<T> {
    found.unwrap_or_else(|error| {
        tracing::warn!(code = error.code(), %error, "index shard not used; reading every chunk of the day");
        None
    })
}

/// Writes an index file atomically; its hex SHA-256.
fn write_index(path: &Path, bytes: &[u8]) -> Result<String, StoreError> {
    RealFs.write_atomic(path, bytes).map_err(io("write", path))?;
    Ok(digest(bytes))
}

pub(super) fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether a listed chunk's items may fall in `[start, end]`.
fn overlaps(chunk: &DayChunk, (start, end): (u64, u64)) -> bool {
    chunk.max_time() >= start && chunk.min_time() <= end
}

/// The UTC day before `day` (`YYYY-MM-DD`).
fn previous_day(day: &str) -> String {
    day.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|date| date.yesterday().ok())
        .map_or_else(|| day.to_string(), |date| date.to_string())
}
