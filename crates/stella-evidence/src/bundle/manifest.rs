use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::layout::payload_path;
use super::serde_text::{decimal, signal_name, signal_names};
use crate::file_set::Hasher;
use crate::{BundleError, Signal};

/// The format version of [`BundleManifest`]; readers refuse others.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;

/// What a bundle holds: `manifest.json`, signed as the payload of `manifest.dsse.json`.
///
/// ```text
/// {"files":[{"items":12,"path":"otlp/traces.pb","records":3,"sha256":"<hex>","signal":"traces","size":1480,
///            "time_range":{"max_time_unix_nano":"1767225600500000000","min_time_unix_nano":"1767225600000000000"}}],
///  "format_version":1,"generator":"stella 0.1.0","profile":"forensic",
///  "redaction_profiles":[{"name":"default","sha256":"<hex>"}],"signals":["traces"],"source_chunks":["<hex>"],
///  "tenant":"acme","time_range":{...},"totals":{"bytes":1480,"items":12,"records":3},
///  "window":{"end":"2026-01-02T00:00:00Z","start":"2026-01-01T00:00:00Z"}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// [`BUNDLE_FORMAT_VERSION`].
    pub format_version: u32,
    /// The tenant every record belongs to.
    pub tenant: String,
    /// The window the bundle was cut for (records overlapping it).
    pub window: Window,
    /// The profile the server ran (`default`, `forensic`, `airgap`).
    pub profile: String,
    /// The signals that have records, in the order traces, metrics, logs.
    #[serde(with = "signal_names")]
    pub signals: Vec<Signal>,
    /// One entry per payload file, sorted by path.
    pub files: Vec<BundleFile>,
    /// Sums over `files`.
    pub totals: Totals,
    /// The true earliest and latest item times of all records; `null` when the bundle has none.
    pub time_range: Option<TimeRange>,
    /// Hex SHA-256 digests of the store chunks the records came from, sorted, without repeats.
    pub source_chunks: Vec<String>,
    /// The redaction profiles in force, sorted by name.
    pub redaction_profiles: Vec<ProfileDigest>,
    /// What wrote the bundle, e.g. `stella 0.1.0`.
    pub generator: String,
}

impl BundleManifest {
    /// The entry of `signal`'s payload file, if the bundle has records of it.
    pub fn file(&self, signal: Signal) -> Option<&BundleFile> {
        self.files.iter().find(|file| file.signal == signal)
    }

    /// Refuses manifests this build does not read or that contradict the layout.
    pub(crate) fn validate(&self) -> Result<(), BundleError> {
        if self.format_version != BUNDLE_FORMAT_VERSION {
            return Err(BundleError::UnsupportedFormat { version: self.format_version });
        }
        if self.files.iter().any(|file| file.path != payload_path(file.signal)) {
            return Err(BundleError::InvalidManifest { reason: "a file's path is not its signal's payload path" });
        }
        let file_signals: Vec<Signal> =
            Signal::ALL.into_iter().filter(|signal| self.files.iter().any(|file| file.signal == *signal)).collect();
        if file_signals != self.signals || self.files.len() != self.signals.len() {
            return Err(BundleError::InvalidManifest { reason: "`signals` does not list each file's signal once" });
        }
        Ok(())
    }
}

/// The time window of a bundle, RFC 3339 in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

/// Earliest and latest item times, unix nanoseconds (decimal strings in the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// Earliest item time.
    #[serde(with = "decimal")]
    pub min_time_unix_nano: u64,
    /// Latest item time.
    #[serde(with = "decimal")]
    pub max_time_unix_nano: u64,
}

impl TimeRange {
    /// The smallest range holding both.
    pub(crate) fn union(self, other: TimeRange) -> TimeRange {
        TimeRange {
            min_time_unix_nano: self.min_time_unix_nano.min(other.min_time_unix_nano),
            max_time_unix_nano: self.max_time_unix_nano.max(other.max_time_unix_nano),
        }
    }
}

/// One payload file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleFile {
    /// `otlp/<signal>.pb`.
    pub path: String,
    /// The signal of its records.
    #[serde(with = "signal_name")]
    pub signal: Signal,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// Size of the file in bytes (records plus their 4-byte length prefixes).
    pub size: u64,
    /// Records (OTLP export requests).
    pub records: u64,
    /// Spans, data points or log records, as counted by the writer's caller.
    pub items: u64,
    /// Earliest and latest item times of its records.
    pub time_range: TimeRange,
}

/// Sums over the payload files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Records.
    pub records: u64,
    /// Items.
    pub items: u64,
    /// Payload file bytes.
    pub bytes: u64,
}

/// A redaction profile in force when the records were stored, named and pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDigest {
    /// The profile name (`default`, `strict`, ...).
    pub name: String,
    /// Lowercase hex SHA-256 of its definition.
    pub sha256: String,
}

impl ProfileDigest {
    /// Names `definition` (use its RFC 8785 bytes, [`crate::canonical::to_vec`], so equal definitions give
    /// equal digests).
    pub fn of(name: &str, definition: &[u8]) -> ProfileDigest {
        ProfileDigest { name: name.to_string(), sha256: Hasher::digest(definition).sha256 }
    }

    /// Reads the `stella.redaction.profile` resource attribute the redaction stage writes:
    /// `name@sha256:<64 lowercase hex>`.
    pub fn from_attribute(value: &str) -> Option<ProfileDigest> {
        let (name, digest) = value.split_once("@sha256:")?;
        let hex = digest.len() == 64 && digest.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        (!name.is_empty() && hex).then(|| ProfileDigest { name: name.to_string(), sha256: digest.to_string() })
    }
}
