//! A day of one tenant and signal on disk: `day.json` lists runs, and a run is a range of chunk positions
//! with its own manifest and indexes, each file written whole once.
//!
//! ```text
//! day.json                       the day manifest: its runs (first position, positions covered, chunks
//!                                listed, run manifest digest); the commit point of every write
//! run-<first>-<count>-<listed>.json        the run manifest: its chunks by position, its index digests
//!                            .traces.bin   traces: its trace index (index module; `.index.bin` in run
//!                                          format 2)
//!                            .services.bin traces: its index shard (shard module); logs `.streams.bin`,
//!                                          metrics `.series.bin`
//! ```
//! A seal adds a run of one chunk; then, while the newest [`FANOUT`] runs are of one level (a run of
//! `count` positions is of level `log8(count)`) and together cover at most
//! [`MAX_RUN_POSITIONS`] positions, they are merged into one. Every index entry is so written about
//! `log8` of the day's chunks times (4 times for 1,000 chunks), where rewriting the day's indexes whole at
//! each seal wrote them as many times as the day had chunks. Positions never change: retention drops a
//! chunk from its run (the run is rewritten under a new name, its `listed` one less) and the indexes keep
//! naming the others by the same positions. Files are written before the day manifest that lists them,
//! and a run's files are deleted only after a day manifest without it is written, so a crash at any point
//! leaves the day as it was before or after the write.
//!
//! A day written before runs existed (format 1: `day.json` listing every chunk, one `index.bin`, one
//! shard) reads as a single run; the next write to it turns it into runs. A run of format 2 (a trace
//! index of 24-byte entries) is read as it is; merges, retention and repairs write format 3.
use std::path::{Path, PathBuf};

use stella_otlp::Signal;

use super::index::{IndexFormat, MAX_RUN_POSITIONS, TraceIndex};
use super::manifest::{
    DAY_FORMAT_VERSION, DayChunk, DayManifest, LegacyDayManifest, RUN_FORMAT_VERSION, RunManifest, RunRef, canonical,
};
use super::shard::shard_file;
use super::store::{StoreError, digest, io, remove_if_present};
use crate::log::{LogFs, RealFs};

/// How many runs of one level are merged into one.
pub(crate) const FANOUT: u32 = 8;

/// A day as read: its runs, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// The tenant.
    pub tenant: String,
    /// The signal.
    pub signal: String,
    /// The UTC day.
    pub day: String,
    pub(crate) runs: Vec<Run>,
}

/// One run of a day as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) manifest: RunManifest,
    /// Its entry in `day.json`; `None` for the single run of a format 1 day, whose files have the
    /// format 1 names.
    pub(crate) reference: Option<RunRef>,
}

impl Day {
    /// A day without chunks.
    pub(crate) fn empty(tenant: &str, signal: &str, day: &str) -> Day {
        Day { tenant: tenant.to_string(), signal: signal.to_string(), day: day.to_string(), runs: Vec::new() }
    }

    /// Its chunks, by position.
    pub fn chunks(&self) -> impl DoubleEndedIterator<Item = &DayChunk> {
        self.runs.iter().flat_map(|run| &run.manifest.chunks)
    }

    /// The position the next chunk sealed into the day takes.
    pub(crate) fn next_position(&self) -> u32 {
        self.runs.last().map_or(0, Run::end)
    }

    /// The index of the first of the newest [`FANOUT`] runs when they are all of one level and together
    /// cover at most [`MAX_RUN_POSITIONS`] (then they are merged).
    pub(crate) fn mergeable(&self) -> Option<usize> {
        let start = self.runs.len().checked_sub(FANOUT as usize)?;
        let newest = &self.runs[start..];
        let level = newest.first().map(Run::level)?;
        let covered: u64 = newest.iter().map(|run| u64::from(run.manifest.count)).sum();
        (covered <= u64::from(MAX_RUN_POSITIONS) && newest.iter().all(|run| run.level() == level)).then_some(start)
    }

