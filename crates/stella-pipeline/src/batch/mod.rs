//! The `batch` processor: merges one tenant's requests into larger batches before the sinks.
//!
//! Semantics follow the OpenTelemetry Collector's batch processor
//! (<https://github.com/open-telemetry/opentelemetry-collector/tree/main/processor/batchprocessor>):
//! a batch is sent once it holds `send_batch_size` items or its oldest item waited `timeout`;
//! `send_batch_max_size` (0 = unlimited) splits larger ones. Differences that matter here: a batch never
//! mixes tenants, a merged batch carries the acknowledgement of every request it absorbed (a split request
//! is acknowledged once all its parts are delivered), and closing the input flushes everything.
mod config;
mod run;

pub use config::BatchConfig;
pub use run::{BatchMetrics, spawn};

#[cfg(test)]
mod tests;
