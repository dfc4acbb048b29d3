use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use stella_otlp::proto::logs::v1::LogRecord;
use stella_otlp::proto::logs::v1::{ResourceLogs, ScopeLogs};
use stella_otlp::proto::resource::v1::Resource;

use super::*;

fn text(value: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) })
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: text(value), ..Default::default() }
}

/// The stream labels of the default exporter config.
fn config() -> StreamLabels {
    let config: LokiConfig =
        match serde_json::from_value(serde_json::json!({"endpoint": "http://127.0.0.1:3100/loki/api/v1/push"})) {
            Ok(config) => config,
            Err(error) => panic!("{error}"),
        };
    StreamLabels { stream_attributes: config.stream_attributes, severity_label: config.severity_label }
}

fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    attribute("service.name", "cart"),
                    attribute("deployment.environment", "prod"),
                    attribute("host.name", "node-1"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    }
}

#[test]
fn records_group_into_streams_by_resource_labels_and_severity_with_the_rest_as_metadata() {
    let records = vec![
        LogRecord {
            time_unix_nano: 30,
            severity_number: 17,
            body: text("payment declined"),
            attributes: vec![attribute("order.id", "7")],
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            ..Default::default()
        },
        LogRecord { time_unix_nano: 10, severity_number: 9, body: text("placed"), ..Default::default() },
        LogRecord { observed_time_unix_nano: 20, severity_number: 18, body: text("again"), ..Default::default() },
    ];
    let streams = streams(&request(records), &config(), 999);
    let labels: Vec<String> = streams.keys().map(|labels| label_string(labels)).collect();
    assert_eq!(
        labels,
        vec![
            r#"{deployment_environment="prod", service_name="cart", severity="error"}"#,
            r#"{deployment_environment="prod", service_name="cart", severity="info"}"#,
        ]
    );
    let errors = &streams.values().next().map(Vec::as_slice).unwrap_or_default();
    let times: Vec<u64> = errors.iter().map(|entry| entry.at).collect();
    assert_eq!(times, vec![20, 30], "time order, observed time when there is no time");
    assert_eq!(
        errors[1].metadata,
        vec![
            ("host_name".to_string(), "node-1".to_string()),
            ("order_id".into(), "7".into()),
            ("span_id".into(), "cd".repeat(8)),
            ("trace_id".into(), "ab".repeat(16)),
        ]
    );
}

#[test]
fn label_values_are_go_quoted_and_bodies_that_are_not_strings_are_json() {
    let labels = vec![("service_name".to_string(), "a \"quoted\"\\path\nnext\u{1}".to_string())];
    assert_eq!(label_string(&labels), r#"{service_name="a \"quoted\"\\path\nnext\x01"}"#);
    let map = AnyValue {
        value: Some(any_value::Value::KvlistValue(stella_otlp::proto::common::v1::KeyValueList {
            values: vec![
                attribute("user", "ann"),
                KeyValue {
                    key: "n".into(),
                    value: Some(AnyValue { value: Some(any_value::Value::IntValue(3)) }),
                    ..Default::default()
                },
            ],
        })),
    };
    assert_eq!(stella_otlp::loki::line(Some(&map)), r#"{"n":3,"user":"ann"}"#);
    assert_eq!(stella_otlp::loki::line(None), "");
}

#[test]
fn severity_comes_from_the_number_then_the_text_and_a_record_with_neither_time_gets_now() {
    let records = vec![
        LogRecord { severity_text: "Notice".into(), ..Default::default() },
        LogRecord { severity_number: 3, ..Default::default() },
        LogRecord::default(),
    ];
    let streams = streams(&request(records), &config(), 999);
    let severities: Vec<&str> = streams
        .keys()
        .filter_map(|labels| labels.iter().find(|(name, _)| name == "severity").map(|(_, value)| value.as_str()))
        .collect();
    assert_eq!(severities, vec!["notice", "trace", "unknown"]);
    assert!(streams.values().flatten().all(|entry| entry.at == 999));
}
