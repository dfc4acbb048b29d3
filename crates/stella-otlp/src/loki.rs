//! The Loki view of OTLP logs, one translation for the `loki` exporter and for the Loki API on the store:
//!
//! - **Stream labels**: the chosen resource attributes (default `service.name`, `deployment.environment`)
//!   under Prometheus-style names (`service_name`), and `severity` (from the severity number: trace,
//!   debug, info, warn, error, fatal; else the text, lower-cased; else `unknown`).
//! - **Structured metadata**: every other resource attribute and every record attribute (names sanitised
//!   the same way; colliding names' values joined with `;`), `trace_id` and `span_id` (hex).
//! - **Line**: the body; a string as it is, any other value as JSON.
//! - **Time**: the record's time in nanoseconds (its observed time when it has none).
use std::collections::BTreeMap;

use crate::prometheus::labels::label_pairs;
use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::common::v1::{AnyValue, KeyValue, any_value};
use crate::proto::logs::v1::LogRecord;

/// The resource attributes that become stream labels by default.
pub const DEFAULT_STREAM_ATTRIBUTES: &[&str] = &["service.name", "deployment.environment"];

/// Which labels make a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLabels {
    /// Resource attributes that become stream labels (`service.name` -> `service_name`); every other
    /// attribute goes into structured metadata.
    pub stream_attributes: Vec<String>,
    /// Whether the record's severity is a `severity` stream label.
    pub severity_label: bool,
}

impl Default for StreamLabels {
    fn default() -> Self {
        StreamLabels {
            stream_attributes: DEFAULT_STREAM_ATTRIBUTES.iter().map(|name| name.to_string()).collect(),
            severity_label: true,
        }
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
    config: &StreamLabels,
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
pub fn line(body: Option<&AnyValue>) -> String {
    match body.and_then(|body| body.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(other) => crate::attributes::json_value(other).to_string(),
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
