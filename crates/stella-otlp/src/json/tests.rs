//! Tests of the OTLP/JSON codec: the specification's examples, every known silent-loss case of
//! naive mappings, full-field round trips, and error paths.

use serde_json::{Value, json};

use super::{JsonError, decode, encode};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::proto::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value};
use crate::proto::logs::v1::LogRecord;
use crate::proto::metrics::v1::{NumberDataPoint, metric, number_data_point};
use crate::proto::trace::v1::Span;
use crate::{OtlpRequest, Signal};

const SPEC_TRACE: &str = include_str!("../../tests/data/otlp-spec-trace.json");
const SPEC_METRICS: &str = include_str!("../../tests/data/otlp-spec-metrics.json");
const SPEC_LOGS: &str = include_str!("../../tests/data/otlp-spec-logs.json");

// ---- helpers ----

/// Decodes `body`, asserts that encoding and decoding again gives the same request, returns it.
fn round_trip(signal: Signal, body: &str) -> OtlpRequest {
    let first = decode(signal, body.as_bytes()).unwrap_or_else(|error| panic!("decode: {error}"));
    let again = decode(signal, &encode(&first)).unwrap_or_else(|error| panic!("re-decode: {error}"));
    assert_eq!(first, again, "encode + decode changed the request");
    first
}

/// Decodes `body` and returns the error.
fn error(signal: Signal, body: &str) -> JsonError {
    match decode(signal, body.as_bytes()) {
        Ok(request) => panic!("expected an error, decoded {request:?}"),
        Err(error) => error,
    }
}

fn traces(request: &OtlpRequest) -> &ExportTraceServiceRequest {
    match request {
        OtlpRequest::Traces(traces) => traces,
        other => panic!("not traces: {other:?}"),
    }
}

fn metrics(request: &OtlpRequest) -> &ExportMetricsServiceRequest {
    match request {
        OtlpRequest::Metrics(metrics) => metrics,
        other => panic!("not metrics: {other:?}"),
    }
}

/// A traces body holding one span.
fn span_body(span: &str) -> String {
    format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}"#)
}

/// The first span of a traces request.
fn first_span(request: &OtlpRequest) -> &Span {
    &traces(request).resource_spans[0].scope_spans[0].spans[0]
}

/// A traces body holding one span with one attribute `a` of the given AnyValue JSON.
fn attribute_body(any_value: &str) -> String {
    span_body(&format!(r#"{{"name":"s","attributes":[{{"key":"a","value":{any_value}}}]}}"#))
}

/// The value of the first attribute of the first span.
fn first_attribute(request: &OtlpRequest) -> Option<&any_value::Value> {
    first_span(request).attributes[0].value.as_ref().and_then(|value| value.value.as_ref())
}

/// A metrics body holding one gauge with one data point.
fn gauge_body(point: &str) -> String {
    format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[{point}]}}}}]}}]}}]}}"#
    )
}

/// The first data point of the first gauge.
fn first_gauge_point(request: &OtlpRequest) -> &NumberDataPoint {
    let metric = &metrics(request).resource_metrics[0].scope_metrics[0].metrics[0];
    match &metric.data {
        Some(metric::Data::Gauge(gauge)) => &gauge.data_points[0],
        other => panic!("not a gauge: {other:?}"),
    }
}

/// The `asDouble` of the first gauge point.
fn as_double(request: &OtlpRequest) -> f64 {
    match first_gauge_point(request).value {
        Some(number_data_point::Value::AsDouble(float)) => float,
        other => panic!("not asDouble: {other:?}"),
    }
}

/// Decodes a gauge point, checks its `asDouble` and that it survives encode + decode (NaN too).
fn assert_double_survives(point: &str, check: impl Fn(f64) -> bool, encoded_as: &str) {
    let body = gauge_body(point);
    let decoded = decode(Signal::Metrics, body.as_bytes()).expect("decode");
    assert!(check(as_double(&decoded)), "decoded {}", as_double(&decoded));
    let encoded = String::from_utf8(encode(&decoded)).expect("utf-8");
    assert!(encoded.contains(encoded_as), "{encoded}");
    let again = decode(Signal::Metrics, encoded.as_bytes()).expect("re-decode");
    assert!(check(as_double(&again)), "re-decoded {}", as_double(&again));
}

