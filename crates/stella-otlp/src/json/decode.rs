//! Decoding of the OTLP/JSON messages shared by all signals (`Resource`, `InstrumentationScope`,
//! `KeyValue`, `AnyValue`), of traces and of logs; metrics are in `decode_metrics`.
//! Field names are the lowerCamelCase JSON names; [`Obj`] also accepts their snake_case forms.

use serde_json::Value;

use super::JsonError;
use super::decode_metrics::metrics_request;
use super::walk::{Obj, Path, ROOT, base64, boolean, double, enumeration, id, int, string};
use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::proto::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use crate::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use crate::proto::resource::v1::Resource;
use crate::proto::trace::v1::span::{Event, Link, SpanKind};
use crate::proto::trace::v1::status::StatusCode;
use crate::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use crate::{OtlpRequest, Signal};

/// Deepest nesting of `AnyValue`s (through `arrayValue` and `kvlistValue`) accepted; an attribute
/// value is level 1.
pub(super) const MAX_ANY_VALUE_DEPTH: usize = 64;

/// The export request of `signal` held by the parsed body `value`.
pub(super) fn request(signal: Signal, value: &Value) -> Result<OtlpRequest, JsonError> {
    let path = ROOT;
    Ok(match signal {
        Signal::Traces => OtlpRequest::Traces(trace_request(value, &path)?),
        Signal::Metrics => OtlpRequest::Metrics(metrics_request(value, &path)?),
        Signal::Logs => OtlpRequest::Logs(logs_request(value, &path)?),
    })
}

// ---- common ----

/// `Resource`.
pub(super) fn resource(value: &Value, path: &Path<'_>) -> Result<Resource, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(Resource {
        attributes: o.list("attributes", key_value)?,
        dropped_attributes_count: o.get("droppedAttributesCount", int)?,
        entity_refs: o.list("entityRefs", entity_ref)?,
    })
}

/// `EntityRef`.
fn entity_ref(value: &Value, path: &Path<'_>) -> Result<EntityRef, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(EntityRef {
        schema_url: o.get("schemaUrl", string)?,
        r#type: o.get("type", string)?,
        id_keys: o.list("idKeys", string)?,
        description_keys: o.list("descriptionKeys", string)?,
    })
}

/// `InstrumentationScope`.
pub(super) fn scope(value: &Value, path: &Path<'_>) -> Result<InstrumentationScope, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(InstrumentationScope {
        name: o.get("name", string)?,
        version: o.get("version", string)?,
        attributes: o.list("attributes", key_value)?,
        dropped_attributes_count: o.get("droppedAttributesCount", int)?,
    })
}

/// A `KeyValue` of an attribute list (its value is at nesting level 1).
pub(super) fn key_value(value: &Value, path: &Path<'_>) -> Result<KeyValue, JsonError> {
    key_value_at(value, path, 1)
}

/// A `KeyValue` whose value is at nesting level `depth`.
fn key_value_at(value: &Value, path: &Path<'_>, depth: usize) -> Result<KeyValue, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(KeyValue {
        key: o.get("key", string)?,
        value: o.opt("value", |value, path| any_value(value, path, depth))?,
        key_strindex: o.get("keyStrindex", int)?,
    })
}

/// An `AnyValue` at nesting level `depth`: exactly one of its value fields, none for `{}`.
fn any_value(value: &Value, path: &Path<'_>, depth: usize) -> Result<AnyValue, JsonError> {
    if depth > MAX_ANY_VALUE_DEPTH {
        return Err(
            path.error(format!("AnyValue nested deeper than {MAX_ANY_VALUE_DEPTH} levels (arrayValue/kvlistValue)"))
        );
    }
    let o = Obj::new(value, path)?;
    let nested = depth + 1;
    let members = [
        o.opt("stringValue", string)?.map(any_value::Value::StringValue),
        o.opt("boolValue", boolean)?.map(any_value::Value::BoolValue),
        o.opt("intValue", int)?.map(any_value::Value::IntValue),
        o.opt("doubleValue", double)?.map(any_value::Value::DoubleValue),
        o.opt("arrayValue", |v, p| array_value(v, p, nested))?.map(any_value::Value::ArrayValue),
        o.opt("kvlistValue", |v, p| kvlist_value(v, p, nested))?.map(any_value::Value::KvlistValue),
        o.opt("bytesValue", base64)?.map(any_value::Value::BytesValue),
        o.opt("stringValueStrindex", int)?.map(any_value::Value::StringValueStrindex),
    ];
    Ok(AnyValue { value: o.one_of("value", members)? })
}

/// `ArrayValue`; `{}` is an empty array.
fn array_value(value: &Value, path: &Path<'_>, depth: usize) -> Result<ArrayValue, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ArrayValue { values: o.list("values", |v, p| any_value(v, p, depth))? })
}

