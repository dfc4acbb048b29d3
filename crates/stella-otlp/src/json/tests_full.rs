//! Round trips of requests with every field set (so no field is forgotten by either direction),
//! exact encodings, responses, and the lenient inputs the decoder accepts.

use serde_json::{Value, json};

use super::{decode, encode, encode_response};
use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::proto::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use crate::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use crate::proto::metrics::v1::exponential_histogram_data_point::Buckets;
use crate::proto::metrics::v1::summary_data_point::ValueAtQuantile;
use crate::proto::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, exemplar, metric,
    number_data_point,
};
use crate::proto::resource::v1::Resource;
use crate::proto::trace::v1::span::{Event, Link};
use crate::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use crate::{OtlpRequest, Signal};

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), key_strindex: 0 }
}

/// One attribute of every AnyValue kind, default-valued members included.
fn all_kinds() -> Vec<KeyValue> {
    use any_value::Value as V;
    let nested = V::KvlistValue(KeyValueList { values: vec![kv("inner", V::BoolValue(false))] });
    vec![
        kv("s", V::StringValue(String::new())),
        kv("b", V::BoolValue(true)),
        kv("i", V::IntValue(i64::MIN)),
        kv("zero", V::IntValue(0)),
        kv("d", V::DoubleValue(-0.25)),
        kv("a", V::ArrayValue(ArrayValue { values: vec![AnyValue { value: Some(nested) }] })),
        kv("e", V::ArrayValue(ArrayValue::default())),
        kv("bytes", V::BytesValue(vec![0, 255, 62, 63])),
        KeyValue { key: "none".to_string(), value: Some(AnyValue { value: None }), key_strindex: 0 },
        KeyValue { key: "absent".to_string(), value: None, key_strindex: 0 },
    ]
}

fn resource() -> Option<Resource> {
    let entity = EntityRef {
        schema_url: "https://entity".to_string(),
        r#type: "service".to_string(),
        id_keys: vec!["service.name".to_string()],
        description_keys: vec!["service.version".to_string()],
    };
    Some(Resource { attributes: all_kinds(), dropped_attributes_count: 1, entity_refs: vec![entity] })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "lib".to_string(),
        version: "2".to_string(),
        attributes: all_kinds(),
        dropped_attributes_count: 2,
    })
}

fn assert_round_trip(request: OtlpRequest) {
    let signal = request.signal();
    let encoded = encode(&request);
    let decoded = decode(signal, &encoded).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(decoded, request);
    assert_eq!(encode(&decoded), encoded, "encoding is not deterministic");
    // Keys sorted at every level, compact, numbers as serde_json writes them: re-serializing the parsed
    // output (serde_json's maps sort their keys) gives the same bytes.
    let parsed: serde_json::Value = serde_json::from_slice(&encoded).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(serde_json::to_vec(&parsed).ok(), Some(encoded), "keys out of order or not compact");
}

#[test]
fn every_trace_field_round_trips() {
    let span = Span {
        trace_id: vec![0xab; 16],
        span_id: vec![0xcd; 8],
        trace_state: "k=v".to_string(),
        parent_span_id: vec![0xef; 8],
        flags: 0x301,
        name: "op".to_string(),
        kind: 5,
        start_time_unix_nano: u64::MAX,
        end_time_unix_nano: 1,
        attributes: all_kinds(),
        dropped_attributes_count: 3,
        events: vec![Event {
            time_unix_nano: 4,
            name: "ev".to_string(),
            attributes: all_kinds(),
            dropped_attributes_count: 5,
        }],
        dropped_events_count: 6,
        links: vec![Link {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            trace_state: "a=b".to_string(),
            attributes: all_kinds(),
            dropped_attributes_count: 7,
            flags: 8,
        }],
        dropped_links_count: 9,
        status: Some(Status { message: "bad".to_string(), code: 2 }),
    };
    let scope_spans = ScopeSpans { scope: scope(), spans: vec![span, Span::default()], schema_url: "s".to_string() };
    let resource_spans =
        ResourceSpans { resource: resource(), scope_spans: vec![scope_spans], schema_url: "r".to_string() };
    assert_round_trip(OtlpRequest::Traces(ExportTraceServiceRequest { resource_spans: vec![resource_spans] }));
}

