//! Index shards, whole binary: the searches answer the same with and without the day shards, `store
//! check` reports missing shards and `--repair` writes back the very same bytes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Stella, string_attribute, traces};
use stella_otlp::OtlpRequest;
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, any_value};
use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use stella_otlp::proto::metrics::v1::{Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric};
use stella_otlp::proto::resource::v1::Resource;

const CONFIG: &str = "exporters:\n  store: {max_chunk_records: 2, retention: {default: 36500d}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [store]}\n    metrics: {receivers: [otlp], processors: [], exporters: [store]}\n    logs: {receivers: [otlp], processors: [], exporters: [store]}\n";

/// 2023-11-14T22:13:20Z.
const BASE: u64 = 1_700_000_000_000_000_000;

fn resource(service: &str) -> Option<Resource> {
    Some(Resource { attributes: vec![string_attribute("service.name", service)], ..Default::default() })
}

fn log(service: &str, severity: i32, second: u64, body: &str) -> OtlpRequest {
    OtlpRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(service),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: BASE + second * 1_000_000_000,
                    severity_number: severity,
                    body: Some(AnyValue { value: Some(any_value::Value::StringValue(body.into())) }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

fn gauge(name: &str, queue: &str, second: u64) -> OtlpRequest {
    let point = NumberDataPoint {
        attributes: vec![string_attribute("queue", queue)],
        time_unix_nano: BASE + second * 1_000_000_000,
        value: Some(stella_otlp::proto::metrics::v1::number_data_point::Value::AsInt(second as i64)),
        ..Default::default()
    };
    OtlpRequest::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("worker"),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points: vec![point] })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

fn span_of(service: &str, prefix: &str) -> OtlpRequest {
    let mut request = traces(prefix, 1);
    if let OtlpRequest::Traces(traces) = &mut request {
        traces.resource_spans[0].resource = resource(service);
    }
    request
}

/// The index shard files under the store (one per run), by path.
fn shards(store: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![store.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if ["services.bin", "streams.bin", "series.bin"].iter().any(|shard| name.ends_with(shard)) {
                found.insert(path.display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

fn check(data_dir: &Path, repair: bool) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stella"));
    command.args(["telemetry", "store", "check", "--data-dir"]).arg(data_dir);
    if repair {
        command.arg("--repair");
    }
    let output = command.output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

const QUERIES: [&str; 6] = [
    "/telemetry/query/logs?service=checkout&severity_min=ERROR",
    "/telemetry/query/logs?severity_min=WARN",
    "/telemetry/query/logs?service=search&start=1700000002&end=1700000005",
    "/telemetry/query/traces?service=payments",
    "/telemetry/query/traces?service=search",
    "/telemetry/query/metrics?name=queue.depth&label.queue=a",
];

async fn answers(stella: &Stella) -> Vec<serde_json::Value> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for query in QUERIES {
        let response = client.get(stella.api_url(query)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{query}");
        out.push(response.json().await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_answer_the_same_without_shards_and_repair_writes_them_back_identically() {
    let mut stella = Stella::start(CONFIG);
    let mut sent = Vec::new();
    for second in 0..10u64 {
        let service = ["checkout", "search", "payments"][(second % 3) as usize];
        let severity = if second % 2 == 0 { 17 } else { 9 };
        sent.push(log(service, severity, second, &format!("line {second}")));
        sent.push(span_of(service, &format!("shard-{second}")));
        sent.push(gauge(["queue.depth", "cpu.load"][(second / 5) as usize], ["a", "b"][(second % 2) as usize], second));
    }
    for request in &sent {
        assert_eq!(stella.post(request).await.0, 200);
    }
    let store = stella.data_dir().join("store");
    let deadline = Instant::now() + Duration::from_secs(20);
    while shards(&store).len() < 3 || !check(&stella.data_dir(), false).0 {
        assert!(Instant::now() < deadline, "the shards were not written: {}", stella.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let with_shards = answers(&stella).await;
    assert_eq!(with_shards[0]["logs"].as_array().map(Vec::len), Some(2), "{}", with_shards[0]);
    assert_eq!(with_shards[3]["traces"].as_array().map(Vec::len), Some(3), "{}", with_shards[3]);
    assert!(stella.terminate().success());
    let (intact, report) = check(&stella.data_dir(), false);
    assert!(intact && !report.contains("STALE"), "{report}");
    let originals = shards(&store);

    for path in originals.keys() {
        std::fs::remove_file(path).unwrap();
    }
    let (intact, report) = check(&stella.data_dir(), false);
    assert!(!intact, "{report}");
    for name in ["services.bin", "streams.bin", "series.bin"] {
        assert!(report.contains(&format!("{name} (run with --repair to rebuild)")), "{report}");
    }
    stella.spawn();
    assert_eq!(answers(&stella).await, with_shards, "the same answers from every chunk");
    assert!(stella.terminate().success());

    let (repaired, report) = check(&stella.data_dir(), true);
    assert!(repaired && report.contains("(rebuilt)"), "{report}");
    assert_eq!(shards(&store), originals, "the rebuilt shards are the originals");
    let (intact, report) = check(&stella.data_dir(), false);
    assert!(intact && !report.contains("STALE"), "{report}");
}
