//! Encoding to OTLP/JSON: the [`Fields`] builder that applies the scalar rules (ids as lowercase
//! hex, 64-bit integers as decimal strings, non-finite doubles as strings, defaults omitted), and
//! the encoders of requests, responses, shared messages, traces and logs; metrics are in
//! `encode_metrics`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::encode_metrics::metrics_request;
use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::proto::common::v1::{AnyValue, EntityRef, InstrumentationScope, KeyValue, any_value};
use crate::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use crate::proto::resource::v1::Resource;
use crate::proto::trace::v1::span::{Event, Link};
use crate::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use crate::{OtlpRequest, Signal};

/// The fields of one JSON object (a sorted map, so the output order is fixed). Scalar methods omit
/// default values (proto3 JSON); [`Fields::value`] and the `Option` methods write what they get.
#[derive(Default)]
pub(super) struct Fields(Map<String, Value>);

impl Fields {
    /// An empty object.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The finished object.
    pub(super) fn build(self) -> Value {
        Value::Object(self.0)
    }

    /// Any value, always written.
    pub(super) fn value(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.to_string(), value);
        self
    }

    /// Writes `value` unless `skip`.
    fn unless(self, skip: bool, key: &str, value: impl FnOnce() -> Value) -> Self {
        if skip { self } else { self.value(key, value()) }
    }

    /// A `string`, omitted when empty.
    pub(super) fn string(self, key: &str, text: &str) -> Self {
        self.unless(text.is_empty(), key, || Value::from(text))
    }

    /// A `bool`, omitted when false.
    pub(super) fn boolean(self, key: &str, flag: bool) -> Self {
        self.unless(!flag, key, || Value::Bool(flag))
    }

    /// A 32-bit integer or enum as a JSON number, omitted when 0.
    pub(super) fn int32(self, key: &str, number: impl Into<i64> + Copy) -> Self {
        let wide: i64 = number.into();
        self.unless(wide == 0, key, || Value::from(wide))
    }

    /// A 64-bit integer as a decimal string, omitted when 0.
    pub(super) fn int64(self, key: &str, number: impl Into<i128> + Copy) -> Self {
        let wide: i128 = number.into();
        self.unless(wide == 0, key, || Value::String(wide.to_string()))
    }

    /// A `double`, omitted when 0.
    pub(super) fn double(self, key: &str, float: f64) -> Self {
        self.unless(float == 0.0, key, || double(float))
    }

    /// An `optional double`, written whenever present.
    pub(super) fn opt_double(self, key: &str, float: Option<f64>) -> Self {
        match float {
            Some(float) => self.value(key, double(float)),
            None => self,
        }
    }

    /// An id as lowercase hex, omitted when empty.
    pub(super) fn id(self, key: &str, bytes: &[u8]) -> Self {
        self.unless(bytes.is_empty(), key, || Value::String(hex::encode(bytes)))
    }

    /// A message field, written whenever present.
    pub(super) fn message<T>(self, key: &str, message: Option<&T>, encode: fn(&T) -> Value) -> Self {
        match message {
            Some(message) => self.value(key, encode(message)),
            None => self,
        }
    }

    /// A repeated field, each item encoded by `encode`; omitted when empty.
    pub(super) fn list<T>(self, key: &str, items: &[T], encode: impl Fn(&T) -> Value) -> Self {
        self.unless(items.is_empty(), key, || Value::Array(items.iter().map(encode).collect()))
    }
}

/// A `double`: a JSON number when finite, else `"NaN"`, `"Infinity"` or `"-Infinity"`.
pub(super) fn double(float: f64) -> Value {
    match serde_json::Number::from_f64(float) {
        Some(number) => Value::Number(number),
        None if float.is_nan() => Value::from("NaN"),
        None if float > 0.0 => Value::from("Infinity"),
        None => Value::from("-Infinity"),
    }
}

