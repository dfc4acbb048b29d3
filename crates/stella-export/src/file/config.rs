use std::path::{Path, PathBuf};

use serde::Deserialize;
use stella_otlp::Signal;

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// OTLP/JSON, one request per line.
    #[default]
    Json,
    /// 4-byte big-endian length-prefixed protobuf messages.
    Proto,
}

/// Per-record compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression (`""` or absent).
    #[default]
    #[serde(rename = "", alias = "none")]
    None,
    /// One zstd frame per record.
    Zstd,
}

/// `exporters.file.rotation`: when a file is closed and a new one started, and how many old ones are kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// Size in MiB after which the file is rotated. Default 100.
    #[serde(default = "default_max_megabytes")]
    pub max_megabytes: u64,
    /// Rotated files older than this many days are deleted; 0 (default) keeps them whatever their age.
    #[serde(default)]
    pub max_days: u64,
    /// How many rotated files are kept; 0 keeps all. Default 100.
    #[serde(default = "default_max_backups")]
    pub max_backups: usize,
    /// Name rotated files with local time instead of UTC. Default false.
    #[serde(default)]
    pub localtime: bool,
}

fn default_max_megabytes() -> u64 {
    100
}

fn default_max_backups() -> usize {
    100
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_megabytes: default_max_megabytes(),
            max_days: 0,
            max_backups: default_max_backups(),
            localtime: false,
        }
    }
}

/// `exporters.file`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file to write; `{signal}` becomes `traces`, `metrics` or `logs`. Relative to the data directory.
    pub path: PathBuf,
    /// `json` (default) or `proto`.
    #[serde(default)]
    pub format: Format,
    /// `zstd`, or absent for none.
    #[serde(default)]
    pub compression: Compression,
    /// Size-based rotation; absent means the file grows without bound.
    #[serde(default)]
    pub rotation: Option<RotationConfig>,
}

impl FileConfig {
    /// The file for `signal`, with `{signal}` replaced and a relative path resolved under `data_dir`.
    pub fn path_for(&self, signal: Signal, data_dir: &Path) -> PathBuf {
        let text = self.path.to_string_lossy().replace("{signal}", signal.as_str());
        let path = PathBuf::from(text);
        if path.is_absolute() { path } else { data_dir.join(path) }
    }

    /// Problems as (key under this exporter, what is wrong and how to fix it).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.path.as_os_str().is_empty() {
            problems.push(("path", "is empty; give a file such as export/{signal}.jsonl".to_string()));
        }
        if let Some(rotation) = &self.rotation
            && rotation.max_megabytes == 0
        {
            problems
                .push(("rotation.max_megabytes", "must be at least 1; remove `rotation` to never rotate".to_string()));
        }
        problems
    }
}
