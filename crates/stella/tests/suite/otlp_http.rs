//! OTLP/HTTP end to end: every signal, protobuf and JSON, identity/gzip/zstd bodies, through the real
//! binary into the file exporter; the export holds exactly what was sent.

use crate::common;

use std::io::Write;

use crate::common::{Stella, file_pipelines, traces};
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use stella_otlp::proto::common::v1::AnyValue;
use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use stella_otlp::proto::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use stella_otlp::{OtlpRequest, Signal};

fn metrics(name: &str) -> OtlpRequest {
    let point = NumberDataPoint {
        time_unix_nano: 1_700_000_000_000_000_000,
        value: Some(number_data_point::Value::AsDouble(f64::NAN)),
        attributes: vec![common::string_attribute("case", name)],
        ..Default::default()
    };
    let metric = Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge { data_points: vec![point] })),
        ..Default::default()
    };
    OtlpRequest::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics { metrics: vec![metric], ..Default::default() }],
            ..Default::default()
        }],
    })
}

fn logs(body: &str) -> OtlpRequest {
    let record = LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        severity_number: 9,
        body: Some(AnyValue {
            value: Some(stella_otlp::proto::common::v1::any_value::Value::StringValue(body.into())),
        }),
        flags: 1,
        ..Default::default()
    };
    OtlpRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records: vec![record], ..Default::default() }],
            ..Default::default()
        }],
    })
}

fn request_of(signal: Signal, case: &str) -> OtlpRequest {
    match signal {
        Signal::Traces => traces(case, 3),
        Signal::Metrics => metrics(case),
        Signal::Logs => logs(case),
    }
}

fn encode_body(request: &OtlpRequest, json: bool, encoding: &str) -> Vec<u8> {
    let raw = if json { stella_otlp::json::encode(request) } else { request.encode_protobuf() };
    match encoding {
        "gzip" => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&raw).unwrap();
            encoder.finish().unwrap()
        }
        "zstd" => zstd::bulk::compress(&raw, 3).unwrap(),
        _ => raw,
    }
}

/// Every resource group of `requests`, protobuf-encoded, in order: consumers may merge consecutive
/// requests into one export line, so the groups (not the lines) must match what was sent. Comparing
/// encodings treats the NaN gauge the metrics case sends as equal to itself.
fn resource_groups(requests: &[&OtlpRequest]) -> Vec<Vec<u8>> {
    let mut groups = Vec::new();
    for request in requests {
        match request {
            OtlpRequest::Traces(r) => groups.extend(r.resource_spans.iter().map(prost::Message::encode_to_vec)),
            OtlpRequest::Metrics(r) => groups.extend(r.resource_metrics.iter().map(prost::Message::encode_to_vec)),
            OtlpRequest::Logs(r) => groups.extend(r.resource_logs.iter().map(prost::Message::encode_to_vec)),
        }
    }
    groups
}

#[tokio::test(flavor = "multi_thread")]
async fn every_signal_format_and_encoding_lands_in_the_export_unchanged() {
    let mut stella = Stella::start(&file_pipelines(""));
    let client = reqwest::Client::new();
    let mut sent: Vec<OtlpRequest> = Vec::new();
    for signal in Signal::ALL {
        for json in [false, true] {
            for encoding in ["identity", "gzip", "zstd"] {
                let case = format!("{signal}-{}-{encoding}", if json { "json" } else { "protobuf" });
                let request = request_of(signal, &case);
                let content_type = if json { "application/json" } else { "application/x-protobuf" };
                let mut call = client
                    .post(stella.url(&format!("/v1/{signal}")))
                    .header("content-type", content_type)
                    .body(encode_body(&request, json, encoding));
                if encoding != "identity" {
                    call = call.header("content-encoding", encoding);
                }
                let response = call.send().await.unwrap();
                assert_eq!(response.status(), 200, "{case}: {:?}", response.text().await);
                assert_eq!(
                    response.headers()["content-type"],
                    content_type,
                    "{case}: the answer is encoded like the request"
                );
                let body = response.bytes().await.unwrap();
                if json {
                    assert_eq!(&body[..], b"{}", "{case}");
                } else {
                    assert!(body.is_empty(), "{case}: a full success has no partial_success");
                }
                sent.push(request);
            }
        }
    }
    assert!(stella.terminate().success());
    for signal in Signal::ALL {
        let exported = stella.exported(signal);
        let expected: Vec<&OtlpRequest> = sent.iter().filter(|request| request.signal() == signal).collect();
        let exported_groups = resource_groups(&exported.iter().collect::<Vec<_>>());
        assert_eq!(
            exported_groups,
            resource_groups(&expected),
            "{signal}: the export holds exactly what was sent, in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_request_succeeds_and_writes_nothing() {
    let mut stella = Stella::start(&file_pipelines(""));
    let client = reqwest::Client::new();
    for (content_type, body) in [("application/x-protobuf", Vec::new()), ("application/json", b"{}".to_vec())] {
        let response =
            client.post(stella.url("/v1/logs")).header("content-type", content_type).body(body).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(stella.terminate().success());
    assert!(stella.exported(Signal::Logs).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_profile_adds_resource_attributes_and_batches() {
    // Tail sampling keeps every trace here; its 10s decision_wait is cut short by the stop, which decides
    // every buffered trace before the exporters drain.
    let keep_all = "processors:\n  tail_sampling: {policies: [{name: all, type: always_sample}]}\n";
    let mut stella = Stella::start(&format!("environment: staging\n{keep_all}"));
    let client = reqwest::Client::new();
    let request = traces("profile", 2);
    let response = client
        .post(stella.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request.encode_protobuf())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(stella.terminate().success());
    let mut exported = stella.exported(Signal::Traces);
    assert_eq!(exported.len(), 1);
    let resource = exported[0].resources_mut().pop().unwrap().clone();
    let keys: Vec<&str> = resource.attributes.iter().map(|attribute| attribute.key.as_str()).collect();
    for wanted in ["service.name", "deployment.environment.name", "host.name", "os.type", "host.arch"] {
        assert!(keys.contains(&wanted), "{wanted} missing from {keys:?}");
    }
}
