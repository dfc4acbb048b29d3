//! [`Sealer`]: groups logged records into chunks by rules that read only the data, so the same records in
//! the same order always give the same chunks and digests.
//!
//! A chunk belongs to the UTC day of its first record (by the record's earliest item time). It is sealed
//! before a record of a later day is added, or once it holds `max_records` records or `max_bytes` bytes.
//! Records of an earlier day that arrive late join the open chunk. There is never a wall-clock seal: the
//! open chunk's records stay in the ingest log (the store's cursor points at its first record) until it
//! seals, so a restart rebuilds exactly the same open chunk.
use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use stella_otlp::{OtlpRequest, Signal};

use super::facts::{RecordFacts, request_facts};
use super::manifest::{CHUNK_FORMAT_VERSION, ChunkManifest};
use super::streams::ChunkStreams;
use super::terms::ChunkTerms;
use super::volume::LogVolume;

/// zstd level of chunk files (fixed: part of what makes digests reproducible).
const ZSTD_LEVEL: i32 = 3;

/// When a chunk is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealLimits {
    /// Records per chunk.
    pub max_records: usize,
    /// Uncompressed record bytes per chunk.
    pub max_bytes: usize,
}

impl Default for SealLimits {
    fn default() -> Self {
        SealLimits { max_records: 4096, max_bytes: 2 * 1024 * 1024 }
    }
}

/// A record in the open chunk.
#[derive(Debug, Clone)]
pub struct OpenRecord {
    /// Its ingest-log sequence number.
    pub seq: u64,
    /// The OTLP request, exactly as logged.
    pub payload: Vec<u8>,
    /// What it holds.
    pub facts: RecordFacts,
}

/// A sealed chunk, ready to be written.
#[derive(Debug, Clone)]
pub struct SealedChunk {
    /// The chunk file: zstd of `(u32 big-endian length, record)*`.
    pub bytes: Vec<u8>,
    /// Its manifest (the digest of `bytes` included).
    pub manifest: ChunkManifest,
    /// The trace ids of its spans, sorted and distinct (traces only).
    pub trace_ids: Vec<[u8; 16]>,
    /// Its streams, for the day's index shard.
    pub streams: ChunkStreams,
    /// Its term filter file (traces and logs; `None` for metrics).
    pub terms: Option<Vec<u8>>,
    /// Its log volume file (logs only).
    pub volume: Option<Vec<u8>>,
    /// The sequence number of its last record.
    pub last_seq: u64,
}

/// The sealer of one tenant and signal.
#[derive(Debug)]
pub struct Sealer {
    tenant: String,
    signal: Signal,
    limits: SealLimits,
    day: Option<String>,
    open: Vec<OpenRecord>,
    open_bytes: usize,
    /// The streams of the open records.
    open_streams: ChunkStreams,
    /// The terms of the open records' spans.
    open_terms: ChunkTerms,
    /// The log volume of the open records (logs only).
    open_volume: LogVolume,
}

