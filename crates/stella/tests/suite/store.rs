//! The embedded store, whole binary: deterministic chunks, `kill -9` during sealing, trace queries.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{Stella, traces};
use prost::Message;
use stella_otlp::OtlpRequest;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;

/// Traces into the store only (no stages, so the stored bytes are exactly what was sent). The harness's
/// spans are from 2023: a long retention keeps them.
fn store_only(max_chunk_records: usize, extra: &str) -> String {
    format!(
        "{extra}exporters:\n  store: {{max_chunk_records: {max_chunk_records}, retention: {{default: 36500d}}}}\nservice:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [], exporters: [store]}}\n    metrics: null\n    logs: null\n"
    )
}

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn trace_id(request: &OtlpRequest) -> String {
    let OtlpRequest::Traces(request) = request else { panic!("not traces") };
    hex::encode(&request.resource_spans[0].scope_spans[0].spans[0].trace_id)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_records_twice_give_identical_chunks_and_manifests() {
    let mut trees = Vec::new();
    for _ in 0..2 {
        let mut stella = Stella::start(&store_only(5, ""));
        for index in 0..23 {
            assert_eq!(stella.post(&traces(&format!("det-{index}"), 3)).await.0, 200);
        }
        let store = stella.data_dir().join("store");
        wait_until("4 sealed chunks", || files(&store).keys().filter(|name| name.ends_with(".chunk")).count() == 4)
            .await;
        assert!(stella.terminate().success());
        trees.push(files(&store));
    }
    let names: Vec<&String> = trees[0].keys().collect();
    assert!(
        names.iter().any(|name| name.ends_with("day.json")) && names.iter().any(|name| name.ends_with("traces.bin")),
        "{names:?}"
    );
    assert_eq!(trees[0], trees[1], "byte-identical chunks, manifests and indexes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_during_sealing_every_acknowledged_trace_is_found_once() {
    let mut stella = Stella::start(&store_only(7, "storage: {sync: always}\n"));
    let mut acknowledged = Vec::new();
    // The kill comes once 30 requests are acknowledged, while the client keeps sending.
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killer = {
        let (pid, acked) = (stella.pid(), std::sync::Arc::clone(&acked));
        std::thread::spawn(move || {
            while acked.load(std::sync::atomic::Ordering::Relaxed) < 30 {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
        })
    };
    let client = reqwest::Client::new();
    for index in 0..10_000 {
        let request = traces(&format!("kill-{index}"), 2);
        let sent = client
            .post(stella.url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(request.encode_protobuf())
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 200 => {
                acknowledged.push(request);
                acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            _ => break,
        }
    }
    killer.join().unwrap();
    stella.wait_exit();
    assert!(acknowledged.len() > 10, "only {} requests before the kill", acknowledged.len());
    stella.spawn();
    let client = reqwest::Client::new();
    for request in &acknowledged {
        let OtlpRequest::Traces(sent) = request else { continue };
        for span in sent.resource_spans[0].scope_spans[0].spans.iter() {
            let url = stella.api_url(&format!("/api/traces/{}", hex::encode(&span.trace_id)));
            let response = client.get(url).header("accept", "application/protobuf").send().await.unwrap();
            assert_eq!(response.status(), 200, "an acknowledged trace is missing after the restart");
            let found = ExportTraceServiceRequest::decode(response.bytes().await.unwrap()).unwrap();
            let spans: usize =
                found.resource_spans.iter().flat_map(|group| &group.scope_spans).map(|scope| scope.spans.len()).sum();
            assert_eq!(spans, 1);
        }
    }
    // Nothing sealed twice: every span is in exactly one stored record.
    assert!(stella.terminate().success());
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_stella"))
            .args(["telemetry", "store", "check", "--data-dir"])
            .arg(stella.data_dir())
            .output()
            .unwrap()
    };
    let intact = check();
    assert!(intact.status.success(), "{}", String::from_utf8_lossy(&intact.stdout));
    let mut seen = std::collections::HashMap::new();
    for (name, bytes) in files(&stella.data_dir().join("store")) {
        if !name.ends_with(".chunk") {
            continue;
        }
        for record in stella_store::chunks::chunk_records(&bytes).unwrap() {
            let request = ExportTraceServiceRequest::decode(record.as_slice()).unwrap();
            for span in
                request.resource_spans.iter().flat_map(|group| &group.scope_spans).flat_map(|scope| &scope.spans)
            {
                *seen.entry((span.trace_id.clone(), span.span_id.clone())).or_insert(0) += 1;
            }
        }
    }
    assert!(seen.values().all(|count| *count == 1), "a span was sealed twice");
    // A flipped byte in a chunk is found.
    let chunk = files(&stella.data_dir().join("store")).into_keys().find(|name| name.ends_with(".chunk")).unwrap();
    let path = stella.data_dir().join("store").join(&chunk);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let damaged = check();
    assert_eq!(damaged.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&damaged.stdout).contains("DAMAGED"),
        "{}",
        String::from_utf8_lossy(&damaged.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_queried_by_id_per_tenant_in_tempo_formats_and_by_the_cli() {
    let mut stella = Stella::start(&store_only(2, ""));
    let requests: Vec<OtlpRequest> = (0..5).map(|index| traces(&format!("query-{index}"), 1)).collect();
    for request in &requests {
        assert_eq!(stella.post(request).await.0, 200);
    }
    // A client re-send: the same spans again; the answer holds them once.
    assert_eq!(stella.post(&requests[0]).await.0, 200);
    let id = trace_id(&requests[0]);
    let url = stella.api_url(&format!("/api/traces/{id}"));
    let client = reqwest::Client::new();
    let mut answer = serde_json::Value::Null;
    for _ in 0..100 {
        let response = client.get(&url).send().await.unwrap();
        if response.status() == 200 {
            answer = response.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spans = answer["batches"][0]["scopeSpans"][0]["spans"].as_array().cloned().unwrap_or_default();
    assert_eq!(spans.len(), 1, "deduplicated: {answer}");
    assert_eq!(spans[0]["name"], "query-0-0");
    let v2: serde_json::Value =
        client.get(stella.api_url(&format!("/api/v2/traces/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(v2["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"], "query-0-0");
    // What Grafana's Tempo data source asks for: v2 in protobuf, Tempo's `TraceByIDResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    struct TraceByIdResponse {
        #[prost(message, optional, tag = "1")]
        trace: Option<stella_otlp::proto::trace::v1::TracesData>,
    }
    let response = client
        .get(stella.api_url(&format!("/api/v2/traces/{id}")))
        .header("accept", "application/protobuf")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/protobuf");
    let decoded = <TraceByIdResponse as prost::Message>::decode(response.bytes().await.unwrap()).unwrap();
    let trace = decoded.trace.expect("the trace field is always set");
    let names: Vec<&str> = trace
        .resource_spans
        .iter()
        .flat_map(|group| &group.scope_spans)
        .flat_map(|scope| &scope.spans)
        .map(|span| span.name.as_str())
        .collect();
    assert_eq!(names, vec!["query-0-0"], "deduplicated in protobuf too");
    assert_eq!(client.get(stella.api_url("/api/echo")).send().await.unwrap().text().await.unwrap(), "echo");
    let missing = client.get(stella.api_url("/api/traces/00000000000000000000000000000abc")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let invalid = client.get(stella.api_url("/api/traces/not-hex")).send().await.unwrap();
    assert_eq!(invalid.status(), 400);
    let other_tenant = client.get(format!("{url}?tenant=globex")).send().await.unwrap();
    assert_eq!(other_tenant.status(), 404, "auth off: another tenant's store is empty");

    // Search: each filter, limits, bad parameters.
    let search = |query: &'static str| {
        let client = client.clone();
        let url = stella.api_url(&format!("/telemetry/query/traces?{query}"));
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let count = |answer: &serde_json::Value| answer["traces"].as_array().map_or(0, Vec::len);
    let (status, all) = search("service=harness").await;
    assert_eq!((status, count(&all)), (200, 5), "{all}");
    assert_eq!(count(&search("service=harness&limit=3").await.1), 3);
    let (_, named) = search("name=query-2-0").await;
    assert_eq!(named["traces"][0]["traceId"].as_str(), Some(trace_id(&requests[2]).as_str()), "{named}");
    assert_eq!(count(&search("status=error").await.1), 0);
    assert_eq!(count(&search("attr.test.prefix=query-4").await.1), 1);
    assert_eq!(count(&search("min_duration=400ms").await.1), 5, "the harness's spans last 500 ms");
    assert_eq!(count(&search("min_duration=1s").await.1), 0);
    assert_eq!(count(&search("start=2099-01-01T00:00:00Z").await.1), 0);
    assert_eq!(search("bogus=1").await.0, 400);
    assert_eq!(search("status=maybe").await.0, 400);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "query", "traces", "--name", "query-2-0", "--server", &stella.api_url("")])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && table.contains(&trace_id(&requests[2])) && table.contains("1 traces"),
        "{table}"
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "query", "trace", &id, "--server", &stella.api_url("")])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success()
            && table.contains("query-0-0")
            && table.contains("harness")
            && table.contains("1 spans"),
        "{table}"
    );
    assert!(stella.terminate().success());
}

/// `traces(prefix, 1)` with its span at `at` (unix seconds).
fn trace_at(prefix: &str, at: u64) -> (OtlpRequest, String) {
    let mut request = traces(prefix, 1);
    if let OtlpRequest::Traces(traces) = &mut request {
        let span = &mut traces.resource_spans[0].scope_spans[0].spans[0];
        span.start_time_unix_nano = at * 1_000_000_000;
        span.end_time_unix_nano = at * 1_000_000_000 + 1_000_000;
    }
    let id = trace_id(&request);
    (request, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_expired_chunks_but_never_held_ones() {
    let config = "exporters:\n  store: {max_chunk_records: 1, retention: {default: 30d}, sweep_interval: 300ms}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [store]}\n    metrics: null\n    logs: null\n";
    let mut stella = Stella::start(config);
    let client = reqwest::Client::new();
    let hold = client
        .post(stella.api_url("/telemetry/holds"))
        .json(
            &serde_json::json!({"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z", "reason": "litigation"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hold.status(), 201);
    let hold: serde_json::Value = hold.json().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (held, held_id) = trace_at("held", 1_577_880_000); // 2020-01-01T12:00Z
    let (expired, expired_id) = trace_at("expired", 1_583_020_800); // 2020-03-01
    let (fresh, fresh_id) = trace_at("fresh", now);
    let (sealer, _) = trace_at("seals-the-last", now + 86_400); // a later day seals the one before
    for request in [&held, &expired, &fresh, &sealer] {
        assert_eq!(stella.post(request).await.0, 200);
    }
    let deleted = "telemetry_retention_deleted_chunks_total{tenant=\"default\",signal=\"traces\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    while stella.metric(deleted).await != Some(1.0) {
        assert!(Instant::now() < deadline, "retention did not run: {}", stella.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = |id: String| {
        let client = client.clone();
        let url = stella.api_url(&format!("/api/traces/{id}"));
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(held_id.clone()).await, 200, "the held chunk stays");
    assert_eq!(status(expired_id).await, 404, "the expired chunk is gone");
    assert_eq!(status(fresh_id).await, 200, "recent data stays");
    let release = client
        .delete(stella.api_url(&format!("/telemetry/holds/{}", hold["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(release.status(), 200);
    while stella.metric(deleted).await != Some(2.0) {
        assert!(Instant::now() < deadline, "retention did not delete the released chunk");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(held_id).await, 404, "released, then deleted");
    assert!(stella.log().contains("retention.deleted"));
    assert!(stella.terminate().success());
    let audit = std::fs::read_to_string(stella.data_dir().join("audit/audit.jsonl")).unwrap();
    assert!(audit.contains("\"action\":\"hold.add\"") && audit.contains("\"action\":\"hold.release\""), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_token_never_sees_another_tenants_traces() {
    let body = format!("auth: {{enabled: true}}\ntenants: [{{id: acme}}, {{id: globex}}]\n{}", store_only(1, ""))
        .replace("logs: null", "logs: {receivers: [otlp], processors: [], exporters: [store]}");
    let mut stella = Stella::prepare(&common::Extra::default(), &body);
    let token = |tenant: &str, scopes: &str| {
        common::tokens(&stella.data_dir(), &["create", "--tenant", tenant, "--scopes", scopes])["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ingest, acme, globex, operator) =
        (token("acme", "ingest"), token("acme", "read"), token("globex", "read"), token("globex", "operator"));
    stella.spawn();
    let request = traces("secret-of-acme", 1);
    let id = trace_id(&request);
    let client = reqwest::Client::new();
    let sent = client
        .post(stella.url("/v1/traces"))
        .bearer_auth(&ingest)
        .header("content-type", "application/x-protobuf")
        .body(request.encode_protobuf())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let get = |path: String, token: &str| {
        let request = client.get(stella.api_url(&path)).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(format!("/api/traces/{id}"), &acme).await != 200 {
        assert!(Instant::now() < deadline, "acme cannot read its own trace");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(format!("/api/traces/{id}"), &globex).await, 404, "globex's own store does not have it");
    assert_eq!(get(format!("/api/v2/traces/{id}"), &globex).await, 404);
    assert_eq!(get(format!("/api/traces/{id}?tenant=acme"), &globex).await, 403, "naming another tenant is refused");
    assert_eq!(get("/telemetry/query/traces?tenant=acme".into(), &globex).await, 403);
    let found: serde_json::Value = client
        .get(stella.api_url("/telemetry/query/traces"))
        .bearer_auth(&globex)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["traces"].as_array().map(Vec::len), Some(0), "a search sees only the token's tenant: {found}");
    // Tempo's search and tag discovery, as Grafana asks them: the same tenancy.
    let tempo = |path: &str, token: &str| {
        let request = client.get(stella.api_url(path)).bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let search = "/api/search?q=%7B%7D&start=1&end=4102444800";
    let (status, acme_found) = tempo(search, &acme).await;
    assert_eq!(status, 200, "{acme_found}");
    assert!(acme_found.contains(&id), "acme finds its trace: {acme_found}");
    let (status, globex_found) = tempo(search, &globex).await;
    assert_eq!((status, globex_found.contains(&id)), (200, false), "{globex_found}");
    assert_eq!(tempo(&format!("{search}&tenant=acme"), &globex).await.0, 403);
    let values = "/api/v2/search/tag/name/values?start=1&end=4102444800";
    assert!(tempo(values, &acme).await.1.contains("secret-of-acme"));
    assert!(!tempo(values, &globex).await.1.contains("secret-of-acme"));
    assert!(tempo("/api/v2/search/tags?scope=resource&start=1&end=4102444800", &acme).await.1.contains("service.name"));
    assert_eq!(tempo(search, &ingest).await.0, 403, "an ingest token cannot search");
    // Loki's query API: the same tenancy.
    let logged = client
        .post(stella.url("/v1/logs"))
        .bearer_auth(&ingest)
        .header("content-type", "application/x-protobuf")
        .body(log_request("secret-svc", "acme only", 9, 1_700_000_000_000_000_000, ("k", "v")).encode_protobuf())
        .send()
        .await
        .unwrap();
    assert_eq!(logged.status(), 200);
    let loki = "/loki/api/v1/query_range?query=%7Bservice_name%3D%22secret-svc%22%7D&start=1&end=4102444800";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tempo(loki, &acme).await.1.contains("acme only") {
        assert!(Instant::now() < deadline, "acme cannot read its own log line");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, globex_lines) = tempo(loki, &globex).await;
    assert_eq!((status, globex_lines.contains("acme only")), (200, false), "{globex_lines}");
    assert_eq!(tempo(&format!("{loki}&tenant=acme"), &globex).await.0, 403);
    assert!(
        !tempo("/loki/api/v1/label/service_name/values?start=1&end=4102444800", &globex).await.1.contains("secret-svc")
    );
    assert_eq!(get(format!("/api/traces/{id}?tenant=acme"), &operator).await, 200, "operators may name any tenant");
    assert_eq!(get(format!("/api/traces/{id}"), &ingest).await, 403, "an ingest token cannot read");
    assert!(stella.terminate().success());
}

fn log_request(service: &str, body: &str, severity: i32, at: u64, attribute: (&str, &str)) -> OtlpRequest {
    use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
    use stella_otlp::proto::common::v1::{AnyValue, any_value};
    use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use stella_otlp::proto::resource::v1::Resource;
    let text = |value: &str| Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) });
    OtlpRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![common::string_attribute("service.name", service)],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: at,
                    severity_number: severity,
                    body: text(body),
                    attributes: vec![common::string_attribute(attribute.0, attribute.1)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_queried_newest_first_by_service_severity_text_and_attribute() {
    let config = "exporters:\n  store: {max_chunk_records: 2, retention: {default: 36500d}}\nservice:\n  pipelines:\n    logs: {receivers: [otlp], processors: [], exporters: [store]}\n    traces: null\n    metrics: null\n";
    let mut stella = Stella::start(config);
    let base = 1_700_000_000_000_000_000u64;
    let sent = [
        log_request("checkout", "payment declined for order 7", 17, base, ("region", "eu")),
        log_request("checkout", "order 8 placed", 9, base + 1_000_000_000, ("region", "us")),
        log_request("search", "query took 900ms", 13, base + 2_000_000_000, ("region", "eu")),
        log_request("checkout", "payment declined for order 9", 17, base + 3_000_000_000, ("region", "us")),
        log_request("checkout", "debug detail", 5, base + 4_000_000_000, ("region", "eu")),
    ];
    for request in &sent {
        assert_eq!(stella.post(request).await.0, 200);
    }
    let client = reqwest::Client::new();
    let query = |query: &'static str| {
        let url = stella.api_url(&format!("/telemetry/query/logs?{query}"));
        let client = client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            let bodies: Vec<String> = answer["logs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|log| log["body"].as_str().unwrap_or_default().to_string())
                .collect();
            (status, bodies)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while query("").await.1.len() < 5 {
        assert!(Instant::now() < deadline, "the logs did not reach the store");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(query("").await.1.first().map(String::as_str), Some("debug detail"), "newest first");
    assert_eq!(
        query("service=checkout&severity_min=ERROR").await.1,
        vec!["payment declined for order 9", "payment declined for order 7"]
    );
    assert_eq!(query("contains=order&attr.region=us").await.1, vec!["payment declined for order 9", "order 8 placed"]);
    assert_eq!(query("severity_min=WARN&service=search").await.1, vec!["query took 900ms"]);
    assert_eq!(query("limit=2").await.1.len(), 2);
    assert_eq!(
        query("start=1700000002&end=1700000003").await.1,
        vec!["payment declined for order 9", "query took 900ms"]
    );
    assert_eq!(query("severity_min=LOUD").await.0, 400);
    // Out of order across two-record chunks: the stream still comes newest first, exactly.
    let times: Vec<u64> = (0..30u64).map(|n| (n * 7) % 30).collect();
    for n in &times {
        let body = format!("shuffled {n:02}");
        let request = log_request("shuffle", &body, 9, base + 10_000_000_000 + n * 1_000_000_000, ("region", "eu"));
        assert_eq!(stella.post(&request).await.0, 200);
    }
    let newest: Vec<String> = (0..30).rev().map(|n| format!("shuffled {n:02}")).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while query("service=shuffle&limit=1000").await.1.len() < 30 {
        assert!(Instant::now() < deadline, "the shuffled logs did not reach the store");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(query("service=shuffle&limit=1000").await.1, newest);
    assert_eq!(query("service=shuffle&limit=7").await.1, newest[..7].to_vec());
    assert_eq!(query("limit=3").await.1, newest[..3].to_vec(), "newer than every earlier log");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "query", "logs", "--service", "search", "--server", &stella.api_url("")])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && table.contains("query took 900ms") && table.contains("1 records"), "{table}");
    assert!(stella.terminate().success());
}

fn gauge_request(queue: &str, at: u64, value: i64) -> OtlpRequest {
    use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
    use stella_otlp::proto::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    use stella_otlp::proto::resource::v1::Resource;
    let point = NumberDataPoint {
        attributes: vec![common::string_attribute("queue", queue)],
        time_unix_nano: at,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    };
    OtlpRequest::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![common::string_attribute("service.name", "worker")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points: vec![point] })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_queried_as_raw_and_step_aligned_series() {
    let config = "exporters:\n  store: {max_chunk_records: 2, retention: {default: 36500d}}\nservice:\n  pipelines:\n    metrics: {receivers: [otlp], processors: [], exporters: [store]}\n    traces: null\n    logs: null\n";
    let mut stella = Stella::start(config);
    let base = 1_700_000_000u64;
    for (queue, offset, value) in [("a", 0, 5), ("b", 0, 50), ("a", 10, 7), ("a", 20, 9), ("b", 20, 40)] {
        assert_eq!(stella.post(&gauge_request(queue, (base + offset) * 1_000_000_000, value)).await.0, 200);
    }
    let client = reqwest::Client::new();
    let get = |query: String| {
        let url = stella.api_url(&format!("/telemetry/query/metrics?{query}"));
        let client = client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut all = serde_json::Value::Null;
    while all["series"].as_array().map_or(0, Vec::len) < 2
        || all["series"][1]["points"].as_array().map_or(0, Vec::len) < 2
    {
        assert!(Instant::now() < deadline, "metrics did not reach the store: {all}");
        all = get("name=queue.depth".into()).await.1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, a) = get(format!("name=queue.depth&label.queue=a&start={base}&end={}&step=5s", base + 20)).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["series"].as_array().map(Vec::len), Some(1), "{a}");
    assert_eq!(a["series"][0]["labels"]["service.name"], "worker");
    let values = |key: &str| {
        a["series"][0][key].as_array().unwrap().iter().map(|point| point[1].as_f64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(values("points"), vec![5.0, 7.0, 9.0]);
    assert_eq!(values("steps"), vec![5.0, 5.0, 7.0, 7.0, 9.0], "the last value at or before each 5s step");
    assert_eq!(get("label.queue=a".into()).await.0, 400, "name is required");
    assert_eq!(get("name=queue.depth&step=5s".into()).await.0, 400, "step needs start and end");
    assert_eq!(get("name=queue.depth&colour=red".into()).await.0, 400);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stella"))
        .args([
            "telemetry",
            "query",
            "metrics",
            "--name",
            "queue.depth",
            "--label",
            "queue=b",
            "--server",
            &stella.api_url(""),
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && table.contains("points=2 last=40") && table.contains("1 series"), "{table}");
    assert!(stella.terminate().success());
}

/// The store for all three signals.
fn store_everything() -> String {
    let pipeline = "{receivers: [otlp], processors: [], exporters: [store]}";
    format!(
        "exporters:\n  store: {{max_chunk_records: 2, retention: {{default: 36500d}}}}\nservice:\n  pipelines:\n    traces: {pipeline}\n    metrics: {pipeline}\n    logs: {pipeline}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_api_limits_is_refused_by_name_and_a_reload_lifts_the_limits() {
    let limits = |limits: &'static str| common::Extra { api: limits, ..Default::default() };
    let mut stella = Stella::start_with_receiver(
        &limits("limits: {max_samples: 4, max_spans: 5, max_lines: 2}"),
        &store_everything(),
    );
    // Six traces of one span, three log lines, five samples of one series: each one more than its limit.
    assert_eq!(stella.post(&traces("limits", 6)).await.0, 200);
    let at = 1_700_000_000u64;
    for offset in 0..3 {
        let line = log_request("limits-svc", "a line", 9, (at + offset) * 1_000_000_000, ("k", "v"));
        assert_eq!(stella.post(&line).await.0, 200);
    }
    for offset in 0..5 {
        assert_eq!(stella.post(&gauge_request("a", (at + offset * 10) * 1_000_000_000, offset as i64)).await.0, 200);
    }
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(stella.api_url(&path));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let window = format!("start={at}&end={}", at + 3600);
    // Wait until everything is stored, read by requests no limit bounds: traces by id, log lines (a log
    // query holds at most its `limit`), the raw series.
    let lines = format!("/loki/api/v1/query_range?query=%7Bservice_name%3D%22limits-svc%22%7D&{window}&limit=10");
    let OtlpRequest::Traces(sent) = traces("limits", 6) else { unreachable!() };
    let ids: Vec<String> =
        sent.resource_spans[0].scope_spans[0].spans.iter().map(|span| hex::encode(&span.trace_id)).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut stored = get(lines.clone()).await.1.matches("a line").count() == 3;
        for id in &ids {
            stored &= get(format!("/api/traces/{id}")).await.0 == 200;
        }
        let series = get("/telemetry/query/metrics?name=queue.depth".into()).await.1;
        stored &= serde_json::from_str::<serde_json::Value>(&series).unwrap_or_default()["series"][0]["points"]
            .as_array()
            .map_or(0, Vec::len)
            == 5;
        if stored {
            break;
        }
        assert!(Instant::now() < deadline, "not everything sent was stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let search = format!("/api/search?q=%7B%7D&{window}");
    let values = format!("/api/v2/search/tag/name/values?{window}");
    let counted = format!(
        "/loki/api/v1/query?query=sum(count_over_time(%7Bservice_name%3D%22limits-svc%22%7D%5B1h%5D))&time={}",
        at + 60
    );
    let samples = format!("/api/v1/query?query=queue_depth%5B1h%5D&time={}", at + 60);
    let (status, body) = get(search.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("more than 5 spans at once (api.limits.max_spans)"), "{body}");
    let (status, body) = get(values.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.matches("limits-").count(), 5, "tag discovery answers from the newest max_spans spans: {body}");
    let (status, body) = get(counted.clone()).await;
    assert!(status == 400 && body.contains("more than 2 lines (api.limits.max_lines)"), "{status} {body}");
    let (status, body) = get(samples.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("\"errorType\":\"execution\"") && body.contains("api.limits.max_samples"), "{body}");
    // Raised by a reload: the same queries answer, with everything stored.
    let raised = limits("limits: {max_samples: 5, max_spans: 6, max_lines: 3}");
    let config = common::receiver_config(stella.grpc, stella.http, stella.api, &raised, &store_everything());
    std::fs::write(&stella.config_path, config).unwrap();
    let reloaded = client.post(stella.api_url("/telemetry/config/reload")).send().await.unwrap();
    assert_eq!(reloaded.status(), 200, "{}", reloaded.text().await.unwrap());
    let (status, body) = get(search).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["traces"].as_array().map(Vec::len), Some(6));
    let (status, body) = get(values).await;
    assert!(status == 200 && body.matches("limits-").count() == 6, "{status} {body}");
    let (status, body) = get(counted).await;
    assert!(status == 200 && body.contains("\"3\""), "three lines counted: {status} {body}");
    let (status, body) = get(samples).await;
    assert_eq!(status, 200, "{body}");
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(found["data"]["result"][0]["values"].as_array().map(Vec::len), Some(5), "{found}");
    assert!(stella.terminate().success());
}

/// Deletes the first of `files` and flips the last byte of each other one.
fn spoil(files: &[PathBuf]) {
    std::fs::remove_file(&files[0]).unwrap();
    for file in &files[1..] {
        let mut bytes = std::fs::read(file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(file, bytes).unwrap();
    }
}

/// `text` with every byte but unreserved ones percent-encoded, for a query string.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_counts_from_log_volumes_equal_counting_the_lines_with_or_without_the_volume_files() {
    // Two lines per chunk: four chunks sealed with their volume files, the ninth line still open.
    let mut stella = Stella::start_with_receiver(&common::Extra::default(), &store_everything());
    let at = 1_700_000_000u64;
    let mut bytes = 0;
    for n in 0..9u64 {
        let (service, severity) = if n % 3 == 0 { ("vol-db", 17) } else { ("vol-cart", 9) };
        let line = format!("line {n}{}", "!".repeat(n as usize));
        bytes += line.len();
        // Some lines exactly on a second, some just after it.
        let time = (at + n) * 1_000_000_000 + (n % 2) * 1_000_001;
        assert_eq!(stella.post(&log_request(service, &line, severity, time, ("k", "v"))).await.0, 200);
    }
    let store = stella.data_dir().join("store");
    let volumes = || {
        let found = files(&store).into_keys().filter(|path| path.ends_with(".volume"));
        found.map(|path| store.join(path)).collect::<Vec<_>>()
    };
    wait_until("four log chunks sealed with their volumes", || volumes().len() >= 4).await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(stella.api_url(&path));
        async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let window = format!("start={}&end={}&step=2", at - 10, at + 30);
    let range = |query: String| format!("/loki/api/v1/query_range?query={}&{window}", percent_encoded(&query));
    // Each count summed by stream labels (answered from volumes) against the same count behind a line
    // filter that keeps every line (answered by reading the lines).
    let counts = [
        r#"sum by (severity) (count_over_time({service_name=~"vol-.+"}SELECT[4s]))"#,
        r#"sum by (service_name) (bytes_over_time({service_name=~"vol-.+"}SELECT[3s]))"#,
        r#"sum(rate({service_name="vol-cart"}SELECT[5s] offset 1s))"#,
    ];
    let stats = format!(
        "/loki/api/v1/index/stats?query={}&start={}&end={}",
        percent_encoded(r#"{service_name=~"vol-.+"}"#),
        at,
        at + 60
    );
    let answers = || async {
        let mut answers = Vec::new();
        for count in counts {
            let summed = get(range(count.replace("SELECT", ""))).await;
            let read = get(range(count.replace("SELECT", r#" |~ ".*""#))).await;
            assert_eq!(summed["status"], "success", "{summed}");
            assert!(!summed["data"]["result"].as_array().unwrap().is_empty(), "{count}: {summed}");
            assert_eq!(summed["data"]["result"], read["data"]["result"], "{count}");
            answers.push(summed["data"]["result"].clone());
        }
        let stats = get(stats.clone()).await;
        assert_eq!((stats["entries"].as_u64(), stats["bytes"].as_u64()), (Some(9), Some(bytes as u64)), "{stats}");
        answers
    };
    let with_files = answers().await;
    // A missing or damaged volume file only costs reading its chunk: the same answers.
    let files = volumes();
    spoil(&files);
    assert_eq!(answers().await, with_files);
    assert!(stella.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tempo_search_for_a_value_finds_it_in_sealed_chunks_with_or_without_their_term_filters() {
    // One record per chunk: every trace below is sealed, each chunk with its term filter.
    let mut stella = Stella::start(&store_only(1, ""));
    let prefixes = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    // Each request holds two traces of one span (`<prefix>-0`, `<prefix>-1`).
    let mut ids: Vec<Vec<String>> = Vec::new();
    for prefix in prefixes {
        let request = traces(prefix, 2);
        let OtlpRequest::Traces(sent) = &request else { unreachable!() };
        let spans = &sent.resource_spans[0].scope_spans[0].spans;
        ids.push(spans.iter().map(|span| hex::encode(&span.trace_id).trim_start_matches('0').to_string()).collect());
        assert_eq!(stella.post(&request).await.0, 200);
    }
    let store = stella.data_dir().join("store");
    let terms = || {
        let found = files(&store).into_keys().filter(|path| path.ends_with(".terms"));
        found.map(|path| store.join(path)).collect::<Vec<_>>()
    };
    // The last record stays in the open chunk until another seals it: five sealed chunks.
    wait_until("five chunks sealed with their filters", || terms().len() >= prefixes.len() - 1).await;
    let client = reqwest::Client::new();
    let search = |query: &str| {
        let encoded = percent_encoded(query);
        let request = client.get(stella.api_url(&format!("/api/search?start=1&end=4102444800&q={encoded}")));
        async move {
            let found: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
            let mut ids: Vec<String> = found["traces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|trace| trace["traceID"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    let queries = [
        (r#"{ span.test.prefix = "gamma" }"#, sorted(ids[2].clone())),
        (r#"{ .test.prefix = "beta" && name = "beta-0" }"#, vec![ids[1][0].clone()]),
        (r#"{ span.test.prefix = "alpha" || span.test.prefix = "zeta" }"#, sorted([&ids[0][..], &ids[5][..]].concat())),
        (r#"{ resource.service.name = "harness" && span.test.prefix = "nobody" }"#, vec![]),
    ];
    for (query, expected) in &queries {
        assert_eq!(&search(query).await, expected, "{query}");
    }
    // Missing or damaged filters only cost reading the chunks: the same answers.
    let files = terms();
    spoil(&files);
    for (query, expected) in &queries {
        assert_eq!(&search(query).await, expected, "without usable filters: {query}");
    }
    assert!(stella.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_search_with_more_candidates_than_it_holds_reads_the_range_and_misses_none() {
    // 1,100 traces carry the value: past the 1,000 candidate ids a narrowed search holds, it reads the
    // whole range instead, and finds every one.
    let mut stella = Stella::start(&store_only(4, ""));
    let request = traces("many", 1100);
    assert_eq!(stella.post(&request).await.0, 200);
    let url = stella
        .api_url("/api/search?start=1&end=4102444800&limit=5000&q=%7B%20span.test.prefix%20%3D%20%22many%22%20%7D");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        let count = found["traces"].as_array().map_or(0, Vec::len);
        if count == 1100 {
            break;
        }
        assert!(Instant::now() < deadline, "found {count} of 1100 traces");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stella.terminate().success());
}
