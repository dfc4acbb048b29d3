//! Encoding to OTLP/JSON: the [`Fields`] writer that applies the scalar rules (ids as lowercase hex,
//! 64-bit integers as decimal strings, non-finite doubles as strings, defaults omitted) and writes
//! straight into the output buffer, and the encoders of requests, responses, shared messages, traces and
//! logs; metrics are in `encode_metrics`.
//!
//! Every encoder writes its keys in sorted (byte) order, so the output is fixed; debug builds check it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::encode_metrics::metrics_request;
use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::proto::common::v1::{AnyValue, EntityRef, InstrumentationScope, KeyValue, any_value};
use crate::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use crate::proto::resource::v1::Resource;
use crate::proto::trace::v1::span::{Event, Link};
use crate::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use crate::{OtlpRequest, Signal};

/// One JSON object being written: `{` on creation, `}` on [`Fields::build`]. Scalar methods omit
/// default values (proto3 JSON); [`Fields::raw`] and the `Option` methods write what they get.
pub(super) struct Fields<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
    #[cfg(debug_assertions)]
    last: &'static str,
}

impl<'o> Fields<'o> {
    /// Opens an object in `out`.
    pub(super) fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Fields {
            out,
            first: true,
            #[cfg(debug_assertions)]
            last: "",
        }
    }

    /// Closes the object.
    pub(super) fn build(self) {
        self.out.push(b'}');
    }

    fn key(&mut self, key: &'static str) {
        #[cfg(debug_assertions)]
        {
            assert!(self.first || self.last < key, "JSON keys out of order: {:?} after {:?}", key, self.last);
            self.last = key;
        }
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// Any value, always written by `write`.
    pub(super) fn raw(mut self, key: &'static str, write: impl FnOnce(&mut Vec<u8>)) -> Self {
        self.key(key);
        write(self.out);
        self
    }

    /// Writes the value `write` writes unless `skip`.
    fn unless(self, skip: bool, key: &'static str, write: impl FnOnce(&mut Vec<u8>)) -> Self {
        if skip { self } else { self.raw(key, write) }
    }

    /// A `string`, omitted when empty.
    pub(super) fn string(self, key: &'static str, text: &str) -> Self {
        self.unless(text.is_empty(), key, |out| string(out, text))
    }

    /// A `bool`, omitted when false.
    pub(super) fn boolean(self, key: &'static str, flag: bool) -> Self {
        self.unless(!flag, key, |out| out.extend_from_slice(b"true"))
    }

    /// A 32-bit integer or enum as a JSON number, omitted when 0.
    pub(super) fn int32(self, key: &'static str, number: impl Into<i64> + Copy) -> Self {
        let wide: i64 = number.into();
        self.unless(wide == 0, key, |out| number_text(out, wide))
    }

    /// A 64-bit integer as a decimal string, omitted when 0.
    pub(super) fn int64(self, key: &'static str, number: impl Into<i128> + Copy) -> Self {
        let wide: i128 = number.into();
        self.unless(wide == 0, key, |out| quoted_number(out, wide))
    }

    /// A `double`, omitted when 0.
    pub(super) fn double(self, key: &'static str, float: f64) -> Self {
        self.unless(float == 0.0, key, |out| double(out, float))
    }

    /// An `optional double`, written whenever present.
    pub(super) fn opt_double(self, key: &'static str, float: Option<f64>) -> Self {
        match float {
            Some(float) => self.raw(key, |out| double(out, float)),
            None => self,
        }
    }

    /// An id as lowercase hex, omitted when empty.
    pub(super) fn id(self, key: &'static str, bytes: &[u8]) -> Self {
        self.unless(bytes.is_empty(), key, |out| {
            out.push(b'"');
            out.extend_from_slice(hex::encode(bytes).as_bytes());
            out.push(b'"');
        })
    }

    /// A message field, written whenever present.
    pub(super) fn message<T>(self, key: &'static str, message: Option<&T>, encode: fn(&mut Vec<u8>, &T)) -> Self {
        match message {
            Some(message) => self.raw(key, |out| encode(out, message)),
            None => self,
        }
    }

    /// A repeated field, each item written by `encode`; omitted when empty.
    pub(super) fn list<T>(self, key: &'static str, items: &[T], encode: impl Fn(&mut Vec<u8>, &T)) -> Self {
        self.unless(items.is_empty(), key, |out| {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                encode(out, item);
            }
            out.push(b']');
        })
    }
}

/// A JSON string, escaped.
pub(super) fn string(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(out, text);
}

