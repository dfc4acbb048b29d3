//! The OTLP exporters: `otlphttp` (protobuf over HTTP, gzip) and `otlp` (gRPC), with the OpenTelemetry
//! Collector's key names. Retry policy (<https://opentelemetry.io/docs/specs/otlp/#failures>): 429, 502,
//! 503, 504 and gRPC UNAVAILABLE / RESOURCE_EXHAUSTED are retried with exponential backoff by the consumer,
//! honouring `Retry-After`; other failures drop the batch and count it; items refused in a
//! `partial_success` are counted (`reason="partial_rejected"`), never retried.
pub(crate) mod config;
mod grpc;
mod http;

pub use config::{ClientTls, OtlpCompression, OtlpConfig, TlsMaterial};
pub use grpc::OtlpGrpcExporter;
pub use http::OtlpHttpExporter;

use crate::ExportMetrics;

/// Counts items a backend refused in a `partial_success` answer.
fn count_partial(metrics: &ExportMetrics, exporter: &str, endpoint: &str, rejected: i64, message: &str) {
    if rejected > 0 || !message.is_empty() {
        tracing::warn!(
            exporter,
            endpoint,
            rejected,
            message,
            "the backend refused some items (partial success); they are not retried"
        );
        metrics.failed(exporter, "partial_rejected", u64::try_from(rejected).unwrap_or(0));
    }
}
