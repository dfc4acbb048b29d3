//! The `default` profile's redaction, end to end: secrets and personal data sent in every signal (the
//! shared bench payloads' kinds: an e-mail, a bearer JWT and a Luhn-valid card number in attributes,
//! bodies and an exception event) appear nowhere on disk (ingest log, export files) nor in stella's
//! log, while the service identity survives.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Stella, string_attribute};
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use stella_otlp::proto::metrics::v1::{Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use stella_otlp::{OtlpRequest, Signal};

const EMAIL: &str = "jane.doe42@example.com";
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTAwMDA0MiJ9.c2lnbmF0dXJlLWJ5dGVz";
const CARD: &str = "4242424242424242";
const SESSION: &str = "c2Vzc2lvbi1zZWNyZXQ";
const KEEP_ALL_TRACES: &str =
    "processors:\n  tail_sampling: {decision_wait: 200ms, policies: [{name: all, type: always_sample}]}\n";

fn resource() -> Resource {
    Resource {
        attributes: vec![
            string_attribute("service.name", "checkout"),
            string_attribute("service.namespace", "shop"),
            string_attribute("service.instance.id", "checkout-7d9f8c"),
            string_attribute("deployment.environment.name", "production"),
            string_attribute("host.name", "ip-10-0-1-7.ec2.internal"),
        ],
        ..Default::default()
    }
}

fn secrets_in_traces() -> OtlpRequest {
    let span = Span {
        trace_id: vec![7; 16],
        span_id: vec![9; 8],
        name: "POST /checkout".into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_100_000_000,
        attributes: vec![
            string_attribute("http.request.method", "POST"),
            string_attribute("http.route", "/checkout"),
            string_attribute("user.email", EMAIL),
            string_attribute("http.request.header.authorization", &format!("Bearer {JWT}")),
            string_attribute("payment.card_number", CARD),
            string_attribute("url.full", &format!("https://shop.example.com/checkout?session={SESSION}")),
        ],
        events: vec![span::Event {
            name: "exception".into(),
            attributes: vec![
                string_attribute("exception.type", "PaymentGatewayError"),
                string_attribute("exception.message", &format!("card {CARD} declined for {EMAIL}")),
            ],
            ..Default::default()
        }],
        status: Some(Status { code: 2, message: format!("declined for {EMAIL}") }),
        ..Default::default()
    };
    OtlpRequest::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource()),
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }],
    })
}

fn secrets_in_logs() -> OtlpRequest {
    let record = LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(format!(
                "payment failed for {EMAIL}: card {CARD} declined, auth Bearer {JWT}"
            ))),
        }),
        attributes: vec![string_attribute("user.email", EMAIL), string_attribute("log.iostream", "stdout")],
        ..Default::default()
    };
    OtlpRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource()),
            scope_logs: vec![ScopeLogs { log_records: vec![record], ..Default::default() }],
            ..Default::default()
        }],
    })
}

fn secrets_in_metrics() -> OtlpRequest {
    let point = NumberDataPoint {
        time_unix_nano: 1_700_000_000_000_000_000,
        attributes: vec![
            string_attribute("http.route", &format!("/users/{EMAIL}")),
            KeyValue {
                key: "user.email".into(),
                value: Some(AnyValue { value: Some(any_value::Value::StringValue(EMAIL.into())) }),
                ..Default::default()
            },
        ],
        value: Some(stella_otlp::proto::metrics::v1::number_data_point::Value::AsInt(1)),
        ..Default::default()
    };
    OtlpRequest::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "http.server.active_requests".into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points: vec![point] })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

/// Every file under `dir`, as bytes, with its path.
fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap_or_default()));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_profile_keeps_secrets_off_disk_out_of_exports_and_out_of_logs() {
    // The default profile's own pipelines (resourcedetection, redaction with the built-in `default` policy,
    // tail sampling for traces, batch -> file); tail sampling keeps everything, quickly, for this test.
    let stella = Stella::start(KEEP_ALL_TRACES);
    for request in [secrets_in_traces(), secrets_in_logs(), secrets_in_metrics()] {
        assert_eq!(stella.post(&request).await.0, 200, "{:?} accepted", request.signal());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while [Signal::Traces, Signal::Logs, Signal::Metrics].iter().any(|signal| stella.exported(*signal).is_empty()) {
        assert!(Instant::now() < deadline, "exports did not appear");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut on_disk = Vec::new();
    files(&stella.data_dir(), &mut on_disk);
    on_disk.push(("stella's log".into(), stella.log().into_bytes()));
    for secret in [EMAIL, JWT, CARD, SESSION] {
        for (path, bytes) in &on_disk {
            assert!(!contains(bytes, secret), "{secret} reached {path}");
        }
    }

    let traces = std::fs::read_to_string(stella.data_dir().join("export/traces.jsonl")).unwrap();
    for kept in ["checkout", "shop", "checkout-7d9f8c", "production", "\"POST\"", "/checkout", "PaymentGatewayError"] {
        assert!(traces.contains(kept), "{kept} should survive: {traces}");
    }
    for removed in ["user.email", "http.request.header.authorization", "payment.card_number", "url.full"] {
        assert!(!traces.contains(removed), "{removed} is not on the allow-list: {traces}");
    }
    assert!(traces.contains("card **** declined for ****"), "the exception message is masked in place: {traces}");
    assert!(traces.contains("stella.redaction.profile") && traces.contains("default@sha256:"), "{traces}");
    assert!(traces.contains("redaction.redacted.count"), "the info summary counts removed keys: {traces}");
    let logs = std::fs::read_to_string(stella.data_dir().join("export/logs.jsonl")).unwrap();
    assert!(logs.contains("payment failed for ****: card **** declined, auth Bearer ****"), "{logs}");

    let masked_cards =
        stella.metric("telemetry_redactions_total{signal=\"traces\",field=\"span_event\",rule=\"payment_card\"}").await;
    assert_eq!(masked_cards, Some(1.0));
    let removed =
        stella.metric("telemetry_redactions_total{signal=\"traces\",field=\"span\",rule=\"key_not_allowed\"}").await;
    assert_eq!(removed, Some(4.0));
}
