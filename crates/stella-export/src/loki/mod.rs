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
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use stella_otlp::proto::logs::v1::LogRecord;
use stella_otlp::{Batch, OtlpRequest};

use crate::http_post::{Poster, client};
use crate::{BoxFuture, Delivery, ExportError, Exporter};
use stella_otlp::prometheus::labels::label_pairs;

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
        let streams = streams(request, &self.config, u64::try_from(now.as_nanos()).unwrap_or(u64::MAX));
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

/// One entry before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Unix nanoseconds.
    pub at: u64,
    /// The line.
    pub line: String,
    /// Structured metadata, by name.
    pub metadata: Vec<(String, String)>,
}

/// The streams of `request`: label set (sorted pairs) -> entries in time order. `now` (unix nanos)
/// stands in for a record with neither time.
pub fn streams(
    request: &ExportLogsServiceRequest,
    config: &LokiConfig,
    now: u64,
) -> BTreeMap<Vec<(String, String)>, Vec<Entry>> {
    let mut streams: BTreeMap<Vec<(String, String)>, Vec<Entry>> = BTreeMap::new();
    for resource_logs in &request.resource_logs {
        let attributes = resource_logs.resource.as_ref().map_or(&[][..], |resource| &resource.attributes[..]);
        let (labelled, others): (Vec<&KeyValue>, Vec<&KeyValue>) =
            attributes.iter().partition(|attribute| config.stream_attributes.contains(&attribute.key));
        let resource_labels = label_pairs(labelled);
        for record in resource_logs.scope_logs.iter().flat_map(|scope| &scope.log_records) {
            let mut labels = resource_labels.clone();
            if config.severity_label {
                labels.push(("severity".into(), severity(record)));
                labels.sort();
                labels.dedup_by(|later, earlier| later.0 == earlier.0);
            }
            if labels.is_empty() {
                labels.push(("service_name".into(), "unknown_service".into()));
            }
            let mut metadata = label_pairs(others.iter().copied().chain(&record.attributes).collect());
            for (name, id) in [("trace_id", &record.trace_id), ("span_id", &record.span_id)] {
                if !id.is_empty() {
                    metadata.retain(|(existing, _)| existing != name);
                    metadata.push((name.into(), hex::encode(id)));
                }
            }
            metadata.sort();
            let at = [record.time_unix_nano, record.observed_time_unix_nano]
                .into_iter()
                .find(|time| *time > 0)
                .unwrap_or(now);
            streams.entry(labels).or_default().push(Entry { at, line: line(record.body.as_ref()), metadata });
        }
    }
    for entries in streams.values_mut() {
        entries.sort_by_key(|entry| entry.at);
    }
    streams
}

/// The `severity` label of a record.
fn severity(record: &LogRecord) -> String {
    let named = match record.severity_number {
        1..=4 => Some("trace"),
        5..=8 => Some("debug"),
        9..=12 => Some("info"),
        13..=16 => Some("warn"),
        17..=20 => Some("error"),
        21..=24 => Some("fatal"),
        _ => None,
    };
    match named {
        Some(name) => name.to_string(),
        None if !record.severity_text.trim().is_empty() => record.severity_text.trim().to_lowercase(),
        None => "unknown".into(),
    }
}

/// The log line of a body.
fn line(body: Option<&AnyValue>) -> String {
    match body.and_then(|body| body.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(other) => stella_otlp::attributes::json_value(other).to_string(),
        None => String::new(),
    }
}

/// A label set in LogQL selector form, values quoted as Go string literals.
pub fn label_string(labels: &[(String, String)]) -> String {
    let pairs: Vec<String> = labels.iter().map(|(name, value)| format!("{name}={}", go_quote(value))).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn go_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => quoted.push_str(&format!("\\x{:02x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
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