/// The UTC day (`YYYY-MM-DD`) of a unix-nanosecond time.
pub fn utc_day(unix_nanos: u64) -> String {
    let seconds = i64::try_from(unix_nanos / 1_000_000_000).unwrap_or(i64::MAX);
    jiff::Timestamp::from_second(seconds)
        .map(|timestamp| timestamp.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_else(|_| "1970-01-01".to_string())
}

impl Sealer {
    /// A sealer for `tenant`'s `signal` with `limits`.
    pub fn new(tenant: &str, signal: Signal, limits: SealLimits) -> Self {
        Sealer {
            tenant: tenant.to_string(),
            signal,
            limits,
            day: None,
            open: Vec::new(),
            open_bytes: 0,
            open_streams: ChunkStreams::default(),
            open_terms: ChunkTerms::default(),
            open_volume: LogVolume::default(),
        }
    }

    /// Adds one logged record; returns the chunks this sealed (before it, on a day change, and after it,
    /// at a limit). A record that does not decode is skipped (and logged by the caller).
    pub fn add(&mut self, seq: u64, payload: Vec<u8>) -> Result<Vec<SealedChunk>, UndecodableRecord> {
        let request = OtlpRequest::decode_protobuf(self.signal, &payload).map_err(|_| UndecodableRecord { seq })?;
        let facts = request_facts(&request);
        let mut sealed = Vec::new();
        let day = utc_day(facts.min_time);
        if self.day.as_ref().is_some_and(|open_day| day > *open_day) && !self.open.is_empty() {
            sealed.extend(self.seal());
        }
        if self.open.is_empty() {
            self.day = Some(day);
        }
        self.open_bytes += payload.len();
        self.open_streams.add_request(&request);
        self.open_terms.add_request(&request);
        self.open_volume.add_request(&request);
        self.open.push(OpenRecord { seq, payload, facts });
        if self.open.len() >= self.limits.max_records || self.open_bytes >= self.limits.max_bytes {
            sealed.extend(self.seal());
        }
        Ok(sealed)
    }

    /// The first record of the open chunk (where the store's cursor must stay), if any.
    pub fn open_first_seq(&self) -> Option<u64> {
        self.open.first().map(|record| record.seq)
    }

    /// The records not sealed yet (queries read them too).
    pub fn open_records(&self) -> &[OpenRecord] {
        &self.open
    }

    fn seal(&mut self) -> Option<SealedChunk> {
        if self.open.is_empty() {
            return None;
        }
        let records = std::mem::take(&mut self.open);
        let streams = std::mem::take(&mut self.open_streams);
        let terms = std::mem::take(&mut self.open_terms);
        let terms = (self.signal != Signal::Metrics).then(|| terms.encode());
        let volume = std::mem::take(&mut self.open_volume);
        let volume = (self.signal == Signal::Logs).then(|| volume.encode());
        self.open_bytes = 0;
        let day = self.day.take().unwrap_or_else(|| utc_day(0));
        let mut framed = Vec::with_capacity(records.iter().map(|record| record.payload.len() + 4).sum());
        let mut services = BTreeSet::new();
        let mut trace_ids = BTreeSet::new();
        let (mut min_time, mut max_time, mut items) = (u64::MAX, 0u64, 0u64);
        for record in &records {
            framed.extend_from_slice(&(record.payload.len() as u32).to_be_bytes());
            framed.extend_from_slice(&record.payload);
            services.extend(record.facts.services.iter().cloned());
            trace_ids.extend(record.facts.trace_ids.iter().copied());
            if record.facts.min_time > 0 {
                min_time = min_time.min(record.facts.min_time);
            }
            max_time = max_time.max(record.facts.max_time);
            items += record.facts.items;
        }
        let bytes = zstd::bulk::compress(&framed, ZSTD_LEVEL).unwrap_or_default();
        let manifest = ChunkManifest {
            format_version: CHUNK_FORMAT_VERSION,
            tenant: self.tenant.clone(),
            signal: self.signal.as_str().to_string(),
            day,
            min_time_unix_nano: if min_time == u64::MAX { "0".into() } else { min_time.to_string() },
            max_time_unix_nano: max_time.to_string(),
            records: records.len() as u64,
            items,
            services: services.into_iter().collect(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes: bytes.len() as u64,
            uncompressed_bytes: framed.len() as u64,
        };
        let last_seq = records.last().map_or(0, |record| record.seq);
        Some(SealedChunk {
            bytes,
            manifest,
            trace_ids: trace_ids.into_iter().collect(),
            streams,
            terms,
            volume,
            last_seq,
        })
    }
}

/// The records a sealing consumer holds unsealed after reading `records` (its log from its cursor on) with
/// `limits`, exactly as the running sealer would: what it would seal goes in chunks, and the chunks
/// `stored` already holds (by digest) are left out, so the rest is what a server's open chunk holds
/// (plus any chunk it sealed but did not write before it stopped). For offline readers of a data
/// directory that must see what the server sees.
pub fn unsealed_records(
    tenant: &str,
    signal: Signal,
    limits: SealLimits,
    records: impl IntoIterator<Item = (u64, Vec<u8>)>,
    stored: &dyn Fn(&ChunkManifest) -> bool,
) -> Vec<OpenRecord> {
    let mut sealer = Sealer::new(tenant, signal, limits);
    let mut unsealed = Vec::new();
    for (seq, payload) in records {
        let Ok(chunks) = sealer.add(seq, payload.clone()) else { continue };
        for chunk in chunks {
            if stored(&chunk.manifest) {
                continue;
            }
            let framed = chunk_records(&chunk.bytes).unwrap_or_default();
            unsealed.extend(framed.into_iter().filter_map(|payload| {
                let facts = super::facts::record_facts(signal, &payload)?;
                Some(OpenRecord { seq: 0, payload, facts })
            }));
        }
    }
    unsealed.extend(sealer.open);
    unsealed
}

/// A logged record that is not an OTLP request of the log's signal.
#[derive(Debug, thiserror::Error)]
#[error("ingest log record {seq} does not decode as OTLP; it is skipped")]
pub struct UndecodableRecord {
    /// Its sequence number.
    pub seq: u64,
}

/// The records of a chunk file (`(u32 big-endian length, record)*` under zstd).
pub fn chunk_records(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let framed = zstd::stream::decode_all(bytes).map_err(|error| format!("not a zstd chunk: {error}"))?;
    let mut records = Vec::new();
    let mut rest = framed.as_slice();
    while !rest.is_empty() {
        let Some((length, tail)) = rest.split_first_chunk::<4>() else {
            return Err("a truncated record length".into());
        };
        let length = u32::from_be_bytes(*length) as usize;
        let Some((record, tail)) = tail.split_at_checked(length) else {
            return Err(format!("a record of {length} bytes runs past the end"));
        };
        records.push(record.to_vec());
        rest = tail;
    }
    Ok(records)
}
