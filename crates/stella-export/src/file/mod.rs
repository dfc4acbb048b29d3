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
//!
//! With a [`RotationSigner`] (the server's evidence key), every rotated file gets a signed manifest of its
//! digest beside it (`<rotated file>.dsse.json`), so staged files travel with signed manifests.
mod config;
mod encode;
mod rotate;
mod service;

pub use config::{Compression, FileConfig, Format, RotationConfig};
pub use encode::{decode_proto_stream, encode_protobuf_record, encode_record};
pub use service::FileExporter;

/// Signs what a rotation closed: writes a signed manifest of the rotated file beside it. Implemented where
/// the keys live (`stella-evidence`, wired in by the binary); the exporter only calls it.
pub trait RotationSigner: Send + Sync {
    /// Writes the signed manifest of `rotated`; returns the manifest's path.
    fn sign_rotation(&self, rotated: &std::path::Path) -> Result<std::path::PathBuf, String>;
}

/// The signed manifest beside a rotated file: `<file>.dsse.json`.
pub fn rotation_manifest_path(rotated: &std::path::Path) -> std::path::PathBuf {
    let mut name = rotated.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".dsse.json");
    rotated.with_file_name(name)
}

#[cfg(test)]
mod tests;