/// An integer as a JSON number.
fn number_text(out: &mut Vec<u8>, number: i64) {
    let _ = serde_json::to_writer(out, &number);
}

/// A 64-bit integer as a decimal string.
pub(super) fn quoted_number(out: &mut Vec<u8>, number: impl Into<i128>) {
    out.push(b'"');
    let _ = serde_json::to_writer(&mut *out, &number.into());
    out.push(b'"');
}

/// A `double`: a JSON number when finite, else `"NaN"`, `"Infinity"` or `"-Infinity"`.
pub(super) fn double(out: &mut Vec<u8>, float: f64) {
    if float.is_finite() {
        let _ = serde_json::to_writer(out, &float);
    } else if float.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if float > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

/// A 64-bit integer item of a repeated field, as a decimal string.
pub(super) fn int64_item(out: &mut Vec<u8>, number: &u64) {
    quoted_number(out, *number);
}

/// The JSON of an export request.
pub(super) fn request(out: &mut Vec<u8>, request: &OtlpRequest) {
    match request {
        OtlpRequest::Traces(traces) => trace_request(out, traces),
        OtlpRequest::Metrics(metrics) => metrics_request(out, metrics),
        OtlpRequest::Logs(logs) => logs_request(out, logs),
    }
}

/// The JSON of an `Export*ServiceResponse`.
pub(super) fn response(out: &mut Vec<u8>, signal: Signal, rejected: i64, error_message: &str) {
    if rejected == 0 && error_message.is_empty() {
        return Fields::new(out).build();
    }
    let count_key = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    Fields::new(out)
        .raw("partialSuccess", |out| {
            Fields::new(out)
                .raw("errorMessage", |out| string(out, error_message))
                .raw(count_key, |out| quoted_number(out, rejected))
                .build()
        })
        .build();
}

// ---- common ----

/// `Resource`.
pub(super) fn resource(out: &mut Vec<u8>, resource: &Resource) {
    Fields::new(out)
        .list("attributes", &resource.attributes, key_value)
        .int32("droppedAttributesCount", resource.dropped_attributes_count)
        .list("entityRefs", &resource.entity_refs, entity_ref)
        .build()
}

/// `EntityRef`.
fn entity_ref(out: &mut Vec<u8>, entity: &EntityRef) {
    Fields::new(out)
        .list("descriptionKeys", &entity.description_keys, |out, key| string(out, key))
        .list("idKeys", &entity.id_keys, |out, key| string(out, key))
        .string("schemaUrl", &entity.schema_url)
        .string("type", &entity.r#type)
        .build()
}

/// `InstrumentationScope`.
pub(super) fn scope(out: &mut Vec<u8>, scope: &InstrumentationScope) {
    Fields::new(out)
        .list("attributes", &scope.attributes, key_value)
        .int32("droppedAttributesCount", scope.dropped_attributes_count)
        .string("name", &scope.name)
        .string("version", &scope.version)
        .build()
}

/// `KeyValue`: the key is always written, the value whenever present (`{}` for an empty one).
pub(super) fn key_value(out: &mut Vec<u8>, pair: &KeyValue) {
    Fields::new(out)
        .raw("key", |out| string(out, &pair.key))
        .int32("keyStrindex", pair.key_strindex)
        .message("value", pair.value.as_ref(), any_value)
        .build()
}

/// `AnyValue`: the member of the oneof is written even when it holds a default (`""`, `0`,
/// `false`); `{}` for no value. The profiles dictionary references (`keyStrindex`, `stringValueStrindex`)
/// are kept too, so that no field is lost in a round trip.
fn any_value(out: &mut Vec<u8>, value: &AnyValue) {
    use any_value::Value as V;
    let fields = Fields::new(out);
    let fields = match &value.value {
        None => fields,
        Some(V::StringValueStrindex(index)) => {
            fields.raw("stringValueStrindex", |out| number_text(out, (*index).into()))
        }
        Some(V::StringValue(text)) => fields.raw("stringValue", |out| string(out, text)),
        Some(V::BoolValue(flag)) => {
            fields.raw("boolValue", |out| out.extend_from_slice(if *flag { b"true" } else { b"false" }))
        }
        Some(V::IntValue(number)) => fields.raw("intValue", |out| quoted_number(out, *number)),
        Some(V::DoubleValue(float)) => fields.raw("doubleValue", |out| double(out, *float)),
        Some(V::ArrayValue(array)) => {
            fields.raw("arrayValue", |out| Fields::new(out).list("values", &array.values, any_value).build())
        }
        Some(V::KvlistValue(list)) => {
            fields.raw("kvlistValue", |out| Fields::new(out).list("values", &list.values, key_value).build())
        }
        Some(V::BytesValue(bytes)) => fields.raw("bytesValue", |out| string(out, &STANDARD.encode(bytes))),
    };
    fields.build()
}

// ---- traces ----

/// `ExportTraceServiceRequest`.
fn trace_request(out: &mut Vec<u8>, request: &ExportTraceServiceRequest) {
    Fields::new(out).list("resourceSpans", &request.resource_spans, resource_spans).build()
}

/// `ResourceSpans`.
fn resource_spans(out: &mut Vec<u8>, item: &ResourceSpans) {
    Fields::new(out)
        .message("resource", item.resource.as_ref(), resource)
        .string("schemaUrl", &item.schema_url)
        .list("scopeSpans", &item.scope_spans, scope_spans)
        .build()
}

/// `ScopeSpans`.
fn scope_spans(out: &mut Vec<u8>, item: &ScopeSpans) {
    Fields::new(out)
        .string("schemaUrl", &item.schema_url)
        .message("scope", item.scope.as_ref(), scope)
        .list("spans", &item.spans, span)
        .build()
}

/// `Span`.
fn span(out: &mut Vec<u8>, span: &Span) {
    Fields::new(out)
        .list("attributes", &span.attributes, key_value)
        .int32("droppedAttributesCount", span.dropped_attributes_count)
        .int32("droppedEventsCount", span.dropped_events_count)
        .int32("droppedLinksCount", span.dropped_links_count)
        .int64("endTimeUnixNano", span.end_time_unix_nano)
        .list("events", &span.events, event)
        .int32("flags", span.flags)
        .int32("kind", span.kind)
        .list("links", &span.links, link)
        .string("name", &span.name)
        .id("parentSpanId", &span.parent_span_id)
        .id("spanId", &span.span_id)
        .int64("startTimeUnixNano", span.start_time_unix_nano)
        .message("status", span.status.as_ref(), status)
        .id("traceId", &span.trace_id)
        .string("traceState", &span.trace_state)
        .build()
}

/// `Span.Event`.
fn event(out: &mut Vec<u8>, event: &Event) {
    Fields::new(out)
        .list("attributes", &event.attributes, key_value)
        .int32("droppedAttributesCount", event.dropped_attributes_count)
        .string("name", &event.name)
        .int64("timeUnixNano", event.time_unix_nano)
        .build()
}

/// `Span.Link`.
fn link(out: &mut Vec<u8>, link: &Link) {
    Fields::new(out)
        .list("attributes", &link.attributes, key_value)
        .int32("droppedAttributesCount", link.dropped_attributes_count)
        .int32("flags", link.flags)
        .id("spanId", &link.span_id)
        .id("traceId", &link.trace_id)
        .string("traceState", &link.trace_state)
        .build()
}

/// `Status`.
fn status(out: &mut Vec<u8>, status: &Status) {
    Fields::new(out).int32("code", status.code).string("message", &status.message).build()
}

// ---- logs ----

/// `ExportLogsServiceRequest`.
fn logs_request(out: &mut Vec<u8>, request: &ExportLogsServiceRequest) {
    Fields::new(out).list("resourceLogs", &request.resource_logs, resource_logs).build()
}

/// `ResourceLogs`.
fn resource_logs(out: &mut Vec<u8>, item: &ResourceLogs) {
    Fields::new(out)
        .message("resource", item.resource.as_ref(), resource)
        .string("schemaUrl", &item.schema_url)
        .list("scopeLogs", &item.scope_logs, scope_logs)
        .build()
}

/// `ScopeLogs`.
fn scope_logs(out: &mut Vec<u8>, item: &ScopeLogs) {
    Fields::new(out)
        .list("logRecords", &item.log_records, log_record)
        .string("schemaUrl", &item.schema_url)
        .message("scope", item.scope.as_ref(), scope)
        .build()
}

/// `LogRecord`.
fn log_record(out: &mut Vec<u8>, record: &LogRecord) {
    Fields::new(out)
        .list("attributes", &record.attributes, key_value)
        .message("body", record.body.as_ref(), any_value)
        .int32("droppedAttributesCount", record.dropped_attributes_count)
        .string("eventName", &record.event_name)
        .int32("flags", record.flags)
        .int64("observedTimeUnixNano", record.observed_time_unix_nano)
        .int32("severityNumber", record.severity_number)
        .string("severityText", &record.severity_text)
        .id("spanId", &record.span_id)
        .int64("timeUnixNano", record.time_unix_nano)
        .id("traceId", &record.trace_id)
        .build()
}
