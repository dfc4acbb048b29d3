//! `/metrics` is Prometheus text format 0.0.4 that `promtool check metrics` accepts, with the counters
//! the collector promises; `/healthz` and `/readyz` answer per component.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{Stella, file_pipelines, traces};

fn promtool() -> std::path::PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|dir| dir.join("promtool")).find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("promtool is not installed; run ./scripts/test.sh, which installs Debian's `prometheus` package")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_and_count_what_happened() {
    let mut stella = Stella::start(&format!("processors: {{batch: {{timeout: 50ms}}}}\n{}", file_pipelines("batch")));
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = client
            .post(stella.url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(traces("m", 4).encode_protobuf())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let bad = client
        .post(stella.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff; 3])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Export happens after the acknowledgement (from the ingest log): wait until the consumer delivered.
    let delivered = "collector_export_sent_items_total{exporter=\"file\",signal=\"traces\"} 12";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let response = client.get(stella.api_url("/metrics")).send().await.unwrap();
        assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        let text = response.text().await.unwrap();
        let idle = "collector_exporter_backlog_records{exporter=\"file\",tenant=\"default\"} 0";
        if (text.contains(delivered) && text.contains(idle)) || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    for expected in [
        "collector_receiver_accepted_items_total{receiver=\"otlp\",signal=\"traces\",protocol=\"http_protobuf\"} 12",
        "collector_receiver_requests_total{receiver=\"otlp\",signal=\"traces\",protocol=\"http_protobuf\",status=\"400\"} 1",
        "collector_export_sent_items_total{exporter=\"file\",signal=\"traces\"} 12",
        "collector_receiver_request_size_bytes_count{signal=\"traces\",protocol=\"http_protobuf\"} 4",
        "collector_receiver_inflight_bytes 0",
        "# TYPE collector_export_failures_total counter",
        "stella_build_info{version=\"",
        "collector_exporter_backlog_records{exporter=\"file\",tenant=\"default\"} 0",
        "telemetry_ingest_log_max_bytes 1073741824",
        "telemetry_ingest_log_bytes{log=\"traces\",tenant=\"default\"} ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let health = client.get(stella.api_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = client.get(stella.api_url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["ready"], true);
    let components: Vec<&str> =
        ready["components"].as_array().unwrap().iter().map(|c| c["component"].as_str().unwrap()).collect();
    for component in ["receivers.otlp.grpc", "receivers.otlp.http", "pipelines.traces", "exporters.file"] {
        assert!(components.contains(&component), "{component} missing from {components:?}");
    }
    assert!(stella.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exporter_that_cannot_deliver_shows_its_backlog() {
    let config = "exporters:\n  otlphttp: {endpoint: \"http://127.0.0.1:1\", timeout: 1s}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [otlphttp]}\n    metrics: null\n    logs: null\n";
    let stella = Stella::start(config);
    for _ in 0..3 {
        assert_eq!(stella.post(&traces("b", 2)).await.0, 200);
    }
    let expected = "collector_exporter_backlog_records{exporter=\"otlphttp\",tenant=\"default\"} 3";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = reqwest::get(stella.api_url("/metrics")).await.unwrap().text().await.unwrap();
        if text.contains(expected) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "missing {expected:?} in\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stella.signal("KILL");
}
