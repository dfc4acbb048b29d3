//! Stella's own meta-metrics: labelled counters, gauges and histograms kept in a [`Registry`] and served
//! as Prometheus text exposition format 0.0.4 (`# HELP` / `# TYPE` on the exact sample names), so that
//! `promtool check metrics` accepts the output.
//!
//! Components register their families once when they are built and keep the handles; the hot path is
//! then one atomic add. Registering a name again (a component rebuilt on reload) returns the existing
//! family, so counts survive reloads.
//!
//! ```
//! let registry = stella_metrics::Registry::default();
//! let accepted = registry.counter("collector_receiver_accepted_items_total", "Items accepted.", &["signal"]);
//! accepted.with(&["traces"]).add(3);
//! assert!(registry.encode().contains("collector_receiver_accepted_items_total{signal=\"traces\"} 3"));
//! ```
#![deny(missing_docs)]

mod encode;
mod family;
pub mod names;
mod snapshot;

pub use encode::Scope;
pub use family::{Counter, CounterVec, FloatGauge, FloatGaugeVec, Gauge, GaugeVec, Histogram, HistogramVec, Registry};
pub use snapshot::{FamilySnapshot, Kind, SeriesSnapshot, SnapshotValue};

/// Buckets for sizes in bytes: 1 KiB to 64 MiB, by powers of four.
pub const BYTE_BUCKETS: &[f64] =
    &[1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0];

/// Buckets for item counts per batch or request.
pub const ITEM_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0];

/// Buckets for durations in seconds: 1 ms to 60 s.
pub const SECONDS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0];
