use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, Write};
use std::path::PathBuf;

use super::framing::{MAX_RECORD_BYTES, prefix};
use super::layout::payload_path;
use super::manifest::{BUNDLE_FORMAT_VERSION, BundleFile, BundleManifest, ProfileDigest, TimeRange, Totals, Window};
use crate::archive::{ArchiveEntry, Compression, write_archive};
use crate::dsse::Signer;
use crate::error::write_io;
use crate::file_set::{ContentDigest, DigestWriter, ENVELOPE_FILE, Hasher, MANIFEST_FILE, json_safe, sign_manifest};
use crate::keys::SigningKey;
use crate::payload_types::BUNDLE_MANIFEST;
use crate::{Signal, WriteError};

/// Buffer of each spool file and of the copy into the archive.
const SPOOL_BUFFER_BYTES: usize = 256 * 1024;

/// What a bundle is about, fixed before the first record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleHeader {
    /// The tenant every record belongs to.
    pub tenant: String,
    /// The window the records were selected for; must start before it ends.
    pub window: Window,
    /// The profile the server ran.
    pub profile: String,
    /// The redaction profiles in force (written sorted, without repeats).
    pub redaction_profiles: Vec<ProfileDigest>,
    /// What writes the bundle, e.g. `stella 0.1.0`.
    pub generator: String,
}

/// What the caller knows about a record (the store computed it when sealing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordFacts {
    /// Spans, data points or log records in the record.
    pub items: u64,
    /// Its earliest item time, unix nanoseconds.
    pub min_time_unix_nano: u64,
    /// Its latest item time, unix nanoseconds.
    pub max_time_unix_nano: u64,
}

/// What [`BundleWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSummary {
    /// The signed manifest.
    pub manifest: BundleManifest,
    /// Who signed it.
    pub signer: Signer,
    /// Hex SHA-256 of `manifest.json`.
    pub manifest_sha256: String,
    /// Hex SHA-256 of the whole archive as written (what an audit record names the bundle by).
    pub archive_sha256: String,
    /// Size of the archive as written.
    pub archive_bytes: u64,
}

/// One signal's records, framed into an unnamed temporary file while they are hashed.
struct Spool {
    file: DigestWriter<BufWriter<File>>,
    records: u64,
    items: u64,
    time_range: TimeRange,
}

/// Writes a forensic bundle: records stream into per-signal spool files (memory stays flat whatever the
/// window holds), then [`finish`](Self::finish) signs the manifest and writes the archive.
///
/// Records are written in the order they are added: feed them in store order and the same window gives the
/// same bytes.
pub struct BundleWriter {
    header: BundleHeader,
    spool_dir: PathBuf,
    spools: BTreeMap<Signal, Spool>,
    source_chunks: BTreeSet<String>,
}

impl BundleWriter {
    /// A writer for `header` whose spool files go to `spool_dir` (unnamed files, gone when dropped).
    pub fn new(header: BundleHeader, spool_dir: impl Into<PathBuf>) -> Result<BundleWriter, WriteError> {
        if header.window.start >= header.window.end {
            return Err(WriteError::InvalidWindow { start: header.window.start, end: header.window.end });
        }
        Ok(BundleWriter {
            header,
            spool_dir: spool_dir.into(),
            spools: BTreeMap::new(),
            source_chunks: BTreeSet::new(),
        })
    }

