//! `evidence`: the key the server signs with, the keys it trusts, and periodic forensic bundles.
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::validate::{Problems, typed};

/// `evidence`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EvidenceConfig {
    /// `signing_key`: a PKCS#8 PEM Ed25519 key or a Stella HMAC key file; absent = generated once under
    /// `<data-dir>/keys/`.
    pub signing_key: Option<PathBuf>,
    /// `trusted_keys`: public keys (SPKI PEM) and HMAC key files whose signatures verify (config bundles
    /// for `serve --config-dir`, `deploy`); the server's own key is always trusted.
    pub trusted_keys: Vec<PathBuf>,
    /// `schedule`: periodic forensic bundles; absent = none.
    pub schedule: Option<ScheduleConfig>,
}

/// `evidence.schedule`: a forensic bundle of every tenant's last `interval`, every `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// `interval` (default 1h): each bundle covers the interval before its (aligned) end.
    pub interval: Duration,
    /// `archive_dir` (default `archive` under the data directory).
    pub archive_dir: Option<PathBuf>,
    /// `keep`: bundles older than this are pruned (default: the store's retention).
    pub keep: Option<Duration>,
    /// `compression`: `gzip` (default) or `zstd`.
    pub compression: BundleCompression,
}

/// How bundles are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BundleCompression {
    /// `.tar.gz`.
    #[default]
    Gzip,
    /// `.tar.zst`.
    Zstd,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EvidenceRaw {
    #[serde(default)]
    signing_key: Option<PathBuf>,
    #[serde(default)]
    trusted_keys: Vec<PathBuf>,
    #[serde(default)]
    schedule: Option<ScheduleRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleRaw {
    #[serde(default = "default_interval", deserialize_with = "stella_pipeline::duration::deserialize")]
    interval: Duration,
    #[serde(default)]
    archive_dir: Option<PathBuf>,
    #[serde(default, with = "stella_pipeline::duration::optional_text")]
    keep: Option<Duration>,
    #[serde(default)]
    compression: BundleCompression,
}

fn default_interval() -> Duration {
    Duration::from_secs(3600)
}

/// Reads `evidence`, resolving relative key paths against `base_dir` (the config file's directory).
pub(super) fn evidence(value: Option<&Value>, base_dir: &Path, problems: &mut Problems) -> EvidenceConfig {
    let Some(raw) = value.and_then(|value| typed::<EvidenceRaw>(value, "evidence", problems)) else {
        return EvidenceConfig::default();
    };
    let resolve = |path: PathBuf| if path.is_absolute() { path } else { base_dir.join(path) };
    let schedule = raw.schedule.and_then(|schedule| {
        if schedule.interval < Duration::from_secs(10) {
            problems.add("evidence.schedule.interval", "must be at least 10s; e.g. 1h");
            return None;
        }
        Some(ScheduleConfig {
            interval: schedule.interval,
            archive_dir: schedule.archive_dir.map(resolve),
            keep: schedule.keep,
            compression: schedule.compression,
        })
    });
    let signing_key = raw.signing_key.map(resolve);
    let trusted_keys: Vec<PathBuf> = raw.trusted_keys.into_iter().map(resolve).collect();
    // The files are read at start: a missing one is a config error here, as it is for `serve`.
    let unreadable = |path: &Path| std::fs::File::open(path).err();
    if let Some(error) = signing_key.as_deref().and_then(unreadable) {
        let path = signing_key.as_deref().unwrap_or(Path::new("")).display();
        problems.add(
            "evidence.signing_key",
            format!("cannot read {path}: {error}; make one with `stella telemetry keys generate --out DIR`"),
        );
    }
    for (index, key) in trusted_keys.iter().enumerate() {
        if let Some(error) = unreadable(key) {
            problems.add(format!("evidence.trusted_keys[{index}]"), format!("cannot read {}: {error}", key.display()));
        }
    }
    EvidenceConfig { signing_key, trusted_keys, schedule }
}