    /// Writes `day.json` listing the runs (the commit point). Every run must have been written in
    /// format 2 (see [`Run::reference`]).
    pub(crate) fn commit(&self, dir: &Path) -> Result<(), StoreError> {
        let path = dir.join("day.json");
        let runs = self
            .runs
            .iter()
            .map(|run| {
                run.reference.clone().ok_or_else(|| StoreError::Damaged {
                    path: path.clone(),
                    message: "a format 1 run would be listed in a format 2 day manifest".into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let manifest = DayManifest {
            format_version: DAY_FORMAT_VERSION,
            tenant: self.tenant.clone(),
            signal: self.signal.clone(),
            day: self.day.clone(),
            runs,
        };
        RealFs.write_atomic(&path, &canonical(&manifest)).map_err(io("write", &path))
    }
}

impl Run {
    /// The first position it covers.
    pub(crate) fn first(&self) -> u32 {
        self.manifest.first
    }

    /// One past the last position it covers.
    pub(crate) fn end(&self) -> u32 {
        self.manifest.first.saturating_add(self.manifest.count)
    }

    /// `log8` of the positions it covers.
    fn level(&self) -> u32 {
        self.manifest.count.max(1).ilog(FANOUT)
    }

    /// The chunk listed at `position`, if any (retention may have deleted it).
    pub(crate) fn chunk_at(&self, position: u32) -> Option<&DayChunk> {
        let chunks = &self.manifest.chunks;
        chunks.binary_search_by_key(&position, |chunk| chunk.position).ok().and_then(|at| chunks.get(at))
    }

    /// Whether it is the single run of a format 1 day.
    pub(crate) fn legacy(&self) -> bool {
        self.reference.is_none()
    }

    /// Its trace index file.
    pub(crate) fn index_path(&self, dir: &Path) -> PathBuf {
        match self.index_format() {
            _ if self.legacy() => dir.join("index.bin"),
            IndexFormat::Wide => dir.join(format!("{}.index.bin", run_name(&self.manifest))),
            IndexFormat::Compact => dir.join(format!("{}.traces.bin", run_name(&self.manifest))),
        }
    }

    /// The layout of its trace index file.
    pub(crate) fn index_format(&self) -> IndexFormat {
        if self.manifest.format_version >= RUN_FORMAT_VERSION { IndexFormat::Compact } else { IndexFormat::Wide }
    }

    /// Its index shard file.
    pub(crate) fn shard_path(&self, dir: &Path, signal: Signal) -> PathBuf {
        shard_path(dir, signal, &self.manifest, self.legacy())
    }

    /// Its run manifest file (a format 1 day has none: its `day.json` lists the chunks).
    pub(crate) fn manifest_path(&self, dir: &Path) -> PathBuf {
        if self.legacy() { dir.join("day.json") } else { dir.join(format!("{}.json", run_name(&self.manifest))) }
    }

    /// Deletes its files (a format 1 run: its index files; `day.json` is overwritten by the commit).
    pub(crate) fn remove_files(&self, dir: &Path, signal: Signal) -> Result<(), StoreError> {
        let mut paths = vec![self.index_path(dir), self.shard_path(dir, signal)];
        if !self.legacy() {
            paths.push(self.manifest_path(dir));
        }
        paths.iter().try_for_each(|path| remove_if_present(path))
    }
}

/// The files in `dir` that look like a run's or a format 1 day's index files but belong to no run of
/// `day` (a crash between a commit and the deletion after it leaves them).
pub(crate) fn unlisted_files(dir: &Path, signal: Signal, day: &Day) -> Result<Vec<PathBuf>, StoreError> {
    let listed: std::collections::BTreeSet<String> =
        day.runs.iter().filter(|run| !run.legacy()).map(|run| run_name(&run.manifest)).collect();
    let legacy = day.runs.iter().any(Run::legacy);
    let mut unlisted = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("read", dir))? {
        let entry = entry.map_err(io("read", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stray = match name.split_once('.') {
            Some((stem, _)) if stem.starts_with("run-") => !listed.contains(stem),
            _ => !legacy && (name == "index.bin" || name == shard_file(signal)),
        };
        if stray {
            unlisted.push(entry.path());
        }
    }
    unlisted.sort();
    Ok(unlisted)
}

/// `run-<first>-<count>-<listed>`: a run rewritten by retention lists fewer chunks, so it never
/// overwrites the files the committed day manifest still lists.
/// Whether `path` is a file of a run that a listed run of `day` has taken over (`run-<first>-<count>-…`
/// inside a larger listed run's positions): left by a crash after a merge was committed and before the
/// merged runs' files were deleted. Harmless, and safe to delete whenever found.
pub(crate) fn merged_away(path: &Path, day: &Day) -> bool {
    let Some(stem) =
        path.file_name().and_then(|name| name.to_str()).and_then(|name| name.split_once('.')).map(|(stem, _)| stem)
    else {
        return false;
    };
    let mut parts = stem.strip_prefix("run-").into_iter().flat_map(|rest| rest.split('-'));
    let (Some(Ok(first)), Some(Ok(count))) = (parts.next().map(str::parse::<u32>), parts.next().map(str::parse::<u32>))
    else {
        return false;
    };
    let end = first.saturating_add(count);
    day.runs.iter().filter(|run| !run.legacy()).any(|run| {
        run.manifest.count > count && run.first() <= first && end <= run.end() && run_name(&run.manifest) != stem
    })
}

fn run_name(manifest: &RunManifest) -> String {
    format!("run-{}-{}-{}", manifest.first, manifest.count, manifest.chunks.len())
}

fn shard_path(dir: &Path, signal: Signal, manifest: &RunManifest, legacy: bool) -> PathBuf {
    if legacy {
        dir.join(shard_file(signal))
    } else {
        dir.join(format!("{}.{}", run_name(manifest), shard_file(signal)))
    }
}

/// Writes a run's indexes (`None`: it goes without that index) and then its manifest recording their
/// digests, in [`RUN_FORMAT_VERSION`]; the run, listed in no day manifest yet.
pub(crate) fn write_run(
    dir: &Path,
    signal: Signal,
    mut manifest: RunManifest,
    index: Option<&TraceIndex>,
    shard: Option<&[u8]>,
) -> Result<Run, StoreError> {
    let name = run_name(&manifest);
    let write = |path: PathBuf, bytes: &[u8]| -> Result<String, StoreError> {
        RealFs.write_atomic(&path, bytes).map_err(io("write", &path))?;
        Ok(digest(bytes))
    };
    manifest.format_version = RUN_FORMAT_VERSION;
    manifest.index_sha256 = match index.and_then(|index| index.encode(manifest.first)) {
        Some(bytes) if signal == Signal::Traces => Some(write(dir.join(format!("{name}.traces.bin")), &bytes)?),
        _ => None,
    };
    manifest.shard_sha256 = match shard {
        Some(bytes) => Some(write(shard_path(dir, signal, &manifest, false), bytes)?),
        None => None,
    };
    let bytes = canonical(&manifest);
    let sha256 = write(dir.join(format!("{name}.json")), &bytes)?;
    let reference =
        RunRef { first: manifest.first, count: manifest.count, listed: manifest.chunks.len() as u32, sha256 };
    Ok(Run { manifest, reference: Some(reference) })
}

/// The day in directory `dir`, if it has chunks. A run manifest that does not match the digest the day
/// manifest records is still read (its chunks are checked against their own digests when read), and
/// `store check` reports it.
pub(crate) fn load(dir: &Path) -> Result<Option<Day>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Version {
        format_version: u32,
    }
    let path = dir.join("day.json");
    let Some(bytes) = RealFs.read_file(&path).map_err(io("read", &path))? else { return Ok(None) };
    let damaged = |message: String| StoreError::Damaged { path: path.clone(), message };
    let version: Version = serde_json::from_slice(&bytes).map_err(|error| damaged(error.to_string()))?;
    match version.format_version {
        1 => {
            let legacy: LegacyDayManifest =
                serde_json::from_slice(&bytes).map_err(|error| damaged(error.to_string()))?;
            let mut chunks = legacy.chunks;
            for (position, chunk) in chunks.iter_mut().enumerate() {
                chunk.position = u32::try_from(position).map_err(|_| damaged("more chunks than positions".into()))?;
            }
            let manifest = RunManifest {
                format_version: 1,
                first: 0,
                count: chunks.len() as u32,
                chunks,
                index_sha256: legacy.index_sha256,
                shard_sha256: legacy.shard_sha256,
            };
            let runs = if manifest.chunks.is_empty() { Vec::new() } else { vec![Run { manifest, reference: None }] };
            Ok(Some(Day { tenant: legacy.tenant, signal: legacy.signal, day: legacy.day, runs }))
        }
        DAY_FORMAT_VERSION => {
            let day: DayManifest = serde_json::from_slice(&bytes).map_err(|error| damaged(error.to_string()))?;
            let mut runs = Vec::with_capacity(day.runs.len());
            for reference in day.runs {
                let name = format!("run-{}-{}-{}.json", reference.first, reference.count, reference.listed);
                let run_path = dir.join(name);
                let Some(bytes) = RealFs.read_file(&run_path).map_err(io("read", &run_path))? else {
                    let message = "missing, though its day manifest lists it".into();
                    return Err(StoreError::Damaged { path: run_path, message });
                };
                let manifest: RunManifest = serde_json::from_slice(&bytes)
                    .map_err(|error| StoreError::Damaged { path: run_path.clone(), message: error.to_string() })?;
                if manifest.first != reference.first || manifest.count != reference.count {
                    let message = format!(
                        "it covers {} positions from {}, its day manifest says {} from {}",
                        manifest.count, manifest.first, reference.count, reference.first
                    );
                    return Err(StoreError::Damaged { path: run_path, message });
                }
                runs.push(Run { manifest, reference: Some(reference) });
            }
            Ok(Some(Day { tenant: day.tenant, signal: day.signal, day: day.day, runs }))
        }
        other => Err(damaged(format!("day format version {other}; this build reads 1 and {DAY_FORMAT_VERSION}"))),
    }
}

/// Whether the run manifest on disk is the one the day manifest lists (a crash between a repair's
/// run manifest and its day manifest leaves them apart).
pub(crate) fn run_manifest_matches(dir: &Path, run: &Run) -> Result<bool, StoreError> {
    let Some(reference) = &run.reference else { return Ok(true) };
    let path = run.manifest_path(dir);
    let bytes = RealFs.read_file(&path).map_err(io("read", &path))?.unwrap_or_default();
    Ok(digest(&bytes) == reference.sha256)
}
