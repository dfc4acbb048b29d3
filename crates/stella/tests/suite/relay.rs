//! OTLP exporters between two real `stella` processes: a sender with `otlphttp` and `otlp` exporters and a
//! target that is down for a while; the sender's ingest log keeps everything (also across its own
//! restart) and delivers it once the target is back. Plus: the log cap answers 503 + Retry-After, and
//! `max_backlog` drops and counts the oldest data instead.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{Stella, file_pipelines, span_names, traces};
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, any_value};
use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use stella_otlp::{OtlpRequest, Signal};

fn logs(body: &str) -> OtlpRequest {
    let record = LogRecord {
        body: Some(AnyValue { value: Some(any_value::Value::StringValue(body.into())) }),
        ..Default::default()
    };
    OtlpRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records: vec![record], ..Default::default() }],
            ..Default::default()
        }],
    })
}

fn log_bodies(requests: &[OtlpRequest]) -> Vec<String> {
    let mut bodies = Vec::new();
    for request in requests {
        let OtlpRequest::Logs(logs) = request else { continue };
        for record in logs.resource_logs.iter().flat_map(|r| &r.scope_logs).flat_map(|s| &s.log_records) {
            if let Some(any_value::Value::StringValue(text)) = record.body.as_ref().and_then(|body| body.value.as_ref())
            {
                bodies.push(text.clone());
            }
        }
    }
    bodies
}

fn sender_config(target: &Stella) -> String {
    format!(
        "exporters:\n  otlphttp: {{endpoint: \"http://127.0.0.1:{}\", timeout: 2s}}\n  otlp: {{endpoint: \"http://127.0.0.1:{}\", timeout: 2s}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [otlphttp]}}\n    logs: {{receivers: [otlp], processors: [], exporters: [otlp]}}\n    metrics: null\n",
        target.http, target.grpc
    )
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_arrives_once_the_target_is_back_even_across_a_sender_restart() {
    let mut target = Stella::prepare(&common::Extra::default(), &file_pipelines(""));
    let mut sender = Stella::start(&sender_config(&target));
    for index in 0..5 {
        assert_eq!(sender.post(&traces(&format!("before-{index}"), 2)).await.0, 200);
        assert_eq!(sender.post(&logs(&format!("log-before-{index}"))).await.0, 200);
    }
    assert!(sender.terminate().success(), "the sender stops promptly while its target is down:\n{}", sender.log());
    sender.spawn();
    for index in 0..5 {
        assert_eq!(sender.post(&traces(&format!("after-{index}"), 2)).await.0, 200);
        assert_eq!(sender.post(&logs(&format!("log-after-{index}"))).await.0, 200);
    }
    target.spawn();
    let logs_of_both = || format!("sender:\n{}\ntarget:\n{}", sender.log(), target.log());
    wait_for("all spans at the target", || span_names(&target.exported(Signal::Traces)).len() == 20, logs_of_both)
        .await;
    wait_for("all logs at the target", || log_bodies(&target.exported(Signal::Logs)).len() == 10, logs_of_both).await;
    assert!(sender.terminate().success());
    assert!(target.terminate().success());
    let mut names = span_names(&target.exported(Signal::Traces));
    names.sort();
    let mut expected: Vec<String> = ["before", "after"]
        .iter()
        .flat_map(|phase| (0..5).flat_map(move |i| (0..2).map(move |s| format!("{phase}-{i}-{s}"))))
        .collect();
    expected.sort();
    assert_eq!(names, expected, "every span once");
    let mut bodies = log_bodies(&target.exported(Signal::Logs));
    bodies.sort();
    assert_eq!(bodies.len(), 10);
    assert!(sender.log().contains("export failed; retrying"), "the sender retried while the target was down");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_log_answers_503_with_retry_after_and_max_backlog_drops_the_oldest_instead() {
    let closed_port = common::free_port();
    let exporter = |extra: &str| {
        // Two segments of log at most; with max_backlog, one segment of backlog (the log keeps room).
        let max_bytes = if extra.is_empty() { 8192 } else { 32768 };
        format!(
            "storage: {{log: {{segment_bytes: 4096, max_bytes: {max_bytes}}}}}\nexporters:\n  otlphttp: {{endpoint: \"http://127.0.0.1:{closed_port}\", timeout: 1s{extra}}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [otlphttp]}}\n"
        )
    };
    let mut full = Stella::start(&exporter(""));
    let mut refused = None;
    for index in 0..40 {
        let (status, retry_after) = full.post(&traces(&format!("fill-{index}"), 5)).await;
        if status != 200 {
            refused = Some((status, retry_after));
            break;
        }
    }
    assert_eq!(refused, Some((503, Some("1".to_string()))), "a full log refuses with 503 + Retry-After");
    assert!(full.terminate().success());

    let mut capped = Stella::start(&exporter(", max_backlog: 4096"));
    for index in 0..40 {
        assert_eq!(
            capped.post(&traces(&format!("capped-{index}"), 5)).await.0,
            200,
            "max_backlog keeps the log from filling"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sample = "collector_export_failures_total{exporter=\"otlphttp\",reason=\"backlog_overflow\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    while capped.metric(sample).await.unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "no backlog_overflow counted:\n{}", capped.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(capped.terminate().success());
}

/// Two exporters on one pipeline: a fast `file` and an `otlphttp` whose target is down. The log keeps
/// every segment the slow one still needs, however far the fast one gets (each exporter has its own
/// position), so everything arrives once the target is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_fast_exporter_never_frees_segments_a_slow_one_still_needs() {
    let mut target = Stella::prepare(&common::Extra::default(), &file_pipelines(""));
    let body = format!(
        "storage: {{log: {{segment_bytes: 4096}}}}\nexporters:\n  file: {{path: \"export/{{signal}}.jsonl\"}}\n  otlphttp: {{endpoint: \"http://127.0.0.1:{}\", timeout: 2s}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [file, otlphttp]}}\n    logs: null\n    metrics: null\n",
        target.http
    );
    let mut sender = Stella::start(&body);
    for index in 0..40 {
        assert_eq!(sender.post(&traces(&format!("pair-{index}"), 2)).await.0, 200);
    }
    wait_for("the fast exporter", || span_names(&sender.exported(Signal::Traces)).len() == 80, || sender.log()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    target.spawn();
    let logs_of_both = || format!("sender:\n{}\ntarget:\n{}", sender.log(), target.log());
    wait_for("every span at the target", || span_names(&target.exported(Signal::Traces)).len() >= 80, logs_of_both)
        .await;
    assert!(sender.terminate().success());
    assert!(target.terminate().success());
    assert_eq!(span_names(&target.exported(Signal::Traces)).len(), 80, "every span once");
}
