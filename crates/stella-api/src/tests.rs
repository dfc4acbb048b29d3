//! The API router driven with `oneshot`, no API socket: a real collector (receivers on ephemeral ports)
//! behind it.
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use stella_collector::config::Profile;
use stella_collector::topology::Environment;
use stella_collector::{Collector, ConfigSource};
use stella_metrics::Registry;
use stella_pipeline::resource_detection::HostFacts;
use tower::ServiceExt;

use super::{ApiState, register_build_info, router};

const CONFIG: &str = "receivers:\n  otlp:\n    protocols:\n      grpc: {endpoint: 127.0.0.1:0}\n      http: {endpoint: 127.0.0.1:0}\nexporters: {nop: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [nop]}\n    metrics: null\n    logs: null\n";

async fn start() -> (ApiState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stella.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let registry = Registry::default();
    register_build_info(&registry, "1.2.3");
    let context = Environment {
        data_dir: dir.path().to_path_buf(),
        registry: registry.clone(),
        host_facts: Arc::new(HostFacts::default()),
    };
    let source = ConfigSource { profile: Profile::Default, overlay: Some(config) };
    let collector = Collector::start(source, context).await.unwrap();
    (ApiState { collector, registry }, dir)
}

async fn call(state: &ApiState, method: &str, uri: &str) -> (StatusCode, String) {
    let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let (state, _dir) = start().await;
    assert_eq!(call(&state, "GET", "/healthz").await, (StatusCode::OK, r#"{"status":"ok"}"#.to_string()));
    let (status, ready) = call(&state, "GET", "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["components"].as_array().unwrap().len(), 4, "{ready}");
    let (status, metrics) = call(&state, "GET", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("stella_build_info{version=\"1.2.3\"} 1"), "{metrics}");
    state.collector.shutdown(std::time::Duration::from_secs(5)).await;
    let (status, _) = call(&state, "GET", "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "not ready once shutdown began");
}

#[tokio::test]
async fn an_invalid_reload_lists_every_error_and_keeps_the_config() {
    let (state, dir) = start().await;
    std::fs::write(dir.path().join("stella.yaml"), "exporters: {nop: {x: 1}}\nprocessors: {batch: {timeout: soon}}\n")
        .unwrap();
    let (status, body) = call(&state, "POST", "/telemetry/config/reload").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "config.invalid");
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(state.collector.config().pipelines.len(), 1);
    let (status, body) = call(&state, "GET", "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("api.not_found"));
}
