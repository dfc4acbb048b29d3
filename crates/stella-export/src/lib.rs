//! Sinks that take OTLP batches out of the pipeline. In this crate: `file` (OTLP JSON lines or
//! length-prefixed protobuf, optional zstd, size rotation), `debug` (a summary line per batch) and `nop`.
//!
//! Every sink implements [`Exporter`]; the collector calls [`Exporter::export`] for each batch and
//! acknowledges the batch's clients only once every exporter of the pipeline returned `Ok`.
#![deny(missing_docs)]

mod debug;
pub(crate) mod error;
mod exporter;
mod nop;

pub mod file;

pub use debug::{DebugConfig, DebugExporter, Verbosity};
pub use error::ExportError;
pub use exporter::{BoxFuture, Delivery, ExportMetrics, Exporter, ExporterHealth};
pub use nop::NopExporter;