/// `KeyValueList`; `{}` is an empty list.
fn kvlist_value(value: &Value, path: &Path<'_>, depth: usize) -> Result<KeyValueList, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(KeyValueList { values: o.list("values", |v, p| key_value_at(v, p, depth))? })
}

// ---- traces ----

/// `ExportTraceServiceRequest`.
fn trace_request(value: &Value, path: &Path<'_>) -> Result<ExportTraceServiceRequest, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ExportTraceServiceRequest { resource_spans: o.list("resourceSpans", resource_spans)? })
}

/// `ResourceSpans`.
fn resource_spans(value: &Value, path: &Path<'_>) -> Result<ResourceSpans, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ResourceSpans {
        resource: o.opt("resource", resource)?,
        scope_spans: o.list("scopeSpans", scope_spans)?,
        schema_url: o.get("schemaUrl", string)?,
    })
}

/// `ScopeSpans`.
fn scope_spans(value: &Value, path: &Path<'_>) -> Result<ScopeSpans, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ScopeSpans {
        scope: o.opt("scope", scope)?,
        spans: o.list("spans", span)?,
        schema_url: o.get("schemaUrl", string)?,
    })
}

/// `Span`.
fn span(value: &Value, path: &Path<'_>) -> Result<Span, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(Span {
        trace_id: o.get("traceId", id)?,
        span_id: o.get("spanId", id)?,
        trace_state: o.get("traceState", string)?,
        parent_span_id: o.get("parentSpanId", id)?,
        flags: o.get("flags", int)?,
        name: o.get("name", string)?,
        kind: o.get("kind", |v, p| enumeration(v, p, SpanKind::from_str_name))?,
        start_time_unix_nano: o.get("startTimeUnixNano", int)?,
        end_time_unix_nano: o.get("endTimeUnixNano", int)?,
        attributes: o.list("attributes", key_value)?,
        dropped_attributes_count: o.get("droppedAttributesCount", int)?,
        events: o.list("events", event)?,
        dropped_events_count: o.get("droppedEventsCount", int)?,
        links: o.list("links", link)?,
        dropped_links_count: o.get("droppedLinksCount", int)?,
        status: o.opt("status", status)?,
    })
}

/// `Span.Event`.
fn event(value: &Value, path: &Path<'_>) -> Result<Event, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(Event {
        time_unix_nano: o.get("timeUnixNano", int)?,
        name: o.get("name", string)?,
        attributes: o.list("attributes", key_value)?,
        dropped_attributes_count: o.get("droppedAttributesCount", int)?,
    })
}

/// `Span.Link`.
fn link(value: &Value, path: &Path<'_>) -> Result<Link, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(Link {
        trace_id: o.get("traceId", id)?,
        span_id: o.get("spanId", id)?,
        trace_state: o.get("traceState", string)?,
        attributes: o.list("attributes", key_value)?,
        dropped_attributes_count: o.get("droppedAttributesCount", int)?,
        flags: o.get("flags", int)?,
    })
}

/// `Status`.
fn status(value: &Value, path: &Path<'_>) -> Result<Status, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(Status {
        message: o.get("message", string)?,
        code: o.get("code", |v, p| enumeration(v, p, StatusCode::from_str_name))?,
    })
}

// ---- logs ----

/// `ExportLogsServiceRequest`.
fn logs_request(value: &Value, path: &Path<'_>) -> Result<ExportLogsServiceRequest, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ExportLogsServiceRequest { resource_logs: o.list("resourceLogs", resource_logs)? })
}

/// `ResourceLogs`.
fn resource_logs(value: &Value, path: &Path<'_>) -> Result<ResourceLogs, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ResourceLogs {
        resource: o.opt("resource", resource)?,
        scope_logs: o.list("scopeLogs", scope_logs)?,
        schema_url: o.get("schemaUrl", string)?,
    })
}

/// `ScopeLogs`.
fn scope_logs(value: &Value, path: &Path<'_>) -> Result<ScopeLogs, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ScopeLogs {
        scope: o.opt("scope", scope)?,
        log_records: o.list("logRecords", log_record)?,
        schema_url: o.get("schemaUrl", string)?,
    })
}

/// `LogRecord`.
fn log_record(value: &Value, path: &Path<'_>) -> Result<LogRecord, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(LogRecord {
        time_unix_nano: o.get("timeUnixNano", int)?,
        observed_time_unix_nano: o.get("observedTimeUnixNano", int)?,
        severity_number: o.get("severityNumber", |v, p| enumeration(v, p, SeverityNumber::from_str_name))?,
        severity_text: o.get("severityText", string)?,
        body: o.opt("body", |v, p| any_value(v, p, 1))?,
        attributes: o.list("attributes", key_value)?,
        dropped_attributes_count: o.get("droppedAttributesCount", int)?,
        flags: o.get("flags", int)?,
        trace_id: o.get("traceId", id)?,
        span_id: o.get("spanId", id)?,
        event_name: o.get("eventName", string)?,
    })
}
