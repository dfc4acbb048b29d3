//! [`Store`]: sealed chunks on disk, with their manifests, and per day runs of chunks with a trace index
//! and an index shard each.
//!
//! ```text
//! <root>/<tenant>/<signal>/<YYYY-MM-DD>/<sha256>.chunk   records exactly as logged, length-prefixed, zstd
//!                                      /<sha256>.json    its manifest (RFC 8785)
//!                                      /run-<first>-<count>-<listed>.json        a run's manifest (RFC 8785)
//!                                      /run-<first>-<count>-<listed>.traces.bin  traces: (id fingerprint u32 BE, chunk - first u16 BE)*, sorted
//!                                      /run-<first>-<count>-<listed>.services.bin traces: index shard, service -> chunks (+ times, spans)
//!                                      /run-<first>-<count>-<listed>.streams.bin  logs: index shard, stream labels -> chunks (+ times, records)
//!                                      /run-<first>-<count>-<listed>.series.bin   metrics: index shard, name + labels -> chunks (+ times, points)
//!                                      /day.json         the day manifest (RFC 8785): its runs and their manifests' digests
//! ```
//! Writes go chunk, manifest, the new run's files, the merged run's files, then `day.json` (each by
//! atomic rename): the day manifest is the commit point (see the day module). Chunk files are named by
//! their digest, so sealing the same records again after a crash rewrites the same files and lists the
//! chunk once. An index is trusted only when its digest and the positions it covers match its run
//! manifest; otherwise a merge rebuilds it from the run's chunks, a scan or trace lookup reads every
//! chunk of the run, and `check` reports it.
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
pub(crate) use super::error::{io, remove_if_present};
use stella_otlp::OtlpRequest;

use super::day::{self, Day, Run};
use super::index::{DayIndexes, IndexBuilder, IndexFormat, TraceIndex, lookup};
use super::manifest::{ChunkManifest, DayChunk, RUN_FORMAT_VERSION, RunManifest, canonical};
use super::remote::RemoteChunks;
use super::sealer::{SealedChunk, chunk_records};
use super::shard::{DayShard, matching_chunks};
use super::streams::ScanFilter;
use super::terms::{ChunkTerms, TermFilter, terms_file};
use super::volume::{LogVolume, volume_file};
use crate::log::{LogFs, RealFs};

/// What `check` found.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Chunks whose bytes match their digest.
    pub chunks_ok: u64,
    /// Chunks that do not (path and reason).
    pub damaged: Vec<String>,
    /// Day indexes (`index.bin`), index shards and term filters missing or differing from a rebuild from
    /// their chunks.
    pub stale_indexes: Vec<String>,
    /// Day indexes and index shards rewritten (with `--repair`).
    pub repaired_indexes: Vec<String>,
    /// Chunks read back from object storage and found to match their digest (counted in `chunks_ok`
    /// too): evicted chunks, and with [`CheckOptions::remote_copies`] the copies of cached ones.
    pub remote_ok: u64,
    /// Evicted chunks not verified because this store has no object storage attached (their days'
    /// indexes are not checked either).
    pub remote_unchecked: Vec<String>,
    /// Files of runs merged into a listed run, left by a crash before their deletion: harmless (deleted by
    /// the first seal of their day by the next server process, or by `--repair`).
    pub leftovers: Vec<String>,
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

/// One step of [`Cut::visit_newest_first_decoded`]: [`Visit`] with each record decoded.
#[derive(Debug)]
pub enum Decoded<T> {
    /// No record still to come has an item later than this (unix nanoseconds).
    Bound(u64),
    /// A record, decoded.
    Record(T),
}

/// Decoded records [`Cut::visit_newest_first_decoded`] reads ahead of its visitor at most.
pub(crate) const READ_AHEAD: usize = 8;

