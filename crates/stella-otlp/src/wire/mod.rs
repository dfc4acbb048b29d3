//! Counting items in an encoded export request without decoding it: a walk over the protobuf wire
//! format that only follows the length-delimited fields leading to spans, data points or log records
//! and skips everything else. Lets a consumer pass stored bytes straight to an exporter that sends
//! bytes (concatenated `Export*ServiceRequest` encodings are themselves a valid merged request).
//!
//! ```text
//! traces   ExportTraceServiceRequest.resource_spans(1) > ResourceSpans.scope_spans(2) > ScopeSpans.spans(2)
//! logs     ExportLogsServiceRequest.resource_logs(1) > ResourceLogs.scope_logs(2) > ScopeLogs.log_records(2)
//! metrics  ExportMetricsServiceRequest.resource_metrics(1) > ResourceMetrics.scope_metrics(2)
//!          > ScopeMetrics.metrics(2) > Metric.{gauge 5, sum 7, histogram 9, exponential_histogram 10,
//!          summary 11} > *.data_points(1)
//! ```
//!
//! [`decoded_size`] walks the whole message tree by the OTLP schema (which fields hold messages) to bound
//! what decoding will allocate before anything is decoded: a few bytes on the wire can become hundreds of
//! bytes in memory (an empty `LogRecord` is 2 bytes encoded and a ~200-byte struct decoded), so receivers
//! charge this, not the body size, to their memory budget.
use crate::Signal;

pub mod view;