    /// Adds one stored record of `signal`: its raw bytes (an OTLP `Export*ServiceRequest`, written as is)
    /// and what the caller knows about it. After an I/O error the spool may hold part of the record: drop the
    /// writer rather than finishing it.
    pub fn add_record(&mut self, signal: Signal, record: &[u8], facts: RecordFacts) -> Result<(), WriteError> {
        let too_large = || WriteError::RecordTooLarge { signal, len: record.len(), limit: MAX_RECORD_BYTES };
        let len = u32::try_from(record.len()).map_err(|_| too_large())?;
        if u64::from(len) > MAX_RECORD_BYTES {
            return Err(too_large());
        }
        if facts.min_time_unix_nano > facts.max_time_unix_nano {
            let (min, max) = (facts.min_time_unix_nano, facts.max_time_unix_nano);
            return Err(WriteError::InvalidRecordTimes { signal, min, max });
        }
        let range =
            TimeRange { min_time_unix_nano: facts.min_time_unix_nano, max_time_unix_nano: facts.max_time_unix_nano };
        let spool = match self.spools.entry(signal) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => entry.insert(Spool::create(&self.spool_dir, range)?),
        };
        spool.file.write_all(&prefix(len)).map_err(write_io("write the spool"))?;
        spool.file.write_all(record).map_err(write_io("write the spool"))?;
        spool.records += 1;
        spool.items = spool.items.saturating_add(facts.items);
        spool.time_range = spool.time_range.union(range);
        Ok(())
    }

    /// Adds a redaction profile the records passed (listed sorted, once), found while reading them.
    pub fn add_redaction_profile(&mut self, profile: ProfileDigest) {
        if !self.header.redaction_profiles.contains(&profile) {
            self.header.redaction_profiles.push(profile);
        }
    }

    /// Names a store chunk the records came from by its hex SHA-256 (listed sorted, once).
    pub fn add_source_chunk(&mut self, sha256: &str) -> Result<(), WriteError> {
        let is_hex_sha256 = sha256.len() == 64 && sha256.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        if !is_hex_sha256 {
            return Err(WriteError::InvalidDigest { digest: sha256.to_string() });
        }
        self.source_chunks.insert(sha256.to_string());
        Ok(())
    }

    /// Signs the manifest with `key` and writes the archive to `out` (not closed; flushed).
    pub fn finish(
        self,
        key: &SigningKey,
        compression: Compression,
        out: impl Write,
    ) -> Result<BundleSummary, WriteError> {
        let mut files = Vec::new();
        let mut spooled = Vec::new();
        for (signal, spool) in self.spools {
            let (file, digest, facts) = spool.finish()?;
            files.push(BundleFile {
                path: payload_path(signal).to_string(),
                signal,
                sha256: digest.sha256,
                size: digest.size,
                records: facts.records,
                items: facts.items,
                time_range: facts.time_range,
            });
            spooled.push((payload_path(signal), digest.size, file));
        }
        files.sort_by(|left, right| left.path.cmp(&right.path));
        spooled.sort_by_key(|(path, _, _)| *path);
        let manifest = manifest(self.header, files, self.source_chunks)?;
        let signed = sign_manifest(&manifest, BUNDLE_MANIFEST, key)?;

        let mut entries = vec![
            ArchiveEntry::new(ENVELOPE_FILE, signed.envelope_json.len() as u64, signed.envelope_json.as_slice()),
            ArchiveEntry::new(MANIFEST_FILE, signed.manifest_json.len() as u64, signed.manifest_json.as_slice()),
        ];
        for (name, size, file) in spooled {
            entries.push(ArchiveEntry::new(name, size, BufReader::with_capacity(SPOOL_BUFFER_BYTES, file)));
        }
        debug_assert!(entries.windows(2).all(|pair| pair[0].name < pair[1].name), "entries must be sorted");
        let archive = write_archive(entries, compression, out, "write the bundle")?;
        Ok(BundleSummary {
            manifest_sha256: Hasher::digest(&signed.manifest_json).sha256,
            manifest,
            signer: signed.signer,
            archive_sha256: archive.sha256,
            archive_bytes: archive.size,
        })
    }
}

/// Counts of a finished spool.
struct SpoolFacts {
    records: u64,
    items: u64,
    time_range: TimeRange,
}

impl Spool {
    /// An empty spool in `dir` for records starting with one of `first_range`.
    fn create(dir: &std::path::Path, first_range: TimeRange) -> Result<Spool, WriteError> {
        let file = tempfile::tempfile_in(dir).map_err(|source| WriteError::Spool { dir: dir.to_path_buf(), source })?;
        let file = DigestWriter::new(BufWriter::with_capacity(SPOOL_BUFFER_BYTES, file));
        Ok(Spool { file, records: 0, items: 0, time_range: first_range })
    }

    /// Flushes the spool and rewinds it for reading.
    fn finish(self) -> Result<(File, ContentDigest, SpoolFacts), WriteError> {
        let (buffered, digest) = self.file.finish();
        let mut file = buffered.into_inner().map_err(|error| write_io("write the spool")(error.into_error()))?;
        file.rewind().map_err(write_io("rewind the spool"))?;
        Ok((file, digest, SpoolFacts { records: self.records, items: self.items, time_range: self.time_range }))
    }
}

/// The manifest of `files`, with totals, sorted lists and every number checked to survive RFC 8785.
fn manifest(
    header: BundleHeader,
    files: Vec<BundleFile>,
    source_chunks: BTreeSet<String>,
) -> Result<BundleManifest, WriteError> {
    let mut totals = Totals::default();
    for file in &files {
        totals.records = totals.records.saturating_add(file.records);
        totals.items = totals.items.saturating_add(file.items);
        totals.bytes = totals.bytes.saturating_add(file.size);
    }
    json_safe("total records", totals.records)?;
    json_safe("total items", totals.items)?;
    json_safe("total bytes", totals.bytes)?;
    let time_range = files.iter().map(|file| file.time_range).reduce(TimeRange::union);
    let signals = Signal::ALL.into_iter().filter(|signal| files.iter().any(|file| file.signal == *signal)).collect();
    let redaction_profiles: BTreeSet<ProfileDigest> = header.redaction_profiles.into_iter().collect();
    Ok(BundleManifest {
        format_version: BUNDLE_FORMAT_VERSION,
        tenant: header.tenant,
        window: header.window,
        profile: header.profile,
        signals,
        files,
        totals,
        time_range,
        source_chunks: source_chunks.into_iter().collect(),
        redaction_profiles: redaction_profiles.into_iter().collect(),
        generator: header.generator,
    })
}
