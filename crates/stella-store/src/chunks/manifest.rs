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

/// The day manifest format version: 2 lists runs (see the day module); 1 listed every chunk.
pub const DAY_FORMAT_VERSION: u32 = 2;

/// One chunk of a day, as its run manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayChunk {
    /// Its position in the day: the count of chunks sealed into the day before it. Positions never
    /// change (retention leaves gaps), so the indexes that name a chunk by position stay true.
    #[serde(default)]
    pub position: u32,
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

/// The runs of one tenant, signal and UTC day, oldest first (`day.json`, [`DAY_FORMAT_VERSION`] 2): the
/// commit point of every write to the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayManifest {
    /// [`DAY_FORMAT_VERSION`].
    pub format_version: u32,
    /// The tenant.
    pub tenant: String,
    /// The signal.
    pub signal: String,
    /// The UTC day.
    pub day: String,
    /// Its runs, by first position.
    pub runs: Vec<RunRef>,
}

/// One run in a day manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    /// The first chunk position it covers.
    pub first: u32,
    /// How many positions it covers (some may have been deleted by retention).
    pub count: u32,
    /// How many chunks it lists.
    pub listed: u32,
    /// Hex SHA-256 of its run manifest.
    pub sha256: String,
}

/// The format of the run manifests this build writes: 3, whose trace index is `.traces.bin` (6-byte
/// entries of fingerprint and relative chunk position); 2 had `.index.bin` (24-byte entries of trace id,
/// chunk and record). Both are read.
pub const RUN_FORMAT_VERSION: u32 = 3;

/// The chunks of one run of a day and the digests of its indexes (`run-<first>-<count>-<listed>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    /// [`RUN_FORMAT_VERSION`] (2 for a run written before it; 1 for the single run of a format 1 day).
    pub format_version: u32,
    /// The first chunk position it covers.
    pub first: u32,
    /// How many positions it covers.
    pub count: u32,
    /// Its chunks, by position.
    pub chunks: Vec<DayChunk>,
    /// Hex SHA-256 of its trace index (traces only; its layout follows `format_version`, see the index
    /// module), built from its chunks alone. Absent when it could not be
    /// built: then a trace lookup reads every chunk of the run until `store check --repair`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_sha256: Option<String>,
    /// Hex SHA-256 of its index shard (see the shard module), built from its chunks alone. Absent when it
    /// could not be built: then its scans read every chunk until `store check --repair` writes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_sha256: Option<String>,
}

/// A day manifest of format 1 (`day.json` listing every chunk, one `index.bin` and one shard for the
/// day): read as one run; the next write to the day turns it into format 2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyDayManifest {
    /// 1.
    pub format_version: u32,
    /// The tenant.
    pub tenant: String,
    /// The signal.
    pub signal: String,
    /// The UTC day.
    pub day: String,
    /// Its chunks, in sealing order (their positions).
    pub chunks: Vec<DayChunk>,
    /// Hex SHA-256 of the day's `index.bin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_sha256: Option<String>,
    /// Hex SHA-256 of the day's index shard; absent in days sealed before shards existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_sha256: Option<String>,
}

/// RFC 8785 bytes of a manifest.
pub fn canonical<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(value).unwrap_or_default()
}