/// One source of a cut's records: an unsealed record or a sealed chunk.
enum Source<'c> {
    Unsealed(&'c UnsealedRecord),
    Sealed(&'c StoredChunk),
}

impl Source<'_> {
    /// Hands each of its records to `visit` until it returns false; false when it did.
    fn visit(&self, store: &Store, visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<bool, StoreError> {
        match self {
            Source::Unsealed(record) => Ok(visit(&record.payload)),
            Source::Sealed(chunk) => Ok(store.read_chunk(&chunk.path)?.iter().all(|record| visit(record))),
        }
    }
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
        for source in self.sources() {
            if !source.visit(store, visit)? {
                break;
            }
        }
        Ok(())
    }

    /// Its sources in [`Cut::visit`]'s order: the unsealed records, then the chunks, newest first.
    fn sources(&self) -> Vec<Source<'_>> {
        self.unsealed.iter().rev().map(Source::Unsealed).chain(self.chunks.iter().rev().map(Source::Sealed)).collect()
    }

    /// Visits the records of [`Cut::visit`] split into as many contiguous parts as `visitors`, in its
    /// order, each part on a thread of its own with its own visitor (a part's `visit` returns false to
    /// stop that part): the first visitor sees the newest records. The first error of any part is
    /// returned once every part has ended.
    pub fn visit_parts<V>(&self, store: &Store, visitors: Vec<V>) -> Result<(), StoreError>
    where
        V: FnMut(&[u8]) -> bool + Send,
    {
        let sources = self.sources();
        // Part `i` of `k` holds sources `i * n / k .. (i + 1) * n / k`: sizes differ by one at most.
        let (total, count) = (sources.len(), visitors.len().max(1));
        let bounds = |part: usize| part * total / count;
        let visit_part = |part: &[Source<'_>], mut visit: V| -> Result<(), StoreError> {
            for source in part {
                if !source.visit(store, &mut visit)? {
                    break;
                }
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let mut parts = (0..count).map(|part| &sources[bounds(part)..bounds(part + 1)]);
            let mut visitors = visitors.into_iter();
            let first = visitors.next();
            let first_part = parts.next().unwrap_or_default();
            let others: Vec<_> =
                parts.zip(visitors).map(|(part, visit)| scope.spawn(move || visit_part(part, visit))).collect();
            let mut outcome = first.map_or(Ok(()), |visit| visit_part(first_part, visit));
            for other in others {
                let ended = other.join().unwrap_or_else(|_| {
                    Err(StoreError::Damaged { path: PathBuf::new(), message: "a reading thread panicked".into() })
                });
                outcome = outcome.and(ended);
            }
            outcome
        })
    }

    /// Hands the log volume of every source to `visit` (an unsealed record's built from it, a chunk's read
    /// from its volume file, or built from the chunk when that file is missing or damaged); `visit`
    /// returns false to stop.
    pub fn visit_volumes(&self, store: &Store, visit: &mut dyn FnMut(&LogVolume) -> bool) -> Result<(), StoreError> {
        for record in self.unsealed.iter().rev() {
            let mut volume = LogVolume::default();
            if let Ok(request) = stella_otlp::OtlpRequest::decode_protobuf(Signal::Logs, &record.payload) {
                volume.add_request(&request);
            }
            if !visit(&volume) {
                return Ok(());
            }
        }
        for chunk in self.chunks.iter().rev() {
            if !visit(&store.chunk_volume(chunk)?) {
                return Ok(());
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
        for (max_time, source) in self.newest_first() {
            if !visit(Visit::Bound(max_time)) || !source.visit(store, &mut |record| visit(Visit::Record(record)))? {
                break;
            }
        }
        Ok(())
    }

    /// [`Cut::visit_newest_first`] with chunks read and every record decoded by `decode` on a thread of
    /// its own, at most [`READ_AHEAD`] records ahead of `visit`: a reader whose work is mostly decoding
    /// uses both cores. The same records, bounds and order; `visit` returns false to stop (the reading
    /// thread stops at its next record).
    pub fn visit_newest_first_decoded<T, D>(
        &self,
        store: &Store,
        decode: D,
        visit: &mut dyn FnMut(Decoded<T>) -> bool,
    ) -> Result<(), StoreError>
    where
        T: Send,
        D: Fn(&[u8]) -> T + Sync,
    {
        let sources = self.newest_first();
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<Decoded<T>, StoreError>>(READ_AHEAD);
        std::thread::scope(|scope| {
            let (sources, decode) = (&sources, &decode);
            scope.spawn(move || {
                for (max_time, source) in sources {
                    if sender.send(Ok(Decoded::Bound(*max_time))).is_err() {
                        return;
                    }
                    let sent =
                        source.visit(store, &mut |record| sender.send(Ok(Decoded::Record(decode(record)))).is_ok());
                    match sent {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(error) => {
                            // The visitor may have stopped already; then nobody needs the error.
                            let _ = sender.send(Err(error));
                            return;
                        }
                    }
                }
            });
            let mut outcome = Ok(());
            for step in receiver.iter() {
                match step {
                    Ok(step) => {
                        if !visit(step) {
                            break;
                        }
                    }
                    Err(error) => {
                        outcome = Err(error);
                        break;
                    }
                }
            }
            // Dropped before the scope joins the reading thread: its next send fails and it ends.
            drop(receiver);
            outcome
        })
    }

    /// Its sources by descending latest item time; among equal times, the newer source (later in the
    /// cut) first.
    fn newest_first(&self) -> Vec<(u64, Source<'_>)> {
        let mut sources: Vec<(u64, Source<'_>)> = self
            .unsealed
            .iter()
            .map(|record| (record.max_time, Source::Unsealed(record)))
            .chain(self.chunks.iter().map(|chunk| (chunk.chunk.max_time(), Source::Sealed(chunk))))
            .collect();
        sources.reverse();
        sources.sort_by_key(|(max_time, _)| std::cmp::Reverse(*max_time));
        sources
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
    /// Day directories this handle and its clones have swept of leftovers (files of runs merged before a
    /// crash): a crash leaves them, so the first seal of each day in a process is enough, and later
    /// seals do not list the directory.
    swept: Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
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
            swept: Arc::default(),
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
        let Some(manifest) = self.day(tenant, signal, &day)? else { return Ok(()) };
        let newest = manifest.chunks().map(DayChunk::max_time).max().unwrap_or(0);
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

    /// Writes a sealed chunk and lists it in its day (once, whatever the retries): a run of its own with
    /// its indexes, then the newest runs merged while [`FANOUT`](super::day::FANOUT) of one level are
    /// there, then the day manifest (see the day module). Nothing written before is rewritten but the
    /// runs merged, so a day's writes grow with its data, not with its square.
    pub fn write(&self, chunk: &SealedChunk) -> Result<(), StoreError> {
        let manifest = &chunk.manifest;
        let dir = self.day_dir(&manifest.tenant, &manifest.signal, &manifest.day);
        let signal = manifest.signal.parse::<Signal>().map_err(|error| StoreError::Damaged {
            path: dir.join(format!("{}.json", manifest.sha256)),
            message: error.to_string(),
        })?;
        RealFs.create_dir_all(&dir).map_err(io("create", &dir))?;
        let mut day = day::load(&dir)?.unwrap_or_else(|| Day::empty(&manifest.tenant, &manifest.signal, &manifest.day));
        self.newest.fetch_max(manifest.max_time_unix_nano.parse().unwrap_or(0), Ordering::Relaxed);
        if day.chunks().any(|listed| listed.sha256 == manifest.sha256) {
            return Ok(());
        }
        let chunk_path = dir.join(format!("{}.chunk", manifest.sha256));
        RealFs.write_atomic(&chunk_path, &chunk.bytes).map_err(io("write", &chunk_path))?;
        let manifest_path = dir.join(format!("{}.json", manifest.sha256));
        RealFs.write_atomic(&manifest_path, &canonical(manifest)).map_err(io("write", &manifest_path))?;
        let side_files = [(terms_file(&manifest.sha256), &chunk.terms), (volume_file(&manifest.sha256), &chunk.volume)];
        for (name, bytes) in side_files {
            if let Some(bytes) = bytes {
                let path = dir.join(name);
                RealFs.write_atomic(&path, bytes).map_err(io("write", &path))?;
            }
        }
        let mut retired = self.convert_legacy(&dir, signal, &mut day)?;
        let position = day.next_position();
        let mut shard = DayShard::new(signal);
        shard.insert_chunk(position, &chunk.streams);
        let run = RunManifest {
            format_version: RUN_FORMAT_VERSION,
            first: position,
            count: 1,
            chunks: vec![DayChunk {
                position,
                sha256: manifest.sha256.clone(),
                records: manifest.records,
                items: manifest.items,
                min_time_unix_nano: manifest.min_time_unix_nano.clone(),
                max_time_unix_nano: manifest.max_time_unix_nano.clone(),
            }],
            index_sha256: None,
            shard_sha256: None,
        };
        let index = TraceIndex::of_chunk(&chunk.trace_ids, position);
        day.runs.push(day::write_run(&dir, signal, run, Some(&index), Some(&shard.encode()))?);
        while let Some(start) = day.mergeable() {
            let merged = self.merge_runs(&dir, signal, &day.runs[start..])?;
            retired.extend(day.runs.drain(start..));
            day.runs.push(merged);
        }
        day.commit(&dir)?;
        retired.iter().try_for_each(|run| run.remove_files(&dir, signal))?;
        // Files of runs merged before a crash cut their deletion short, looked for once per day.
        if self.swept.lock().unwrap_or_else(|poison| poison.into_inner()).insert(dir.clone()) {
            for path in day::unlisted_files(&dir, signal, &day)? {
                if day::merged_away(&path, &day) {
                    std::fs::remove_file(&path).map_err(io("remove", &path))?;
                }
            }
        }
        Ok(())
    }

    /// Rewrites the single run of a format 1 day in format 2 (its indexes as they are when its manifest
    /// vouches for them, else rebuilt); the run it replaces, whose files go once the day is committed.
    fn convert_legacy(&self, dir: &Path, signal: Signal, day: &mut Day) -> Result<Vec<Run>, StoreError> {
        let mut retired = Vec::new();
        for run in day.runs.iter_mut().filter(|run| run.legacy()) {
            let (index, shard) = self.run_indexes(dir, signal, run);
            let converted = day::write_run(
                dir,
                signal,
                run.manifest.clone(),
                index.as_ref(),
                shard.map(|shard| shard.encode()).as_deref(),
            )?;
            retired.push(std::mem::replace(run, converted));
        }
        Ok(retired)
    }

    /// One run of the chunks of `runs` (adjacent, oldest first), with their indexes merged.
    fn merge_runs(&self, dir: &Path, signal: Signal, runs: &[Run]) -> Result<Run, StoreError> {
        let first = runs.first().map_or(0, Run::first);
        let end = runs.last().map_or(first, Run::end);
        let mut indexes = Vec::with_capacity(runs.len());
        let mut shard: Option<DayShard> = Some(DayShard::new(signal));
        for run in runs {
            let (index, run_shard) = self.run_indexes(dir, signal, run);
            indexes.push(index);
            shard = shard.zip(run_shard).map(|(mut merged, run_shard)| {
                merged.merge(run_shard);
                merged
            });
        }
        let index = indexes.into_iter().collect::<Option<Vec<_>>>().map(TraceIndex::merge);
        let shard = shard.map(|mut shard| {
            shard.cover(end);
            shard.encode()
        });
        let manifest = RunManifest {
            format_version: RUN_FORMAT_VERSION,
            first,
            count: end - first,
            chunks: runs.iter().flat_map(|run| run.manifest.chunks.iter().cloned()).collect(),
            index_sha256: None,
            shard_sha256: None,
        };
        day::write_run(dir, signal, manifest, index.as_ref(), shard.as_deref())
    }

    /// A run's trace index (traces only) and index shard: the files when its manifest vouches for them,
    /// else rebuilt from its chunks (read once for both). `None` for one that can be neither (a chunk of
    /// the run cannot be read): the run goes without it, its lookups and scans read every chunk, until
    /// `stella telemetry store check --repair`.
    fn run_indexes(&self, dir: &Path, signal: Signal, run: &Run) -> (Option<TraceIndex>, Option<DayShard>) {
        let index = match signal {
            Signal::Traces => usable(verified_index(dir, run)),
            _ => None,
        };
        let shard = usable(load_shard(dir, signal, run));
        if shard.is_some() && (index.is_some() || signal != Signal::Traces) {
            return (index, shard);
        }
        match self.rebuild_indexes(dir, signal, run) {
            Ok(rebuilt) => {
                (index.or((signal == Signal::Traces).then_some(rebuilt.index)), shard.or(Some(rebuilt.shard)))
            }
            Err(error) => {
                tracing::warn!(code = error.code(), %error, "cannot rebuild a run's indexes; its lookups and scans read every chunk until `stella telemetry store check --repair`");
                (index, shard)
            }
        }
    }

    /// Both indexes of a run rebuilt from its chunks (each chunk read once).
    fn rebuild_indexes(&self, dir: &Path, signal: Signal, run: &Run) -> Result<DayIndexes, StoreError> {
        let mut builder = IndexBuilder::new(signal);
        for chunk in &run.manifest.chunks {
            let records = self.read_chunk(&dir.join(format!("{}.chunk", chunk.sha256)))?;
            builder.add_chunk(chunk.position, &records);
        }
        Ok(builder.finish(run.end()))
    }

    /// The day `tenant`'s `signal` has on `day`, if it has chunks.
    pub fn day(&self, tenant: &str, signal: &str, day: &str) -> Result<Option<Day>, StoreError> {
        day::load(&self.day_dir(tenant, signal, day))
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

    /// The records (as logged) of every chunk of `tenant` holding a span of `trace_id`: those of the
    /// chunks its runs' trace indexes name, and of every chunk of a run without a trace index.
    pub fn records_with_trace(&self, tenant: &str, trace_id: &[u8; 16]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut records = Vec::new();
        for day in self.days(tenant, "traces") {
            let Some(manifest) = self.day(tenant, "traces", &day)? else { continue };
            let dir = self.day_dir(tenant, "traces", &day);
            for run in &manifest.runs {
                let listed = match run.manifest.index_sha256 {
                    Some(_) => lookup(&run.index_path(&dir), run.index_format(), run.first(), trace_id)?,
                    None => None,
                };
                let chunks: Vec<&DayChunk> = match listed {
                    Some(positions) => positions.into_iter().filter_map(|position| run.chunk_at(position)).collect(),
                    None => run.manifest.chunks.iter().collect(),
                };
                for chunk in chunks {
                    let chunk_records = self.read_chunk(&dir.join(format!("{}.chunk", chunk.sha256)))?;
                    records.extend(chunk_records.into_iter().filter(|record| holds_trace(record, trace_id)));
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
        let Some(manifest) = self.day(tenant, signal, day)? else { return Ok(Vec::new()) };
        let dir = self.day_dir(tenant, signal, day);
        let mut plan = Vec::new();
        for run in manifest.runs.iter().rev() {
            let admitted: Option<BTreeSet<u32>> = match signal.parse::<Signal>() {
                Ok(kind) if filter.narrows() => usable(shard_matches(&dir, kind, run, filter, range)),
                _ => None,
            };
            for chunk in run.manifest.chunks.iter().rev() {
                if !overlaps(chunk, range) {
                    continue;
                }
                let wanted = match &admitted {
                    Some(admitted) => admitted.contains(&chunk.position),
                    None if filter.service.is_some() => {
                        let path = dir.join(format!("{}.json", chunk.sha256));
                        let bytes = std::fs::read(&path).map_err(io("read", &path))?;
                        let chunk_manifest: ChunkManifest = serde_json::from_slice(&bytes)
                            .map_err(|error| StoreError::Damaged { path: path.clone(), message: error.to_string() })?;
                        filter.admits_services(&chunk_manifest.services)
                    }
                    None => true,
                };
                if wanted && terms_admit(&dir, &chunk.sha256, filter.terms) {
                    plan.push(StoredChunk { path: dir.join(format!("{}.chunk", chunk.sha256)), chunk: chunk.clone() });
                }
            }
        }
        Ok(plan)
    }

    /// The log volume of a chunk of logs: its volume file, or when that is missing or damaged, the volume
    /// built from the chunk's records (a lost volume file costs time, never a count).
    pub fn chunk_volume(&self, chunk: &StoredChunk) -> Result<LogVolume, StoreError> {
        let path = chunk.path.with_extension("volume");
        match std::fs::read(&path).map_err(|error| error.to_string()).and_then(|bytes| LogVolume::decode(&bytes)) {
            Ok(volume) => return Ok(volume),
            Err(problem) if path.exists() => {
                tracing::warn!(path = %path.display(), problem = %problem, "log volume unusable; reading the chunk");
            }
            Err(_) => {}
        }
        let mut volume = LogVolume::default();
        for record in self.read_chunk(&chunk.path)? {
            if let Ok(request) = stella_otlp::OtlpRequest::decode_protobuf(Signal::Logs, &record) {
                volume.add_request(&request);
            }
        }
        Ok(volume)
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
    /// A day left with no chunk is removed; otherwise each run that loses chunks is rewritten without
    /// them (its indexes keep the other chunks' positions), and the new `day.json` is written before any
    /// file is deleted.
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
        for day_name in days {
            let Some(mut day) = self.day(tenant, signal, &day_name)? else { continue };
            let dir = self.day_dir(tenant, signal, &day_name);
            let time = |text: &str| text.parse::<u64>().unwrap_or(u64::MAX);
            let mut expired = Vec::new();
            // Per run that loses chunks: its index in the day and the positions it keeps.
            let mut shrunk: Vec<(usize, BTreeSet<u32>)> = Vec::new();
            for (at, run) in day.runs.iter().enumerate() {
                let mut kept = BTreeSet::new();
                let before = expired.len();
                for chunk in &run.manifest.chunks {
                    let (min, max) = (time(&chunk.min_time_unix_nano), time(&chunk.max_time_unix_nano));
                    let mut expires = max < cutoff && !held(min, max);
                    if expires && !remote_down {
                        remote_down = !self.forget_remote(&dir, &chunk.sha256);
                    }
                    expires &= !remote_down;
                    if expires {
                        expired.push(chunk.clone());
                    } else {
                        kept.insert(chunk.position);
                    }
                }
                if expired.len() > before {
                    shrunk.push((at, kept));
                }
            }
            if expired.is_empty() {
                continue;
            }
            self.warn_left_remote(&dir, &expired);
            if expired.len() == day.chunks().count() {
                std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
            } else {
                let kind = signal
                    .parse::<Signal>()
                    .map_err(|error| StoreError::Damaged { path: dir.join("day.json"), message: error.to_string() })?;
                let mut retired = Vec::new();
                for (at, kept) in shrunk.into_iter().rev() {
                    if kept.is_empty() {
                        retired.push(day.runs.remove(at));
                        continue;
                    }
                    let run = &day.runs[at];
                    let (index, shard) = self.run_indexes(&dir, kind, run);
                    let index = index.map(|mut index| {
                        index.retain(&kept);
                        index
                    });
                    let shard = shard.map(|mut shard| {
                        shard.retain_chunks(&kept);
                        shard.encode()
                    });
                    let mut manifest = run.manifest.clone();
                    manifest.chunks.retain(|chunk| kept.contains(&chunk.position));
                    let rewritten = day::write_run(&dir, kind, manifest, index.as_ref(), shard.as_deref())?;
                    retired.push(std::mem::replace(&mut day.runs[at], rewritten));
                }
                retired.extend(self.convert_legacy(&dir, kind, &mut day)?);
                day.commit(&dir)?;
                self.unrecord_uploaded(&dir, &expired)?;
                for chunk in &expired {
                    for extension in ["chunk", "json", "terms", "volume"] {
                        // An evicted chunk has no local file.
                        remove_if_present(&dir.join(format!("{}.{extension}", chunk.sha256)))?;
                    }
                }
                retired.iter().try_for_each(|run| run.remove_files(&dir, kind))?;
            }
            deleted.extend(expired.into_iter().map(|chunk| chunk.sha256));
        }
        Ok(deleted)
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

    /// Checks one day, run by run. A run with a damaged or missing chunk keeps its indexes as they are: a
    /// rebuild would drop that chunk's entries; they are checked again once the chunk is restored. Run
    /// files no day manifest lists (left by a crash between a commit and the deletion after it) are
    /// reported, and deleted with `repair`.
    fn check_day(
        &self,
        dir: &Path,
        signal: Signal,
        options: CheckOptions,
        report: &mut CheckReport,
    ) -> Result<(), StoreError> {
        let Some(mut day) = day::load(dir)? else { return Ok(()) };
        let uploaded = super::upload::read_uploaded(dir).unwrap_or_else(|error| {
            // The bookkeeping only says which missing chunk files were evicted; the uploader rebuilds it.
            report.damaged.push(error.to_string());
            BTreeSet::new()
        });
        let (mut retired, mut superseded) = (Vec::new(), Vec::new());
        let mut changed = false;
        for at in 0..day.runs.len() {
            let run = &day.runs[at];
            let mut builder = IndexBuilder::new(signal);
            let mut intact = true;
            for chunk in &run.manifest.chunks {
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
                    Ok(records) => {
                        for (name, rebuilt) in side_files(signal, &chunk.sha256, &records) {
                            check_side_file(&dir.join(name), &rebuilt, options.repair, report)?;
                        }
                        builder.add_chunk(chunk.position, &records)
                    }
                    Err(message) => {
                        report.damaged.push(format!("{}: {message}", path.display()));
                        intact = false;
                        continue;
                    }
                }
                report.chunks_ok += 1;
            }
            if !intact {
                continue;
            }
            let rebuilt = builder.finish(run.end());
            let shard = rebuilt.shard.encode();
            let mut stale = Vec::new();
            if signal == Signal::Traces && !trace_index_matches(dir, run, &rebuilt.index)? {
                stale.push(run.index_path(dir));
            }
            if !index_matches(&run.shard_path(dir, signal), &shard, run.manifest.shard_sha256.as_deref())? {
                stale.push(run.shard_path(dir, signal));
            }
            if !day::run_manifest_matches(dir, run)? {
                stale.push(run.manifest_path(dir));
            }
            report.stale_indexes.extend(stale.iter().map(|path| path.display().to_string()));
            if stale.is_empty() || !options.repair {
                continue;
            }
            let repaired = day::write_run(dir, signal, run.manifest.clone(), Some(&rebuilt.index), Some(&shard))?;
            report.repaired_indexes.extend(stale.iter().map(|path| path.display().to_string()));
            let old = std::mem::replace(&mut day.runs[at], repaired);
            if old.legacy() {
                retired.push(old);
            } else if old.index_path(dir) != day.runs[at].index_path(dir) {
                // A run of format 2 rewritten in format 3 under the same name: its old trace index goes.
                superseded.push(old.index_path(dir));
            }
            changed = true;
        }
        if changed {
            day.commit(dir)?;
            retired.iter().try_for_each(|run| run.remove_files(dir, signal))?;
            superseded.iter().try_for_each(|path| remove_if_present(path))?;
        }
        for path in day::unlisted_files(dir, signal, &day)? {
            if day::merged_away(&path, &day) {
                report.leftovers.push(path.display().to_string());
                if options.repair {
                    std::fs::remove_file(&path).map_err(io("remove", &path))?;
                }
                continue;
            }
            report.stale_indexes.push(format!("{}: not listed by its day manifest", path.display()));
            if options.repair {
                std::fs::remove_file(&path).map_err(io("remove", &path))?;
                report.repaired_indexes.push(path.display().to_string());
            }
        }
        Ok(())
    }
}

/// Whether an index file and its recorded digest both match `rebuilt` (a missing file does not).
/// Whether the chunk's term filter admits `clauses` (see [`TermFilter::admits`]); a chunk without a
/// readable, intact filter is admitted (read), so a missing or damaged filter never hides a match.
fn terms_admit(dir: &Path, sha256: &str, clauses: &[Vec<u128>]) -> bool {
    if clauses.is_empty() {
        return true;
    }
    let path = dir.join(terms_file(sha256));
    match std::fs::read(&path).map_err(|error| error.to_string()).and_then(|bytes| TermFilter::decode(&bytes)) {
        Ok(filter) => filter.admits(clauses),
        Err(problem) => {
            if path.exists() {
                tracing::warn!(path = %path.display(), problem = %problem, "term filter unusable; reading the chunk");
            }
            true
        }
    }
}

/// The files kept beside a chunk of `signal`, rebuilt from its records: the term filter (traces and
/// logs) and the log volume (logs), by file name.
fn side_files(signal: Signal, sha256: &str, records: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    let (mut terms, mut volume) = (ChunkTerms::default(), LogVolume::default());
    for record in records {
        if let Ok(request) = stella_otlp::OtlpRequest::decode_protobuf(signal, record) {
            terms.add_request(&request);
            volume.add_request(&request);
        }
    }
    let mut files = Vec::new();
    if signal != Signal::Metrics {
        files.push((terms_file(sha256), terms.encode()));
    }
    if signal == Signal::Logs {
        files.push((volume_file(sha256), volume.encode()));
    }
    files
}

/// Compares a file kept beside a chunk with one rebuilt from its records: a missing or differing one is
/// reported as a stale index, and with `repair` rewritten.
fn check_side_file(path: &Path, rebuilt: &[u8], repair: bool, report: &mut CheckReport) -> Result<(), StoreError> {
    if std::fs::read(path).ok().as_deref() == Some(rebuilt) {
        return Ok(());
    }
    report.stale_indexes.push(path.display().to_string());
    if repair {
        RealFs.write_atomic(path, rebuilt).map_err(io("write", path))?;
        report.repaired_indexes.push(path.display().to_string());
    }
    Ok(())
}

fn index_matches(path: &Path, rebuilt: &[u8], recorded: Option<&str>) -> Result<bool, StoreError> {
    let current = RealFs.read_file(path).map_err(io("read", path))?;
    Ok(current.as_deref() == Some(rebuilt) && recorded == Some(digest(rebuilt).as_str()))
}

/// A run's trace index, checked against the digest its manifest records; `Ok(None)` when it records none.
fn verified_index(dir: &Path, run: &Run) -> Result<Option<TraceIndex>, StoreError> {
    let Some(recorded) = &run.manifest.index_sha256 else { return Ok(None) };
    let path = run.index_path(dir);
    let bytes = verified_file(&path, recorded)?;
    let (first, count) = (run.first(), run.manifest.count);
    TraceIndex::decode(&bytes, run.index_format(), first, count)
        .map(Some)
        .map_err(|message| StoreError::Damaged { path, message })
}

/// Whether a run's trace index file and its recorded digest both match `rebuilt` (a missing file does
/// not): byte for byte in format 3, entry for entry (fingerprints and chunks) in the formats before.
fn trace_index_matches(dir: &Path, run: &Run, rebuilt: &TraceIndex) -> Result<bool, StoreError> {
    match run.index_format() {
        IndexFormat::Compact => match rebuilt.encode(run.first()) {
            Some(bytes) => index_matches(&run.index_path(dir), &bytes, run.manifest.index_sha256.as_deref()),
            None => Ok(false),
        },
        // A damaged file is stale, not a warning: `check` reports it.
        IndexFormat::Wide => Ok(verified_index(dir, run).ok().flatten().as_ref() == Some(rebuilt)),
    }
}

/// A file's bytes, checked against the digest its manifest records.
fn verified_file(path: &Path, recorded: &str) -> Result<Vec<u8>, StoreError> {
    let Some(bytes) = RealFs.read_file(path).map_err(io("read", path))? else {
        let message = "missing, though its manifest lists it".into();
        return Err(StoreError::Damaged { path: path.to_path_buf(), message });
    };
    let found = digest(&bytes);
    if found != recorded {
        let message = format!("its SHA-256 is {found}, its manifest says {recorded}");
        return Err(StoreError::Damaged { path: path.to_path_buf(), message });
    }
    Ok(bytes)
}

/// The path and bytes of a run's index shard, checked against the digest its manifest records;
/// `Ok(None)` when it records none (a day sealed before shards existed).
fn verified_shard(dir: &Path, signal: Signal, run: &Run) -> Result<Option<(PathBuf, Vec<u8>)>, StoreError> {
    let Some(recorded) = &run.manifest.shard_sha256 else { return Ok(None) };
    let path = run.shard_path(dir, signal);
    let bytes = verified_file(&path, recorded)?;
    Ok(Some((path, bytes)))
}

/// A shard read from `path` covering `chunks` positions must cover exactly its run's.
fn check_covers(path: &Path, chunks: u32, run: &Run) -> Result<(), StoreError> {
    if chunks == run.end() {
        return Ok(());
    }
    let message = format!("it covers {chunks} positions, its run ends at {}", run.end());
    Err(StoreError::Damaged { path: path.to_path_buf(), message })
}

/// A run's index shard, checked against its manifest; `Ok(None)` when the manifest records none.
pub(super) fn load_shard(dir: &Path, signal: Signal, run: &Run) -> Result<Option<DayShard>, StoreError> {
    let Some((path, bytes)) = verified_shard(dir, signal, run)? else { return Ok(None) };
    let shard =
        DayShard::decode(signal, &bytes).map_err(|message| StoreError::Damaged { path: path.clone(), message })?;
    check_covers(&path, shard.chunks(), run)?;
    Ok(Some(shard))
}

/// The positions of a run's chunks its index shard does not rule out for `filter` in `range`;
/// `Ok(None)` when the manifest records no shard.
fn shard_matches(
    dir: &Path,
    signal: Signal,
    run: &Run,
    filter: &ScanFilter<'_>,
    range: (u64, u64),
) -> Result<Option<BTreeSet<u32>>, StoreError> {
    let Some((path, bytes)) = verified_shard(dir, signal, run)? else { return Ok(None) };
    let (chunks, positions) = matching_chunks(signal, &bytes, filter, range)
        .map_err(|message| StoreError::Damaged { path: path.clone(), message })?;
    check_covers(&path, chunks, run)?;
    Ok(Some(positions))
}

/// What an index lookup found, if the index can be trusted; a damaged one is logged and the caller
/// reads every chunk of the run instead.
fn usable<T>(found: Result<Option<T>, StoreError>) -> Option<T> {
    found.unwrap_or_else(|error| {
        tracing::warn!(code = error.code(), %error, "index not used; reading every chunk of its run");
        None
    })
}

/// Whether a record holds a span of `trace_id`: decoded only when the id's 16 bytes occur in it.
fn holds_trace(record: &[u8], trace_id: &[u8; 16]) -> bool {
    if memchr::memmem::find(record, trace_id).is_none() {
        return false;
    }
    let Ok(OtlpRequest::Traces(traces)) = OtlpRequest::decode_protobuf(Signal::Traces, record) else { return false };
    traces
        .resource_spans
        .iter()
        .flat_map(|group| &group.scope_spans)
        .flat_map(|scope| &scope.spans)
        .any(|span| span.trace_id.as_slice() == trace_id)
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> String {
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
