//! `exporters.file`: writes each batch to a local file, the air-gapped way out of the collector.
//!
//! Keys follow the OpenTelemetry Collector's file exporter
//! (<https://github.com/open-telemetry/opentelemetry-collector-contrib/tree/main/exporter/fileexporter>).
//! Record framing:
//! ```text
//! format: json    one OTLP/JSON export request per line, '\n'-terminated
//! format: proto   [u32 big-endian length][Export*ServiceRequest protobuf] ... (file-exporter framing)
//! compression: zstd   each record above is one zstd frame; the file is a valid zstd stream, so
//!                     `zstd -dc file` yields the uncompressed framing
//! ```
//! `{signal}` in `path` is replaced by `traces`, `metrics` or `logs`, giving one file per signal.
//! A relative path is taken relative to the data directory.
mod config;
mod encode;
mod rotate;
mod service;

pub use config::{Compression, FileConfig, Format, RotationConfig};
pub use encode::{decode_proto_stream, encode_protobuf_record, encode_record};
pub use service::FileExporter;

#[cfg(test)]
mod tests;
