//! Config reload through the API, SIGHUP and a change of the config file: stages and exporters change
//! live, listener changes are reported as needing a restart, an invalid config changes nothing.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{Stella, config_with_ports, file_pipelines, read_json_lines, span_names, traces};
use stella_otlp::Signal;

async fn send(stella: &Stella, prefix: &str) {
    let response = reqwest::Client::new()
        .post(stella.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(traces(prefix, 1).encode_protobuf())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn reload(stella: &Stella) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new().post(stella.api_url("/telemetry/config/reload")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn write_config(stella: &Stella, grpc: u16, body: &str) {
    std::fs::write(&stella.config_path, config_with_ports(grpc, stella.http, stella.api, body)).unwrap();
}

fn exported_names(stella: &Stella, file: &str) -> Vec<String> {
    span_names(&read_json_lines(&stella.data_dir().join(file), Signal::Traces))
}

async fn metric_value(stella: &Stella, sample: &str) -> Option<f64> {
    let text = reqwest::get(stella.api_url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines().find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_swaps_exporters_live_and_reports_listener_changes() {
    let mut stella = Stella::start(&file_pipelines(""));
    send(&stella, "before").await;

    let moved = file_pipelines("").replace("export/{signal}.jsonl", "moved/{signal}.jsonl");
    write_config(&stella, stella.grpc, &moved);
    let (status, report) = reload(&stella).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["restart_required"], serde_json::json!([]));
    send(&stella, "after").await;

    write_config(&stella, common::free_port(), &moved);
    let (status, report) = reload(&stella).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["restart_required"], serde_json::json!(["receivers.otlp.protocols.grpc"]));

    write_config(&stella, stella.grpc, "exporters: {file: {path: x, format: yaml}}\n");
    let (status, refused) = reload(&stella).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["code"], "config.invalid");
    assert!(
        refused["errors"][0].as_str().unwrap().starts_with("exporters.file.format: unknown variant `yaml`"),
        "{refused}"
    );
    send(&stella, "still-moved").await;

    assert!(stella.terminate().success());
    assert_eq!(exported_names(&stella, "export/traces.jsonl"), vec!["before-0"]);
    assert_eq!(exported_names(&stella, "moved/traces.jsonl"), vec!["after-0", "still-moved-0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_and_a_changed_config_file_both_reload() {
    let mut stella = Stella::start(&file_pipelines(""));
    let applied = "collector_config_reloads_total{result=\"applied\"}";
    stella.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_value(&stella, applied).await != Some(1.0) {
        assert!(Instant::now() < deadline, "SIGHUP did not reload:\n{}", stella.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let with_debug = file_pipelines("")
        .replace("exporters: [file]", "exporters: [file, debug]")
        .replace("exporters:\n", "exporters:\n  debug: {}\n");
    write_config(&stella, stella.grpc, &with_debug);
    while metric_value(&stella, applied).await != Some(2.0) {
        assert!(Instant::now() < deadline, "the file change did not reload:\n{}", stella.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(&stella, "debugged").await;
    assert!(stella.terminate().success());
    assert!(stella.log().contains("debug exporter batch"), "the reloaded pipeline uses the debug exporter");
}
