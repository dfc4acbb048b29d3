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
use crate::Signal;

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
    let Some((fields, rest)) = path.split_first() else { return Ok(1) };
    let mut total = 0;
    let mut offset = 0;
    while offset < bytes.len() {
        let (key, key_len) = varint(bytes, offset)?;
        offset += key_len;
        let field = (key >> 3) as u32;
        match key & 7 {
            0 => offset += varint(bytes, offset)?.1,
            1 => offset += 8,
            5 => offset += 4,
            2 => {
                let (length, length_len) = varint(bytes, offset)?;
                offset += length_len;
                let end = offset.checked_add(length as usize).filter(|end| *end <= bytes.len());
                let Some(end) = end else { return Err(WireError { offset, reason: "length runs past the end" }) };
                if fields.contains(&field) {
                    total += count(&bytes[offset..end], rest)
                        .map_err(|error| WireError { offset: offset + error.offset, ..error })?;
                }
                offset = end;
            }
            _ => return Err(WireError { offset, reason: "unsupported wire type" }),
        }
    }
    if offset > bytes.len() {
        return Err(WireError { offset: bytes.len(), reason: "a field runs past the end" });
    }
    Ok(total)
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
            (Signal::Traces, include_str!("../tests/data/otlp-spec-trace.json")),
            (Signal::Metrics, include_str!("../tests/data/otlp-spec-metrics.json")),
            (Signal::Logs, include_str!("../tests/data/otlp-spec-logs.json")),
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
    fn malformed_bytes_are_an_error_not_a_panic() {
        assert!(count_items(Signal::Traces, &[0x0a, 0x05, 0x12]).is_err());
        assert!(count_items(Signal::Traces, &[0x0b]).is_err());
        assert!(count_items(Signal::Traces, &[0xff; 12]).is_err());
        assert_eq!(count_items(Signal::Logs, &[]), Ok(0));
    }
}
