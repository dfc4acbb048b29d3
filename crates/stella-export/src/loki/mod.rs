//! `loki`: OTLP logs to Grafana Loki's push API (`/loki/api/v1/push`): a `PushRequest` protobuf in
//! snappy's block format (`Content-Type: application/x-protobuf`), or `{"streams":[...]}` JSON.
//!
//! - **Stream labels**: the configured resource attributes (default `service.name`,
//!   `deployment.environment`) under Prometheus-style names (`service_name`), and `severity` (from the
//!   severity number: trace, debug, info, warn, error, fatal; else the text, lower-cased; else
//!   `unknown`). Few labels on purpose: each label set is a Loki stream.
//! - **Structured metadata**: every other resource attribute and every record attribute (names
//!   sanitised the same way; colliding names' values joined with `;`), `trace_id` and `span_id` (hex).
//! - **Line**: the body; a string as it is, any other value as JSON.
//! - **Time**: the record's time in nanoseconds (its observed time when it has none); entries of a
//!   stream in time order, one stream per label set per request.
//!
//! Retry policy: see `http_post` (Loki answers 400 for entries it refuses for good, having taken the
//! rest of the request, so a 400 is never retried).
mod config;
mod proto;

pub use config::{LokiConfig, LokiFormat};
pub use proto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};

use std::collections::BTreeMap;

use prost::Message;
use stella_otlp::{Batch, OtlpRequest};

use crate::http_post::{Poster, client};
use crate::{BoxFuture, Delivery, ExportError, Exporter};
pub use stella_otlp::loki::{Entry, StreamLabels, label_string, streams};

/// `exporters.loki`.
pub struct LokiExporter {
    id: String,
    poster: Poster,
    config: LokiConfig,
}

impl LokiExporter {
    /// An exporter for `config`; no connection is made until the first batch.
    pub fn new(id: String, config: LokiConfig) -> Result<Self, ExportError> {
        let poster = Poster {
            client: client(&config.tls, &config.endpoint)?,
            url: config.endpoint.clone(),
            timeout: config.timeout,
            headers: config.headers.clone().into_iter().collect(),
            server_error_retries: config.max_server_error_retries,
        };
        Ok(LokiExporter { id, poster, config })
    }

    async fn send(&self, batch: &Batch) -> Result<(), ExportError> {
        let OtlpRequest::Logs(request) = &batch.request else {
            return Err(ExportError::Rejected {
                reason: "wrong_signal".into(),
                endpoint: self.poster.url.clone(),
                message: format!("loki takes logs, not {}", batch.signal()),
            });
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let labels = StreamLabels {
            stream_attributes: self.config.stream_attributes.clone(),
            severity_label: self.config.severity_label,
        };
        let streams = streams(request, &labels, u64::try_from(now.as_nanos()).unwrap_or(u64::MAX));
        if streams.is_empty() {
            return Ok(());
        }
        match self.config.format {
            LokiFormat::Protobuf => {
                let body = push_request(streams).encode_to_vec();
                let compressed =
                    snap::raw::Encoder::new().compress_vec(&body).map_err(|error| ExportError::Rejected {
                        reason: "encode".into(),
                        endpoint: self.poster.url.clone(),
                        message: format!("cannot snappy-compress the push request: {error}"),
                    })?;
                self.poster.post(compressed.into(), &[("content-type", "application/x-protobuf")]).await
            }
            LokiFormat::Json => {
                let body = serde_json::to_vec(&push_json(streams)).map_err(|error| ExportError::Rejected {
                    reason: "encode".into(),
                    endpoint: self.poster.url.clone(),
                    message: format!("cannot encode the push request as JSON: {error}"),
                })?;
                self.poster.post(body.into(), &[("content-type", "application/json")]).await
            }
        }
    }
}

impl Exporter for LokiExporter {
    fn id(&self) -> &str {
        &self.id
    }

    fn export<'a>(&'a self, batch: &'a Batch, _delivery: Delivery<'a>) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.send(batch))
    }
}

fn timestamp(at: u64) -> Timestamp {
    Timestamp {
        seconds: i64::try_from(at / 1_000_000_000).unwrap_or(i64::MAX),
        nanos: i32::try_from(at % 1_000_000_000).unwrap_or(0),
    }
}

fn push_request(streams: BTreeMap<Vec<(String, String)>, Vec<Entry>>) -> PushRequest {
    PushRequest {
        streams: streams
            .into_iter()
            .map(|(labels, entries)| StreamAdapter {
                labels: label_string(&labels),
                entries: entries
                    .into_iter()
                    .map(|entry| EntryAdapter {
                        timestamp: Some(timestamp(entry.at)),
                        line: entry.line,
                        structured_metadata: entry
                            .metadata
                            .into_iter()
                            .map(|(name, value)| LabelPairAdapter { name, value })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn push_json(streams: BTreeMap<Vec<(String, String)>, Vec<Entry>>) -> serde_json::Value {
    let streams: Vec<serde_json::Value> = streams
        .into_iter()
        .map(|(labels, entries)| {
            let stream: serde_json::Map<String, serde_json::Value> =
                labels.into_iter().map(|(name, value)| (name, value.into())).collect();
            let values: Vec<serde_json::Value> = entries
                .into_iter()
                .map(|entry| {
                    let metadata: serde_json::Map<String, serde_json::Value> =
                        entry.metadata.into_iter().map(|(name, value)| (name, value.into())).collect();
                    serde_json::json!([entry.at.to_string(), entry.line, metadata])
                })
                .collect();
            serde_json::json!({"stream": stream, "values": values})
        })
        .collect();
    serde_json::json!({ "streams": streams })
}

#[cfg(test)]
mod tests;
