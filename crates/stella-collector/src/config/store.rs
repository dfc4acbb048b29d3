//! `exporters.store`: the embedded store's seal limits and retention (the store itself is in
//! `stella-store`; these are the config's words for it).
use serde::Deserialize;
use stella_otlp::Signal;
use stella_store::chunks::SealLimits;

/// `exporters.store`: the seal limits and retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Records per chunk (default 4096).
    #[serde(default = "default_max_records")]
    pub max_chunk_records: usize,
    /// Uncompressed bytes per chunk (default 2 MiB: a lookup by trace id decompresses one chunk).
    #[serde(default = "default_max_bytes")]
    pub max_chunk_bytes: usize,
    /// How long chunks are kept, by the time of their newest item (default 30 days for every signal).
    #[serde(default)]
    pub retention: Retention,
    /// How often retention runs (default 1h).
    #[serde(default = "default_sweep_interval", deserialize_with = "stella_pipeline::duration::deserialize")]
    pub sweep_interval: std::time::Duration,
}

/// `retention`: a default window and per-signal overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Every signal without its own window (default 30d).
    #[serde(default = "default_retention", deserialize_with = "stella_pipeline::duration::deserialize")]
    pub default: std::time::Duration,
    /// Traces.
    #[serde(default, with = "stella_pipeline::duration::optional_text")]
    pub traces: Option<std::time::Duration>,
    /// Metrics.
    #[serde(default, with = "stella_pipeline::duration::optional_text")]
    pub metrics: Option<std::time::Duration>,
    /// Logs.
    #[serde(default, with = "stella_pipeline::duration::optional_text")]
    pub logs: Option<std::time::Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { default: default_retention(), traces: None, metrics: None, logs: None }
    }
}

impl Retention {
    /// The window of `signal`.
    pub fn window(&self, signal: Signal) -> std::time::Duration {
        match signal {
            Signal::Traces => self.traces,
            Signal::Metrics => self.metrics,
            Signal::Logs => self.logs,
        }
        .unwrap_or(self.default)
    }
}

fn default_retention() -> std::time::Duration {
    std::time::Duration::from_secs(30 * 86_400)
}

fn default_sweep_interval() -> std::time::Duration {
    std::time::Duration::from_secs(3600)
}

impl StoreSettings {
    /// The seal limits these settings give.
    pub fn limits(&self) -> SealLimits {
        SealLimits { max_records: self.max_chunk_records.max(1), max_bytes: self.max_chunk_bytes.max(1) }
    }
}

fn default_max_records() -> usize {
    SealLimits::default().max_records
}

fn default_max_bytes() -> usize {
    SealLimits::default().max_bytes
}