/// A 64-bit integer item of a repeated field, as a decimal string.
pub(super) fn int64_item(number: &u64) -> Value {
    Value::String(number.to_string())
}

/// The JSON of an export request.
pub(super) fn request(request: &OtlpRequest) -> Value {
    match request {
        OtlpRequest::Traces(traces) => trace_request(traces),
        OtlpRequest::Metrics(metrics) => metrics_request(metrics),
        OtlpRequest::Logs(logs) => logs_request(logs),
    }
}

/// The JSON of an `Export*ServiceResponse`.
pub(super) fn response(signal: Signal, rejected: i64, error_message: &str) -> Value {
    if rejected == 0 && error_message.is_empty() {
        return Fields::new().build();
    }
    let count_key = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    let partial = Fields::new()
        .value(count_key, Value::String(rejected.to_string()))
        .value("errorMessage", Value::from(error_message))
        .build();
    Fields::new().value("partialSuccess", partial).build()
}

// ---- common ----

/// `Resource`.
pub(super) fn resource(resource: &Resource) -> Value {
    Fields::new()
        .list("attributes", &resource.attributes, key_value)
        .int32("droppedAttributesCount", resource.dropped_attributes_count)
        .list("entityRefs", &resource.entity_refs, entity_ref)
        .build()
}