/// The bytes are not a well-formed protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf at byte {offset}: {reason}")]
pub struct WireError {
    /// Where, counted from the start of the message being walked.
    pub offset: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// Spans, data points or log records in an encoded `Export*ServiceRequest` of `signal`.
pub fn count_items(signal: Signal, bytes: &[u8]) -> Result<usize, WireError> {
    let path: &[&[u32]] = match signal {
        Signal::Traces | Signal::Logs => &[&[1], &[2], &[2]],
        Signal::Metrics => &[&[1], &[2], &[2], &[5, 7, 9, 10, 11], &[1]],
    };
    count(bytes, path)
}

/// Counts the length-delimited fields reached by following `path` (one set of field numbers per level).
fn count(bytes: &[u8], path: &[&[u32]]) -> Result<usize, WireError> {
    let Some((wanted, rest)) = path.split_first() else { return Ok(1) };
    let mut total = 0;
    for field in view::fields(bytes) {
        let field = field?;
        if let view::WireValue::Bytes(inner) = field.value
            && wanted.contains(&field.number)
        {
            total += count(inner, rest).map_err(|error| within(&field, inner, error))?;
        }
    }
    Ok(total)
}

/// An error found in the bytes `inner` of `field`, its offset counted from the start of the message
/// holding the field.
fn within(field: &view::Field<'_>, inner: &[u8], error: WireError) -> WireError {
    WireError { offset: field.span.1 - inner.len() + error.offset, ..error }
}

/// The messages of the OTLP schema that hold other messages, as far as [`decoded_size`] needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TraceRequest,
    LogsRequest,
    MetricsRequest,
    ResourceSpans,
    ResourceLogs,
    ResourceMetrics,
    Resource,
    Scope,
    ScopeSpans,
    ScopeLogs,
    ScopeMetrics,
    Span,
    SpanEvent,
    SpanLink,
    LogRecord,
    Metric,
    /// Gauge, Sum, Histogram, ExponentialHistogram, Summary: field 1 holds their data points.
    Points(PointKind),
    NumberPoint,
    HistogramPoint,
    ExponentialPoint,
    Buckets,
    SummaryPoint,
    Exemplar,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    /// Status, ValueAtQuantile, EntityRef, ...: no message inside that matters.
    Leaf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PointKind {
    Number,
    Histogram,
    Exponential,
    Summary,
}

impl Kind {
    /// The message kind of field `field` of this message, `None` for strings, bytes and packed scalars.
    fn child(self, field: u32) -> Option<Kind> {
        use Kind::*;
        Some(match (self, field) {
            (TraceRequest, 1) => ResourceSpans,
            (LogsRequest, 1) => ResourceLogs,
            (MetricsRequest, 1) => ResourceMetrics,
            (ResourceSpans | ResourceLogs | ResourceMetrics, 1) => Resource,
            (ResourceSpans, 2) => ScopeSpans,
            (ResourceLogs, 2) => ScopeLogs,
            (ResourceMetrics, 2) => ScopeMetrics,
            (Resource, 1) | (Scope, 3) => KeyValue,
            (Resource, 3) => Leaf,
            (ScopeSpans | ScopeLogs | ScopeMetrics, 1) => Scope,
            (ScopeSpans, 2) => Span,
            (ScopeLogs, 2) => LogRecord,
            (ScopeMetrics, 2) => Metric,
            (Span, 9) | (SpanEvent, 3) | (SpanLink, 5) | (LogRecord, 6) | (Metric, 12) => KeyValue,
            (Span, 11) => SpanEvent,
            (Span, 13) => SpanLink,
            (Span, 15) => Leaf,
            (LogRecord, 5) => AnyValue,
            (Metric, 5 | 7) => Points(PointKind::Number),
            (Metric, 9) => Points(PointKind::Histogram),
            (Metric, 10) => Points(PointKind::Exponential),
            (Metric, 11) => Points(PointKind::Summary),
            (Points(PointKind::Number), 1) => NumberPoint,
            (Points(PointKind::Histogram), 1) => HistogramPoint,
            (Points(PointKind::Exponential), 1) => ExponentialPoint,
            (Points(PointKind::Summary), 1) => SummaryPoint,
            (NumberPoint, 7) | (HistogramPoint, 9) | (ExponentialPoint, 1) | (SummaryPoint, 7) | (Exemplar, 7) => {
                KeyValue
            }
            (NumberPoint, 5) | (HistogramPoint, 8) | (ExponentialPoint, 11) => Exemplar,
            (ExponentialPoint, 8 | 9) => Buckets,
            (SummaryPoint, 6) => Leaf,
            (KeyValue, 2) | (ArrayValue, 1) => AnyValue,
            (AnyValue, 5) => ArrayValue,
            (AnyValue, 6) => KeyValueList,
            (KeyValueList, 1) => KeyValue,
            _ => return None,
        })
    }
}

/// What one decoded message costs at most beyond its own bytes: its struct (the largest OTLP structs are a
/// little over 200 bytes) counted twice, for the `Vec` that holds it growing by doubling.
const MESSAGE_BYTES: usize = 2 * 256;
/// A packed repeated varint may become 8 bytes per wire byte (`bucket_counts` of exponential histograms).
const PACKED_VARINT_EXPANSION: usize = 8;
/// Nesting deeper than this is refused (prost refuses past 100 as well).
const MAX_DEPTH: usize = 100;

/// An upper bound of the bytes decoding `bytes` (an encoded `Export*ServiceRequest` of `signal`) allocates:
/// a fixed cost per message found by walking the OTLP schema, twice the string and bytes fields (decoded
/// copies, and the re-encoding for the ingest log), and packed varints at their widest.
pub fn decoded_size(signal: Signal, bytes: &[u8]) -> Result<usize, WireError> {
    let root = match signal {
        Signal::Traces => Kind::TraceRequest,
        Signal::Logs => Kind::LogsRequest,
        Signal::Metrics => Kind::MetricsRequest,
    };
    size_of_message(bytes, root, 0)
}

fn size_of_message(bytes: &[u8], kind: Kind, depth: usize) -> Result<usize, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError { offset: 0, reason: "messages nested too deep" });
    }
    let mut total = MESSAGE_BYTES;
    for field in view::fields(bytes) {
        let field = field?;
        let view::WireValue::Bytes(inner) = field.value else { continue };
        total += match kind.child(field.number) {
            Some(Kind::Leaf) => MESSAGE_BYTES + 2 * inner.len(),
            Some(child) => size_of_message(inner, child, depth + 1).map_err(|error| within(&field, inner, error))?,
            None if kind == Kind::Buckets => PACKED_VARINT_EXPANSION * inner.len(),
            None => 2 * inner.len(),
        };
    }
    Ok(total)
}

