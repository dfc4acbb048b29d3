//! Chunk and day manifests: RFC 8785 JSON, so the same chunks give the same bytes.
use serde::{Deserialize, Serialize};

/// The chunk format version in every manifest.
pub const CHUNK_FORMAT_VERSION: u32 = 1;

/// What one chunk holds (`<sha256>.json` next to `<sha256>.chunk`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkManifest {
    /// [`CHUNK_FORMAT_VERSION`].
    pub format_version: u32,
    /// The tenant.
    pub tenant: String,
    /// `traces`, `metrics` or `logs`.
    pub signal: String,
    /// The UTC day of its first record.
    pub day: String,
    /// Earliest item time, unix nanoseconds, as a string (JSON numbers lose precision past 2^53).
    pub min_time_unix_nano: String,
    /// Latest item time, unix nanoseconds, as a string.
    pub max_time_unix_nano: String,
    /// Records (OTLP requests as logged).
    pub records: u64,
    /// Spans, data points or log records.
    pub items: u64,
    /// `service.name`s, sorted.
    pub services: Vec<String>,
    /// Hex SHA-256 of the chunk file.
    pub sha256: String,
    /// Size of the chunk file.
    pub bytes: u64,
    /// Size of the records with their length prefixes.
    pub uncompressed_bytes: u64,
}

/// One chunk in a day manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayChunk {
    /// Hex SHA-256 of the chunk file.
    pub sha256: String,
    /// Records.
    pub records: u64,
    /// Items.
    pub items: u64,
    /// Earliest item time (unix nanos, string).
    pub min_time_unix_nano: String,
    /// Latest item time (unix nanos, string).
    pub max_time_unix_nano: String,
}

impl DayChunk {
    /// Its earliest item time, unix nanoseconds (0 if the manifest's text is not a number).
    pub fn min_time(&self) -> u64 {
        self.min_time_unix_nano.parse().unwrap_or(0)
    }

    /// Its latest item time, unix nanoseconds (0 if the manifest's text is not a number).
    pub fn max_time(&self) -> u64 {
        self.max_time_unix_nano.parse().unwrap_or(0)
    }
}

/// The chunks of one tenant, signal and UTC day, in the order they were sealed (`day.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayManifest {
    /// [`CHUNK_FORMAT_VERSION`].
    pub format_version: u32,
    /// The tenant.
    pub tenant: String,
    /// The signal.
    pub signal: String,
    /// The UTC day.
    pub day: String,
    /// Its chunks, in sealing order.
    pub chunks: Vec<DayChunk>,
    /// Hex SHA-256 of the day's trace index shard (`index.bin`: sorted, distinct entries of trace id,
    /// chunk position in `chunks` and record position in the chunk), rebuilt deterministically from the
    /// chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_sha256: Option<String>,
    /// Hex SHA-256 of the day's index shard (traces `services.bin`, logs `streams.bin`, metrics
    /// `series.bin`: each stream with the chunks holding it, their time ranges and item counts), rebuilt
    /// deterministically from the chunks. Absent in days sealed before shards existed (and in a day whose
    /// shard could not be built): their scans read every chunk until `store check --repair` writes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_sha256: Option<String>,
}

/// RFC 8785 bytes of a manifest.
pub fn canonical<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(value).unwrap_or_default()
}
