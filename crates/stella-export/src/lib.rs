//! Sinks that take OTLP batches out of the pipeline: `file` (OTLP JSON lines or length-prefixed
//! protobuf, optional zstd, size rotation), `otlp` / `otlphttp` (to a backend, with retry and the egress
//! policy), `prometheusremotewrite` (metrics to Prometheus), `debug` (a summary line per batch) and `nop`.
//!
//! Every sink implements [`Exporter`]; the collector calls [`Exporter::export`] for each batch and
//! acknowledges the batch's clients only once every exporter of the pipeline returned `Ok`.
#![deny(missing_docs)]

mod debug;
pub mod egress;
pub(crate) mod error;
mod exporter;
pub mod http_client;
mod http_post;
pub mod loadbalancing;
pub mod loki;
pub mod monitoring;
mod nop;
pub mod object_storage;

pub mod file;
pub mod otlp;
pub mod prometheus;

pub use debug::{DebugConfig, DebugExporter, Verbosity};
pub use error::ExportError;
pub use exporter::{BoxFuture, Delivery, Encoded, ExportMetrics, Exporter, ExporterHealth};
pub use nop::NopExporter;

/// Installs the `ring` crypto provider for rustls, once per process (further calls do nothing).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