/// `EntityRef`.
fn entity_ref(entity: &EntityRef) -> Value {
    Fields::new()
        .string("schemaUrl", &entity.schema_url)
        .string("type", &entity.r#type)
        .list("idKeys", &entity.id_keys, |key| Value::from(key.as_str()))
        .list("descriptionKeys", &entity.description_keys, |key| Value::from(key.as_str()))
        .build()
}

/// `InstrumentationScope`.
pub(super) fn scope(scope: &InstrumentationScope) -> Value {
    Fields::new()
        .string("name", &scope.name)
        .string("version", &scope.version)
        .list("attributes", &scope.attributes, key_value)
        .int32("droppedAttributesCount", scope.dropped_attributes_count)
        .build()
}

/// `KeyValue`: the key is always written, the value whenever present (`{}` for an empty one).
pub(super) fn key_value(pair: &KeyValue) -> Value {
    Fields::new()
        .value("key", Value::from(pair.key.as_str()))
        .message("value", pair.value.as_ref(), any_value)
        .int32("keyStrindex", pair.key_strindex)
        .build()
}

/// `AnyValue`: the member of the oneof is written even when it holds a default (`""`, `0`,
/// `false`); `{}` for no value. The profiles dictionary references (`keyStrindex`, `stringValueStrindex`)
/// are kept too, so that no field is lost in a round trip.
fn any_value(value: &AnyValue) -> Value {
    use any_value::Value as V;
    let fields = Fields::new();
    let fields = match &value.value {
        None => fields,
        Some(V::StringValueStrindex(index)) => fields.value("stringValueStrindex", Value::from(*index)),
        Some(V::StringValue(text)) => fields.value("stringValue", Value::from(text.as_str())),
        Some(V::BoolValue(flag)) => fields.value("boolValue", Value::Bool(*flag)),
        Some(V::IntValue(number)) => fields.value("intValue", Value::String(number.to_string())),
        Some(V::DoubleValue(float)) => fields.value("doubleValue", double(*float)),
        Some(V::ArrayValue(array)) => {
            let inner = Fields::new().list("values", &array.values, any_value).build();
            fields.value("arrayValue", inner)
        }
        Some(V::KvlistValue(list)) => {
            let inner = Fields::new().list("values", &list.values, key_value).build();
            fields.value("kvlistValue", inner)
        }
        Some(V::BytesValue(bytes)) => fields.value("bytesValue", Value::String(STANDARD.encode(bytes))),
    };
    fields.build()
}

// ---- traces ----

/// `ExportTraceServiceRequest`.
fn trace_request(request: &ExportTraceServiceRequest) -> Value {
    Fields::new().list("resourceSpans", &request.resource_spans, resource_spans).build()
}

/// `ResourceSpans`.
fn resource_spans(item: &ResourceSpans) -> Value {
    Fields::new()
        .message("resource", item.resource.as_ref(), resource)
        .list("scopeSpans", &item.scope_spans, scope_spans)
        .string("schemaUrl", &item.schema_url)
        .build()
}

/// `ScopeSpans`.
fn scope_spans(item: &ScopeSpans) -> Value {
    Fields::new()
        .message("scope", item.scope.as_ref(), scope)
        .list("spans", &item.spans, span)
        .string("schemaUrl", &item.schema_url)
        .build()
}

/// `Span`.
fn span(span: &Span) -> Value {
    Fields::new()
        .id("traceId", &span.trace_id)
        .id("spanId", &span.span_id)
        .string("traceState", &span.trace_state)
        .id("parentSpanId", &span.parent_span_id)
        .int32("flags", span.flags)
        .string("name", &span.name)
        .int32("kind", span.kind)
        .int64("startTimeUnixNano", span.start_time_unix_nano)
        .int64("endTimeUnixNano", span.end_time_unix_nano)
        .list("attributes", &span.attributes, key_value)
        .int32("droppedAttributesCount", span.dropped_attributes_count)
        .list("events", &span.events, event)
        .int32("droppedEventsCount", span.dropped_events_count)
        .list("links", &span.links, link)
        .int32("droppedLinksCount", span.dropped_links_count)
        .message("status", span.status.as_ref(), status)
        .build()
}

/// `Span.Event`.
fn event(event: &Event) -> Value {
    Fields::new()
        .int64("timeUnixNano", event.time_unix_nano)
        .string("name", &event.name)
        .list("attributes", &event.attributes, key_value)
        .int32("droppedAttributesCount", event.dropped_attributes_count)
        .build()
}

/// `Span.Link`.
fn link(link: &Link) -> Value {
    Fields::new()
        .id("traceId", &link.trace_id)
        .id("spanId", &link.span_id)
        .string("traceState", &link.trace_state)
        .list("attributes", &link.attributes, key_value)
        .int32("droppedAttributesCount", link.dropped_attributes_count)
        .int32("flags", link.flags)
        .build()
}

/// `Status`.
fn status(status: &Status) -> Value {
    Fields::new().string("message", &status.message).int32("code", status.code).build()
}

// ---- logs ----

/// `ExportLogsServiceRequest`.
fn logs_request(request: &ExportLogsServiceRequest) -> Value {
    Fields::new().list("resourceLogs", &request.resource_logs, resource_logs).build()
}

/// `ResourceLogs`.
fn resource_logs(item: &ResourceLogs) -> Value {
    Fields::new()
        .message("resource", item.resource.as_ref(), resource)
        .list("scopeLogs", &item.scope_logs, scope_logs)
        .string("schemaUrl", &item.schema_url)
        .build()
}

/// `ScopeLogs`.
fn scope_logs(item: &ScopeLogs) -> Value {
    Fields::new()
        .message("scope", item.scope.as_ref(), scope)
        .list("logRecords", &item.log_records, log_record)
        .string("schemaUrl", &item.schema_url)
        .build()
}

/// `LogRecord`.
fn log_record(record: &LogRecord) -> Value {
    Fields::new()
        .int64("timeUnixNano", record.time_unix_nano)
        .int64("observedTimeUnixNano", record.observed_time_unix_nano)
        .int32("severityNumber", record.severity_number)
        .string("severityText", &record.severity_text)
        .message("body", record.body.as_ref(), any_value)
        .list("attributes", &record.attributes, key_value)
        .int32("droppedAttributesCount", record.dropped_attributes_count)
        .int32("flags", record.flags)
        .id("traceId", &record.trace_id)
        .id("spanId", &record.span_id)
        .string("eventName", &record.event_name)
        .build()
}
