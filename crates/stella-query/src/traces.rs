//! Traces: one trace by id, and traces with a span matching a filter.
use std::collections::{HashMap, HashSet};

use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::trace::v1::Span;
use stella_otlp::{OtlpRequest, Signal, attributes};

use crate::{ScanFilter, StoreError, StoreView, scan};

/// A trace id from text: 1 to 32 hex digits, left-padded to 16 bytes (as Tempo accepts them).
pub fn parse_trace_id(text: &str) -> Option<[u8; 16]> {
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{text:0>32}");
    let mut id = [0u8; 16];
    hex::decode_to_slice(padded, &mut id).ok()?;
    Some(id)
}

/// The spans of `trace_id` in `records`, each once (a client re-send is stored twice), grouped as they
/// were sent.
pub fn trace_from_records(records: &[Vec<u8>], trace_id: &[u8; 16]) -> ExportTraceServiceRequest {
    let mut seen = HashSet::new();
    let mut trace = ExportTraceServiceRequest::default();
    for record in records {
        let Ok(OtlpRequest::Traces(request)) = OtlpRequest::decode_protobuf(Signal::Traces, record) else { continue };
        for mut group in request.resource_spans {
            for scope in &mut group.scope_spans {
                scope.spans.retain(|span| {
                    span.trace_id.as_slice() == trace_id.as_slice() && seen.insert(span.span_id.clone())
                });
            }
            group.scope_spans.retain(|scope| !scope.spans.is_empty());
            if !group.scope_spans.is_empty() {
                trace.resource_spans.push(group);
            }
        }
    }
    trace
}

/// The trace `trace_id` of `tenant`, sealed and not yet sealed spans together; `None` when it has no span.
pub fn trace(
    view: &dyn StoreView,
    tenant: &str,
    trace_id: &[u8; 16],
) -> Result<Option<ExportTraceServiceRequest>, StoreError> {
    let records = view.trace_records(tenant, trace_id)?;
    let trace = trace_from_records(&records, trace_id);
    Ok((!trace.resource_spans.is_empty()).then_some(trace))
}

/// Span-level filters of a trace search: a span matches when its service, name, status, duration and
/// attributes all do.
#[derive(Debug, Default, Clone)]
pub struct SpanFilter {
    /// `service.name` of the span's resource.
    pub service: Option<String>,
    /// The span name.
    pub name: Option<String>,
    /// The status code (0 unset, 1 ok, 2 error).
    pub status: Option<i32>,
    /// The least duration, nanoseconds.
    pub min_duration: u64,
    /// Span attributes that must have these values (as text).
    pub attributes: Vec<(String, String)>,
}

impl SpanFilter {
    /// Whether `span` of `service` matches, within `range` (unix nanos).
    pub fn matches(&self, service: &str, span: &Span, (start, end): (u64, u64)) -> bool {
        let attribute = |key: &str| attributes::get(&span.attributes, key).and_then(attributes::scalar_text);
        self.service.as_deref().is_none_or(|wanted| wanted == service)
            && self.name.as_deref().is_none_or(|wanted| wanted == span.name)
            && self.status.is_none_or(|wanted| span.status.as_ref().map_or(0, |status| status.code) == wanted)
            && span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) >= self.min_duration
            && span.end_time_unix_nano >= start
            && span.start_time_unix_nano <= end
            && self.attributes.iter().all(|(key, value)| attribute(key).as_deref() == Some(value.as_str()))
    }
}

/// One trace a search found: its first matching span and how many of its spans matched.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FoundTrace {
    /// Hex trace id.
    #[serde(rename = "traceId")]
    pub trace_id: String,
    /// The service of the first matching span.
    #[serde(rename = "serviceName")]
    pub service: String,
    /// The name of the first matching span.
    #[serde(rename = "spanName")]
    pub name: String,
    /// Its start, unix nanos as text.
    #[serde(rename = "startTimeUnixNano")]
    pub start: String,
    /// Its duration, milliseconds.
    #[serde(rename = "durationMs")]
    pub duration_ms: f64,
    /// Matching spans of the trace.
    #[serde(rename = "matchedSpans")]
    pub spans: u64,
    /// Whether a matching span has status error.
    pub error: bool,
}

/// Traces of `tenant` with a span matching `filter` within `range`, newest data first, at most `limit`
/// (the scan stops once `limit` traces are found and a span of a new one comes).
pub fn search(
    view: &dyn StoreView,
    tenant: &str,
    filter: &SpanFilter,
    range: (u64, u64),
    limit: usize,
) -> Result<Vec<FoundTrace>, StoreError> {
    let mut found: Vec<FoundTrace> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let scan_filter = ScanFilter::from(filter.service.as_deref());
    scan(view, tenant, Signal::Traces, range, scan_filter, &mut |record| {
        let Ok(OtlpRequest::Traces(request)) = OtlpRequest::decode_protobuf(Signal::Traces, record) else {
            return true;
        };
        for group in &request.resource_spans {
            let service = attributes::service_name(group.resource.as_ref()).unwrap_or("unknown_service");
            for span in group.scope_spans.iter().flat_map(|scope| &scope.spans) {
                if !filter.matches(service, span, range) {
                    continue;
                }
                let duration = span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano);
                let error = span.status.as_ref().is_some_and(|status| status.code == 2);
                match index.get(&span.trace_id) {
                    Some(at) => {
                        let trace = &mut found[*at];
                        trace.spans += 1;
                        trace.error |= error;
                    }
                    None if found.len() < limit => {
                        index.insert(span.trace_id.clone(), found.len());
                        found.push(FoundTrace {
                            trace_id: hex::encode(&span.trace_id),
                            service: service.to_string(),
                            name: span.name.clone(),
                            start: span.start_time_unix_nano.to_string(),
                            duration_ms: duration as f64 / 1e6,
                            spans: 1,
                            error,
                        });
                    }
                    None => return false,
                }
            }
        }
        true
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_one_to_32_hex_digits_left_padded() {
        assert_eq!(parse_trace_id("1").map(|id| id[15]), Some(1));
        assert_eq!(parse_trace_id(&"ab".repeat(16)), Some([0xab; 16]));
        assert_eq!(parse_trace_id(""), None);
        assert_eq!(parse_trace_id(&"a".repeat(33)), None);
        assert_eq!(parse_trace_id("xyz"), None);
    }
}
