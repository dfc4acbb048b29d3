use std::io::Write;

use prost::Message;
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceResponse;
use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceResponse;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceResponse;
use stella_otlp::{Batch, RpcStatus, Signal};

use super::{OtlpCompression, OtlpConfig, count_partial};
use crate::{BoxFuture, Delivery, Encoded, ExportError, ExportMetrics, Exporter};

/// `exporters.otlphttp`: OTLP/HTTP protobuf to a backend.
pub struct OtlpHttpExporter {
    id: String,
    config: OtlpConfig,
    client: reqwest::Client,
    metrics: ExportMetrics,
}

impl OtlpHttpExporter {
    /// An exporter for `config`; no connection is made until the first batch.
    pub fn new(id: String, config: OtlpConfig, metrics: ExportMetrics) -> Result<Self, ExportError> {
        let client = crate::http_post::client(&config.tls, &config.endpoint)?;
        Ok(OtlpHttpExporter { id, config, client, metrics })
    }

    async fn send(&self, signal: Signal, mut body: Vec<u8>) -> Result<(), ExportError> {
        let url = self.config.http_url(signal);
        let mut call =
            self.client.post(&url).timeout(self.config.timeout).header("content-type", "application/x-protobuf");
        if self.config.compression != OtlpCompression::None {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
            let compressed = encoder.write_all(&body).and_then(|()| encoder.finish());
            if let Ok(compressed) = compressed {
                body = compressed;
                call = call.header("content-encoding", "gzip");
            }
        }
        for (name, value) in &self.config.headers {
            call = call.header(name, value);
        }
        let response = call.body(body).send().await.map_err(|error| {
            let reason = if error.is_timeout() { "timeout" } else { "connection" };
            ExportError::Retryable { reason, endpoint: url.clone(), message: error.to_string(), retry_after: None }
        })?;
        let status = response.status().as_u16();
        let retry_after = crate::http_post::retry_after(response.headers());
        let bytes = response.bytes().await.unwrap_or_default();
        match status {
            200..=299 => {
                let (rejected, message) = partial_success(signal, &bytes);
                count_partial(&self.metrics, &self.id, &url, rejected, &message);
                Ok(())
            }
            429 | 502 | 503 | 504 => {
                let reason = if status == 429 { "throttled" } else { "unavailable" };
                Err(ExportError::Retryable {
                    reason,
                    endpoint: url,
                    message: format!("HTTP {status}: {}", status_message(&bytes)),
                    retry_after,
                })
            }
            _ => Err(ExportError::Rejected {
                reason: format!("http_{status}"),
                endpoint: url,
                message: format!("HTTP {status}: {}", status_message(&bytes)),
            }),
        }
    }
}

/// The `partial_success` of an answer body (rejected count and message), or zero when there is none.
fn partial_success(signal: Signal, body: &[u8]) -> (i64, String) {
    let decoded = match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
    };
    decoded.unwrap_or_default()
}

/// The message of a `google.rpc.Status` body, or the body as text.
fn status_message(body: &[u8]) -> String {
    match RpcStatus::decode(body) {
        Ok(status) if !status.message.is_empty() => status.message,
        _ => String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
    }
}

impl Exporter for OtlpHttpExporter {
    fn id(&self) -> &str {
        &self.id
    }

    fn export<'a>(&'a self, batch: &'a Batch, _delivery: Delivery<'a>) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.send(batch.signal(), batch.request.encode_protobuf()))
    }

    fn takes_encoded(&self) -> bool {
        true
    }

    fn export_encoded<'a>(
        &'a self,
        encoded: &'a Encoded,
        _delivery: Delivery<'a>,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.send(encoded.signal, encoded.bytes.clone()))
    }
}