#[test]
fn every_log_field_round_trips() {
    let record = LogRecord {
        time_unix_nano: 1,
        observed_time_unix_nano: 2,
        severity_number: 17,
        severity_text: "ERROR".to_string(),
        body: Some(AnyValue { value: Some(any_value::Value::StringValue("boom".to_string())) }),
        attributes: all_kinds(),
        dropped_attributes_count: 3,
        flags: 1,
        trace_id: vec![9; 16],
        span_id: vec![8; 8],
        event_name: "app.crash".to_string(),
    };
    let scope_logs = ScopeLogs { scope: scope(), log_records: vec![record], schema_url: "s".to_string() };
    let resource_logs =
        ResourceLogs { resource: resource(), scope_logs: vec![scope_logs], schema_url: "r".to_string() };
    assert_round_trip(OtlpRequest::Logs(ExportLogsServiceRequest { resource_logs: vec![resource_logs] }));
}

fn exemplars() -> Vec<Exemplar> {
    let exemplar = |value| Exemplar {
        filtered_attributes: all_kinds(),
        time_unix_nano: 11,
        span_id: vec![3; 8],
        trace_id: vec![4; 16],
        value: Some(value),
    };
    vec![exemplar(exemplar::Value::AsDouble(0.0)), exemplar(exemplar::Value::AsInt(-12))]
}

fn number_point(value: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes: all_kinds(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        exemplars: exemplars(),
        flags: 1,
        value: Some(value),
    }
}

fn metric_with(data: metric::Data) -> Metric {
    Metric {
        name: "m".to_string(),
        description: "d".to_string(),
        unit: "ms".to_string(),
        metadata: all_kinds(),
        data: Some(data),
    }
}

fn all_metrics() -> Vec<Metric> {
    let histogram_point = HistogramDataPoint {
        attributes: all_kinds(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        count: 3,
        sum: Some(0.0),
        bucket_counts: vec![1, 0, u64::MAX],
        explicit_bounds: vec![-1.5, 0.0],
        exemplars: exemplars(),
        flags: 1,
        min: Some(-1.0),
        max: None,
    };
    let exponential_point = ExponentialHistogramDataPoint {
        attributes: all_kinds(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        count: 3,
        sum: None,
        scale: -3,
        zero_count: 4,
        positive: Some(Buckets { offset: -2, bucket_counts: vec![5, 6] }),
        negative: Some(Buckets::default()),
        flags: 0,
        exemplars: exemplars(),
        min: Some(0.5),
        max: Some(9.5),
        zero_threshold: 1e-9,
    };
    let summary_point = SummaryDataPoint {
        attributes: all_kinds(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        count: 3,
        sum: 4.5,
        quantile_values: vec![
            ValueAtQuantile { quantile: 0.0, value: 1.0 },
            ValueAtQuantile { quantile: 1.0, value: f64::INFINITY },
        ],
        flags: 1,
    };
    vec![
        metric_with(metric::Data::Gauge(Gauge { data_points: vec![number_point(number_data_point::Value::AsInt(0))] })),
        metric_with(metric::Data::Sum(Sum {
            data_points: vec![number_point(number_data_point::Value::AsDouble(f64::NEG_INFINITY))],
            aggregation_temporality: 1,
            is_monotonic: true,
        })),
        metric_with(metric::Data::Histogram(Histogram {
            data_points: vec![histogram_point],
            aggregation_temporality: 2,
        })),
        metric_with(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![exponential_point],
            aggregation_temporality: 1,
        })),
        metric_with(metric::Data::Summary(Summary { data_points: vec![summary_point] })),
        metric_with(metric::Data::Gauge(Gauge::default())),
        Metric::default(),
    ]
}

#[test]
fn every_metric_field_round_trips() {
    let scope_metrics = ScopeMetrics { scope: scope(), metrics: all_metrics(), schema_url: "s".to_string() };
    let resource_metrics =
        ResourceMetrics { resource: resource(), scope_metrics: vec![scope_metrics], schema_url: "r".to_string() };
    assert_round_trip(OtlpRequest::Metrics(ExportMetricsServiceRequest { resource_metrics: vec![resource_metrics] }));
}

#[test]
fn encoding_is_exact_and_compact() {
    let span = Span {
        trace_id: vec![0xAB; 2],
        name: "n".to_string(),
        start_time_unix_nano: 5,
        flags: 1,
        attributes: vec![
            kv("x", any_value::Value::DoubleValue(f64::NAN)),
            kv("y", any_value::Value::ArrayValue(ArrayValue::default())),
        ],
        ..Span::default()
    };
    let scope_spans = ScopeSpans { spans: vec![span], ..ScopeSpans::default() };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans { scope_spans: vec![scope_spans], ..ResourceSpans::default() }],
    };
    let encoded = String::from_utf8(encode(&OtlpRequest::Traces(request))).expect("utf-8");
    assert_eq!(
        encoded,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"x","value":{"doubleValue":"NaN"}},{"key":"y","value":{"arrayValue":{}}}],"flags":1,"name":"n","startTimeUnixNano":"5","traceId":"abab"}]}]}]}"#
    );
}