fn string_value(text: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(text.to_string())) })
}

// ---- 1. the specification's examples ----

#[test]
fn spec_trace_example_round_trips() {
    let request = round_trip(Signal::Traces, SPEC_TRACE);
    let resource_spans = &traces(&request).resource_spans;
    assert_eq!(resource_spans.len(), 1);
    let resource = resource_spans[0].resource.as_ref().expect("resource");
    assert_eq!(resource.attributes[0].key, "service.name");
    assert_eq!(resource.attributes[0].value, string_value("my.service"));
    let scope = resource_spans[0].scope_spans[0].scope.as_ref().expect("scope");
    assert_eq!((scope.name.as_str(), scope.version.as_str()), ("my.library", "1.0.0"));
    let span = first_span(&request);
    assert_eq!(span.trace_id, hex::decode("5b8efff798038103d269b633813fc60c").expect("hex"));
    assert_eq!(span.span_id, hex::decode("eee19b7ec3c1b174").expect("hex"));
    assert_eq!(span.parent_span_id, hex::decode("eee19b7ec3c1b173").expect("hex"));
    assert_eq!(span.name, "I'm a server span");
    assert_eq!(span.kind, 2);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(span.attributes[0].value, string_value("some value"));

    let encoded = String::from_utf8(encode(&request)).expect("utf-8");
    assert!(encoded.contains(r#""traceId":"5b8efff798038103d269b633813fc60c""#), "{encoded}");
    assert!(encoded.contains(r#""startTimeUnixNano":"1544712660000000000""#), "{encoded}");
    assert!(!encoded.contains('\n'));
}

#[test]
fn spec_metrics_example_round_trips() {
    let request = round_trip(Signal::Metrics, SPEC_METRICS);
    let metrics = &metrics(&request).resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics.len(), 3);
    let Some(metric::Data::Sum(sum)) = &metrics[0].data else { panic!("not a sum") };
    assert_eq!(metrics[0].name, "my.counter");
    assert_eq!((sum.aggregation_temporality, sum.is_monotonic), (1, true));
    assert_eq!(sum.data_points[0].value, Some(number_data_point::Value::AsDouble(5.0)));
    assert_eq!(sum.data_points[0].start_time_unix_nano, 1_544_712_660_300_000_000);
    let Some(metric::Data::Gauge(gauge)) = &metrics[1].data else { panic!("not a gauge") };
    assert_eq!(gauge.data_points[0].value, Some(number_data_point::Value::AsDouble(10.0)));
    let Some(metric::Data::Histogram(histogram)) = &metrics[2].data else { panic!("not a histogram") };
    let point = &histogram.data_points[0];
    assert_eq!((point.count, point.sum, point.min, point.max), (2, Some(2.0), Some(0.0), Some(2.0)));
    assert_eq!(point.bucket_counts, vec![1, 1]);
    assert_eq!(point.explicit_bounds, vec![1.0]);
    assert_eq!(point.attributes[0].key, "my.histogram.attr");
}

#[test]
fn spec_logs_example_round_trips() {
    let request = round_trip(Signal::Logs, SPEC_LOGS);
    let OtlpRequest::Logs(logs) = &request else { panic!("not logs") };
    let records: &[LogRecord] = &logs.resource_logs[0].scope_logs[0].log_records;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.trace_id, hex::decode("5b8efff798038103d269b633813fc60c").expect("hex"));
    assert_eq!(record.span_id, hex::decode("eee19b7ec3c1b174").expect("hex"));
    assert_eq!(record.severity_text, "Information");
    assert_eq!(record.body, string_value("Example log record"));
    assert_eq!(record.attributes.len(), 6);
    let value = |index: usize| record.attributes[index].value.clone().and_then(|value| value.value);
    assert_eq!(value(1), Some(any_value::Value::BoolValue(true)));
    assert_eq!(value(2), Some(any_value::Value::IntValue(10)));
    assert_eq!(value(3), Some(any_value::Value::DoubleValue(637.704)));
    let Some(any_value::Value::ArrayValue(array)) = value(4) else { panic!("not an array") };
    assert_eq!(array.values, vec![string_value("many").expect("value"), string_value("values").expect("value")]);
    let Some(any_value::Value::KvlistValue(map)) = value(5) else { panic!("not a kvlist") };
    assert_eq!(map.values[0].key, "some.map.key");
}

// ---- 2. silent-loss cases ----

#[test]
fn nan_double_survives() {
    assert_double_survives(r#"{"asDouble":"NaN"}"#, f64::is_nan, r#""asDouble":"NaN""#);
}

#[test]
fn infinity_double_survives() {
    let check = |float: f64| float == f64::INFINITY;
    assert_double_survives(r#"{"asDouble":"Infinity"}"#, check, r#""asDouble":"Infinity""#);
}

#[test]
fn negative_infinity_double_survives() {
    let check = |float: f64| float == f64::NEG_INFINITY;
    assert_double_survives(r#"{"asDouble":"-Infinity"}"#, check, r#""asDouble":"-Infinity""#);
}

#[test]
fn string_double_survives() {
    assert_double_survives(r#"{"asDouble":"2.5"}"#, |float| float == 2.5, r#""asDouble":2.5"#);
}

#[test]
fn string_flags_on_span_survive() {
    let request = round_trip(Signal::Traces, &span_body(r#"{"name":"s","flags":"1"}"#));
    assert_eq!(first_span(&request).flags, 1);
}

#[test]
fn empty_array_value_survives() {
    let request = round_trip(Signal::Traces, &attribute_body(r#"{"arrayValue":{}}"#));
    let empty = any_value::Value::ArrayValue(ArrayValue { values: vec![] });
    assert_eq!(first_attribute(&request), Some(&empty));
}

#[test]
fn empty_kvlist_value_survives() {
    let request = round_trip(Signal::Traces, &attribute_body(r#"{"kvlistValue":{}}"#));
    let empty = any_value::Value::KvlistValue(KeyValueList { values: vec![] });
    assert_eq!(first_attribute(&request), Some(&empty));
}

#[test]
fn int_value_beyond_f64_precision_is_exact() {
    let request = round_trip(Signal::Traces, &attribute_body(r#"{"intValue":"9007199254740993"}"#));
    assert_eq!(first_attribute(&request), Some(&any_value::Value::IntValue(9_007_199_254_740_993)));
    let encoded = String::from_utf8(encode(&request)).expect("utf-8");
    assert!(encoded.contains(r#""intValue":"9007199254740993""#), "{encoded}");
}

#[test]
fn snake_case_field_names_are_accepted() {
    let body = r#"{"resource_spans":[{"schema_url":"https://s","scope_spans":[{"spans":[{
        "trace_id":"0102","span_id":"03","parent_span_id":"04","start_time_unix_nano":"7",
        "dropped_attributes_count":3,"attributes":[{"key":"k","value":{"kvlist_value":{"values":[
        {"key":"n","value":{"int_value":5}}]}}}]}]}]}]}"#;
    let request = round_trip(Signal::Traces, body);
    assert_eq!(traces(&request).resource_spans[0].schema_url, "https://s");
    let span = first_span(&request);
    assert_eq!((span.trace_id.as_slice(), span.span_id.as_slice()), (&[1u8, 2][..], &[3u8][..]));
    assert_eq!(span.parent_span_id, vec![4]);
    assert_eq!((span.start_time_unix_nano, span.dropped_attributes_count), (7, 3));
    let inner = KeyValue {
        key: "n".to_string(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(5)) }),
        key_strindex: 0,
    };
    let expected = any_value::Value::KvlistValue(KeyValueList { values: vec![inner] });
    assert_eq!(first_attribute(&request), Some(&expected));

    let metrics_body = gauge_body(r#"{"as_int":"-4","time_unix_nano":9}"#)
        .replace("resourceMetrics", "resource_metrics")
        .replace("dataPoints", "data_points");
    let request = round_trip(Signal::Metrics, &metrics_body);
    let point = first_gauge_point(&request);
    assert_eq!((point.value, point.time_unix_nano), (Some(number_data_point::Value::AsInt(-4)), 9));
}

#[test]
fn enum_names_are_accepted() {
    let span = r#"{"kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR"}}"#;
    let request = round_trip(Signal::Traces, &span_body(span));
    assert_eq!(first_span(&request).kind, 2);
    assert_eq!(first_span(&request).status.as_ref().map(|status| status.code), Some(2));

    let logs = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SEVERITY_NUMBER_INFO"}]}]}]}"#;
    let OtlpRequest::Logs(logs) = round_trip(Signal::Logs, logs) else { panic!("not logs") };
    assert_eq!(logs.resource_logs[0].scope_logs[0].log_records[0].severity_number, 9);

    let sum = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":
        {"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE"}}]}]}]}"#;
    let request = round_trip(Signal::Metrics, sum);
    let data = &metrics(&request).resource_metrics[0].scope_metrics[0].metrics[0].data;
    let Some(metric::Data::Sum(sum)) = data else { panic!("not a sum") };
    assert_eq!(sum.aggregation_temporality, 2);
}

// ---- 3. errors ----

#[test]
fn invalid_syntax_is_reported_at_the_root() {
    let error = error(Signal::Traces, r#"{"resourceSpans": [}"#);
    assert_eq!(error.path, "$");
    assert!(error.reason.contains("line 1 column"), "{error}");
}

#[test]
fn bad_hex_is_reported_with_its_path() {
    let error = error(Signal::Traces, &span_body(r#"{"traceId":"zz"}"#));
    assert_eq!(error.path, "resourceSpans[0].scopeSpans[0].spans[0].traceId");
    assert_eq!(error.reason, "invalid hex (character 'z' at position 0)");
    let odd = error_of_span(r#"{"spanId":"abc"}"#);
    assert_eq!(
        odd.to_string(),
        "resourceSpans[0].scopeSpans[0].spans[0].spanId: invalid hex (odd number of digits: 3)"
    );
}

fn error_of_span(span: &str) -> JsonError {
    error(Signal::Traces, &span_body(span))
}

#[test]
fn wrong_type_is_reported_with_its_path() {
    let error = error_of_span(r#"{"name":5}"#);
    assert_eq!(error.to_string(), "resourceSpans[0].scopeSpans[0].spans[0].name: expected a string, found number");
    let not_object = super::decode(Signal::Logs, b"[]").expect_err("array body");
    assert_eq!(not_object.to_string(), "$: expected an object, found array");
}

#[test]
fn bad_integers_are_refused() {
    let fraction = error_of_span(r#"{"flags":1.5}"#);
    assert_eq!(fraction.path, "resourceSpans[0].scopeSpans[0].spans[0].flags");
    assert_eq!(fraction.reason, "expected an integer, found 1.5");
    let too_big = error_of_span(r#"{"droppedLinksCount":"4294967296"}"#);
    assert_eq!(too_big.reason, "integer 4294967296 is out of range for u32");
    let negative = error_of_span(r#"{"startTimeUnixNano":-1}"#);
    assert_eq!(negative.path, "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano");
    assert_eq!(negative.reason, "integer -1 is out of range for u64");
    let text = error_of_span(r#"{"endTimeUnixNano":"soon"}"#);
    assert_eq!(text.reason, r#"invalid integer "soon""#);
}

/// A traces body (as a `Value`, beyond serde_json's parse depth limit) whose first attribute is
/// `levels` AnyValues nested through `arrayValue`.
fn nested_attribute(levels: usize) -> Value {
    let mut value = json!({"stringValue": "bottom"});
    for _ in 1..levels {
        value = json!({"arrayValue": {"values": [value]}});
    }
    let span = json!({"attributes": [{"key": "deep", "value": value}]});
    json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
}

#[test]
fn too_deep_nesting_is_refused() {
    assert!(super::decode::request(Signal::Traces, &nested_attribute(64)).is_ok());
    let error = super::decode::request(Signal::Traces, &nested_attribute(65)).expect_err("too deep");
    let expected_path =
        format!("resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value{}", ".arrayValue.values[0]".repeat(64));
    assert_eq!(error.path, expected_path);
    assert_eq!(error.reason, "AnyValue nested deeper than 64 levels (arrayValue/kvlistValue)");
}

#[test]
fn nesting_beyond_the_parser_limit_is_a_syntax_error() {
    let body = nested_attribute(60).to_string();
    let error = error(Signal::Traces, &body);
    assert_eq!(error.path, "$");
    assert!(error.reason.contains("recursion limit exceeded"), "{error}");
}
