//! Item validation: what a receiver refuses and reports as `partial_success` instead of storing.
//!
//! Spec: "The server MAY reject some of the items ... it MUST set `rejected_<signal>` to the number
//! of items it rejected and SHOULD fill `error_message`"
//! (<https://opentelemetry.io/docs/specs/otlp/#partial-success>).
//! Refused here: spans whose trace id is not 16 bytes (or all zero), span id not 8 bytes (or all
//! zero), parent span id neither empty nor 8 bytes; log records whose trace or span id is set with
//! the wrong length.
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::OtlpRequest;

/// Items refused from one request: how many, and a message naming the first problem.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Number of items removed from the request.
    pub count: i64,
    /// Empty when nothing was removed; otherwise the first problem, its place and the total.
    pub message: String,
}

/// Removes the items that must not be accepted and says which.
pub fn remove_invalid(request: &mut OtlpRequest) -> Rejection {
    let mut tally = Tally::default();
    match request {
        OtlpRequest::Traces(traces) => {
            for (r, resource) in traces.resource_spans.iter_mut().enumerate() {
                for (s, scope) in resource.scope_spans.iter_mut().enumerate() {
                    let place = |i| format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}]");
                    retain_valid(&mut scope.spans, span_problem, place, &mut tally);
                }
            }
        }
        OtlpRequest::Logs(logs) => {
            for (r, resource) in logs.resource_logs.iter_mut().enumerate() {
                for (s, scope) in resource.scope_logs.iter_mut().enumerate() {
                    let place = |i| format!("resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]");
                    retain_valid(&mut scope.log_records, log_problem, place, &mut tally);
                }
            }
        }
        OtlpRequest::Metrics(_) => {}
    }
    tally.into_rejection(request.signal().item_name())
}

#[derive(Default)]
struct Tally {
    count: i64,
    first: Option<String>,
}

impl Tally {
    fn into_rejection(self, items: &str) -> Rejection {
        let Some(first) = self.first else {
            return Rejection::default();
        };
        let message = if self.count == 1 {
            format!("rejected 1 of the {items}: {first}")
        } else {
            format!("rejected {} {items}; first: {first}", self.count)
        };
        Rejection { count: self.count, message }
    }
}

fn retain_valid<T>(
    items: &mut Vec<T>,
    problem: fn(&T) -> Option<String>,
    place: impl Fn(usize) -> String,
    tally: &mut Tally,
) {
    let mut index = 0;
    items.retain(|item| {
        let verdict = problem(item);
        if let Some(problem) = verdict.as_ref() {
            tally.count += 1;
            if tally.first.is_none() {
                tally.first = Some(format!("{}: {problem}", place(index)));
            }
        }
        index += 1;
        verdict.is_none()
    });
}

fn span_problem(span: &Span) -> Option<String> {
    id_problem("traceId", &span.trace_id, 16, false)
        .or_else(|| id_problem("spanId", &span.span_id, 8, false))
        .or_else(|| id_problem("parentSpanId", &span.parent_span_id, 8, true))
}

fn log_problem(record: &LogRecord) -> Option<String> {
    id_problem("traceId", &record.trace_id, 16, true).or_else(|| id_problem("spanId", &record.span_id, 8, true))
}

fn id_problem(field: &str, id: &[u8], length: usize, may_be_empty: bool) -> Option<String> {
    if id.is_empty() && may_be_empty {
        return None;
    }
    if id.len() != length {
        return Some(format!("{field} must be {length} bytes ({} hex digits), found {} bytes", length * 2, id.len()));
    }
    if id.iter().all(|&byte| byte == 0) {
        return Some(format!("{field} is all zeros, which OTLP defines as invalid"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
    use crate::proto::trace::v1::{ResourceSpans, ScopeSpans};

    fn span(trace_id: Vec<u8>, span_id: Vec<u8>) -> Span {
        Span { trace_id, span_id, ..Default::default() }
    }

    #[test]
    fn spans_with_wrong_length_ids_are_removed_and_reported() {
        let spans = vec![span(vec![1; 16], vec![2; 8]), span(vec![1; 15], vec![2; 8]), span(vec![1; 16], vec![0; 8])];
        let mut request = OtlpRequest::Traces(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        });
        let rejection = remove_invalid(&mut request);
        assert_eq!(rejection.count, 2);
        assert_eq!(
            rejection.message,
            "rejected 2 spans; first: resourceSpans[0].scopeSpans[0].spans[1]: traceId must be 16 bytes (32 hex digits), found 15 bytes"
        );
        assert_eq!(request.item_count(), 1);
    }

    #[test]
    fn log_records_may_have_no_ids() {
        let mut request = OtlpRequest::Logs(crate::proto::collector::logs::v1::ExportLogsServiceRequest {
            resource_logs: vec![crate::proto::logs::v1::ResourceLogs {
                scope_logs: vec![crate::proto::logs::v1::ScopeLogs {
                    log_records: vec![LogRecord::default(), LogRecord { span_id: vec![1; 3], ..Default::default() }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        });
        let rejection = remove_invalid(&mut request);
        assert_eq!(rejection.count, 1);
        assert!(rejection.message.contains("logRecords[1]: spanId must be 8 bytes"), "{}", rejection.message);
    }
}