/// An upper bound of the bytes decoding an OTLP/JSON body allocates: a message's cost per object or array
/// it opens, and twice its text.
pub fn json_decoded_size(bytes: &[u8]) -> usize {
    let opened = bytes.iter().filter(|byte| matches!(byte, b'{' | b'[')).count();
    opened * MESSAGE_BYTES + 2 * bytes.len()
}

fn varint(bytes: &[u8], offset: usize) -> Result<(u64, usize), WireError> {
    let mut value = 0u64;
    for index in 0..10 {
        let Some(byte) = bytes.get(offset + index) else {
            return Err(WireError { offset, reason: "truncated varint" });
        };
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok((value, index + 1));
        }
    }
    Err(WireError { offset, reason: "varint longer than 10 bytes" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OtlpRequest;
    use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
    use crate::proto::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    };

    #[test]
    fn counts_match_the_decoded_request_for_every_signal() {
        let examples = [
            (Signal::Traces, include_str!("../../tests/data/otlp-spec-trace.json")),
            (Signal::Metrics, include_str!("../../tests/data/otlp-spec-metrics.json")),
            (Signal::Logs, include_str!("../../tests/data/otlp-spec-logs.json")),
        ];
        for (signal, json) in examples {
            let request = crate::json::decode(signal, json.as_bytes()).unwrap();
            let bytes = request.encode_protobuf();
            assert_eq!(count_items(signal, &bytes), Ok(request.item_count()), "{signal}");
            let mut twice = bytes.clone();
            twice.extend_from_slice(&bytes);
            assert_eq!(count_items(signal, &twice), Ok(2 * request.item_count()), "{signal}: concatenation merges");
        }
    }

    #[test]
    fn metric_kinds_each_count_their_data_points() {
        let metric = |data| Metric { name: "m".into(), data: Some(data), ..Default::default() };
        let metrics = vec![
            metric(metric::Data::Gauge(Gauge { data_points: vec![NumberDataPoint::default(); 3] })),
            metric(metric::Data::Sum(Sum { data_points: vec![NumberDataPoint::default(); 2], ..Default::default() })),
            metric(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint::default()],
                ..Default::default()
            })),
        ];
        let request = OtlpRequest::Metrics(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
                ..Default::default()
            }],
        });
        assert_eq!(count_items(Signal::Metrics, &request.encode_protobuf()), Ok(6));
    }

    #[test]
    fn the_decoded_size_bounds_what_decoding_allocates_and_catches_tiny_messages() {
        use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
        use crate::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        for (signal, json) in [
            (Signal::Traces, include_str!("../../tests/data/otlp-spec-trace.json")),
            (Signal::Metrics, include_str!("../../tests/data/otlp-spec-metrics.json")),
            (Signal::Logs, include_str!("../../tests/data/otlp-spec-logs.json")),
        ] {
            let bytes = crate::json::decode(signal, json.as_bytes()).unwrap().encode_protobuf();
            let size = decoded_size(signal, &bytes).unwrap();
            assert!(size > bytes.len() && size < 100 * bytes.len(), "{signal}: {size} for {} bytes", bytes.len());
        }
        let empty_records = OtlpRequest::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs { log_records: vec![LogRecord::default(); 10_000], ..Default::default() }],
                ..Default::default()
            }],
        })
        .encode_protobuf();
        let size = decoded_size(Signal::Logs, &empty_records).unwrap();
        assert!(empty_records.len() < 25_000, "two bytes a record on the wire");
        assert!(size >= 10_000 * std::mem::size_of::<LogRecord>(), "{size}: at least a struct per record");
        assert!(json_decoded_size(b"{\"resourceLogs\":[{}]}") >= 3 * MESSAGE_BYTES);
    }

    #[test]
    fn malformed_bytes_are_an_error_not_a_panic() {
        assert!(count_items(Signal::Traces, &[0x0a, 0x05, 0x12]).is_err());
        assert!(count_items(Signal::Traces, &[0x0b]).is_err());
        assert!(count_items(Signal::Traces, &[0xff; 12]).is_err());
        assert_eq!(count_items(Signal::Logs, &[]), Ok(0));
    }
}