#[test]
fn responses_follow_the_partial_success_shape() {
    assert_eq!(encode_response(Signal::Traces, 0, ""), b"{}");
    let spans: Value = serde_json::from_slice(&encode_response(Signal::Traces, 3, "bad ids")).expect("json");
    assert_eq!(spans, json!({"partialSuccess": {"rejectedSpans": "3", "errorMessage": "bad ids"}}));
    let points: Value = serde_json::from_slice(&encode_response(Signal::Metrics, 2, "")).expect("json");
    assert_eq!(points, json!({"partialSuccess": {"rejectedDataPoints": "2", "errorMessage": ""}}));
    let logs: Value = serde_json::from_slice(&encode_response(Signal::Logs, 0, "warning")).expect("json");
    assert_eq!(logs, json!({"partialSuccess": {"rejectedLogRecords": "0", "errorMessage": "warning"}}));
}

/// The first attribute value of a span in a traces body.
fn attribute(value: &str) -> Result<Option<any_value::Value>, super::JsonError> {
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"attributes":[{{"key":"k","value":{value}}}]}}]}}]}}]}}"#
    );
    let OtlpRequest::Traces(request) = decode(Signal::Traces, body.as_bytes())? else { panic!("not traces") };
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    Ok(span.attributes[0].value.clone().and_then(|value| value.value))
}

#[test]
fn lenient_inputs_are_accepted() {
    let bytes = Some(any_value::Value::BytesValue(vec![0xfb, 0xff]));
    assert_eq!(attribute(r#"{"bytesValue":"+/8="}"#).expect("standard"), bytes);
    assert_eq!(attribute(r#"{"bytesValue":"-_8"}"#).expect("url-safe unpadded"), bytes);
    assert_eq!(attribute(r#"{}"#).expect("empty"), None);
    assert_eq!(
        attribute(r#"{"stringValue":null,"intValue":1,"unknown":[]}"#).expect("null"),
        Some(any_value::Value::IntValue(1))
    );
    assert_eq!(attribute(r#"{"doubleValue":3}"#).expect("integer double"), Some(any_value::Value::DoubleValue(3.0)));
    assert_eq!(attribute(r#"{"intValue":1e3}"#).expect("integral float"), Some(any_value::Value::IntValue(1000)));
    let body = r#"{"resourceSpans":[{"resource":null,"scopeSpans":[{"spans":[{"traceId":"","spanId":"ABCDEF","name":null}]}]}],"extra":1}"#;
    let OtlpRequest::Traces(request) = decode(Signal::Traces, body.as_bytes()).expect("decode") else {
        panic!("not traces")
    };
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        (span.trace_id.as_slice(), span.span_id.as_slice(), span.name.as_str()),
        (&[][..], &[0xab, 0xcd, 0xef][..], "")
    );
}

#[test]
fn conflicting_oneof_members_are_refused() {
    let error = attribute(r#"{"stringValue":"a","boolValue":true}"#).expect_err("two members");
    assert_eq!(error.path, "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value");
    assert_eq!(error.reason, "more than one field of the oneof `value` is set");
    let error = attribute(r#"{"bytesValue":"***"}"#).expect_err("bad base64");
    assert!(error.reason.starts_with("invalid base64"), "{error}");
    let error = attribute(r#"{"doubleValue":"fast"}"#).expect_err("bad double");
    assert_eq!(error.reason, r#"invalid number "fast""#);
}
