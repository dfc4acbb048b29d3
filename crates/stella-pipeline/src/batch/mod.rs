//! The `batch` processor's settings. Since the ingest log, batching happens where the data leaves: each
//! consumer reads up to `send_batch_size` items from the log, waiting at most `timeout` for more, so
//! clients are answered as soon as their request is in the log instead of when a batch fills.
//! Key names follow the OpenTelemetry Collector's batch processor
//! (<https://github.com/open-telemetry/opentelemetry-collector/tree/main/processor/batchprocessor>).
mod config;

pub use config::BatchConfig;
