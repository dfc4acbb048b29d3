//! DORA end to end on the real binary: events in through the API and the CLI (idempotent by id, per-item
//! results, the credential's tenant), the report out in every format (canonical JSON byte-identical for
//! identical inputs), and the `dora_*` metrics on `/metrics`.
use crate::common;

use crate::common::Stella;
use serde_json::{Value, json};

fn deployment(id: &str, service: &str, finished: &str, outcome: &str, kind: &str, commit_time: &str) -> Value {
    json!({
        "id": id, "environment": "production", "service": service, "pipeline": "GitHub Actions / deploy",
        "commits": [{"id": format!("sha-{id}"), "time": commit_time}],
        "started": "2026-11-01T00:00:00Z", "finished": finished, "outcome": outcome, "kind": kind,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_report_out_with_tenancy_idempotence_and_metrics() {
    let body = "auth: {enabled: true}\ntenants: [{id: acme}, {id: globex}]\nexporters: {nop: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [nop]}\n    metrics: null\n    logs: null\n";
    let mut stella = Stella::prepare(&common::Extra::default(), body);
    let token = |tenant: &str, scopes: &str| {
        common::tokens(&stella.data_dir(), &["create", "--tenant", tenant, "--scopes", scopes])["token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let (acme, globex) = (token("acme", "ingest,read"), token("globex", "ingest,read"));
    stella.spawn();
    let client = reqwest::Client::new();
    let post = |path: &'static str, token: String, body: Value| {
        let request = client.post(stella.api_url(path)).bearer_auth(token).json(&body);
        async move {
            let response = request.send().await.unwrap_or_else(|error| panic!("{error}"));
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or_default())
        }
    };

    // A batch: three good deployments, one refused with a precise error, one re-sent (replaced).
    let batch = json!([
        deployment("d1", "cart", "2026-11-02T10:00:00Z", "succeeded", "normal", "2026-11-02T08:00:00Z"),
        deployment("d2", "cart", "2026-11-03T10:00:00Z", "succeeded", "normal", "2026-11-03T06:00:00Z"),
        deployment("d3", "cart", "2026-11-03T12:00:00Z", "succeeded", "rollback", "2026-11-03T11:00:00Z"),
        {"id": "bad", "environment": "production", "service": "cart", "started": "2026-11-01T00:00:00Z", "finished": "not a time", "outcome": "succeeded"},
        deployment("d1", "cart", "2026-11-02T10:00:00Z", "succeeded", "normal", "2026-11-02T08:00:00Z"),
    ]);
    let (status, answer) = post("/telemetry/dora/deployments", acme.clone(), batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["recorded"].as_u64(), answer["replaced"].as_u64(), answer["refused"].as_u64()),
        (Some(3), Some(1), Some(1)),
        "{answer}"
    );
    assert_eq!(answer["results"][3]["field"], "finished", "{answer}");
    assert_eq!(answer["results"][4]["status"], "replaced");
    // Another tenant in an event: refused whole, nothing recorded.
    let mut foreign = deployment("d9", "cart", "2026-11-04T10:00:00Z", "succeeded", "normal", "2026-11-04T08:00:00Z");
    foreign["tenant"] = json!("globex");
    assert_eq!(post("/telemetry/dora/deployments", acme.clone(), foreign).await.0, 403);
    // An incident on d2's service after d2: linked, recovered in 30 minutes.
    let incident = json!({"id": "inc-1", "environment": "production", "service": "cart", "severity": "SEV2",
        "started": "2026-11-03T10:30:00Z", "acknowledged": "2026-11-03T10:40:00Z", "resolved": "2026-11-03T11:00:00Z"});
    let (status, answer) = post("/telemetry/dora/incidents", acme.clone(), incident).await;
    assert_eq!((status, answer["recorded"].as_u64()), (200, Some(1)), "{answer}");

    // The CLI records one more, for globex.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stella"))
        .args([
            "telemetry",
            "dora",
            "record",
            "deployment",
            "--id",
            "g1",
            "--environment",
            "prod",
            "--service",
            "api",
            "--commit",
            "abc@2026-11-02T00:00:00Z",
            "--started",
            "2026-11-02T01:00:00Z",
            "--finished",
            "2026-11-02T02:00:00Z",
            "--outcome",
            "succeeded",
            "--server",
            &stella.api_url(""),
            "--token",
            &globex,
        ])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("recorded g1"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The report: d2 failed (followed by the rollback d3) and linked to inc-1; 3 deployments in 7 days.
    let url = |format: &str, token: &str| {
        let request = client
            .get(stella.api_url(&format!(
                "/telemetry/dora/report?from=2026-11-01&to=2026-11-08&tz=Europe/Paris&format={format}"
            )))
            .bearer_auth(token.to_string());
        async move {
            let response = request.send().await.unwrap_or_else(|error| panic!("{error}"));
            (response.status().as_u16(), response.bytes().await.unwrap_or_default().to_vec())
        }
    };
    let (status, first) = url("json", &acme).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    let report: Value = serde_json::from_slice(&first).unwrap_or_default();
    assert_eq!(report["tenant"], "acme");
    assert_eq!(report["counts"]["deployments"], 3);
    assert_eq!(report["counts"]["failed"], 1);
    assert_eq!(report["metrics"]["change_failure_rate"]["value"].as_f64(), Some(33.333333));
    assert_eq!(report["metrics"]["lead_time"]["value"].as_f64(), Some(2.0), "median of 2h, 4h and 1h");
    assert_eq!(report["metrics"]["mttr"]["value"].as_f64(), Some(0.5));
    assert_eq!(report["metrics"]["mttr"]["tier"], "Elite");
    assert_eq!(report["pipelines"][0]["pipeline"], "github-actions-deploy");
    assert_eq!(report["daily"].as_array().map(Vec::len), Some(7));
    assert_eq!(report["severities"][1]["severity"], "sev2");
    assert_eq!(url("json", &acme).await.1, first, "byte-identical for identical inputs");
    let text = String::from_utf8_lossy(&first).into_owned();
    assert_eq!(
        text,
        String::from_utf8_lossy(&stella_evidence::canonical::to_vec(&report).unwrap_or_default()),
        "RFC 8785"
    );
    let globex_report: Value = serde_json::from_slice(&url("json", &globex).await.1).unwrap_or_default();
    assert_eq!(globex_report["counts"]["deployments"], 1, "a tenant sees only its events");
    for (format, marker) in [("md", "| Change failure rate |"), ("html", "<svg"), ("csv", "date,deployments")] {
        let (status, body) = url(format, &acme).await;
        assert!(
            status == 200 && String::from_utf8_lossy(&body).contains(marker),
            "{format}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(url("pdf", &acme).await.0, 400);

    let metrics = client.get(stella.api_url("/metrics")).bearer_auth(&acme).send().await;
    let metrics = match metrics {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(error) => panic!("{error}"),
    };
    for expected in [
        "dora_deployments_total{tenant=\"acme\",environment=\"production\",service=\"cart\"} 3",
        "dora_lead_time_hours_count{tenant=\"acme\",environment=\"production\",service=\"cart\"} 3",
        "dora_time_to_recovery_hours_count{tenant=\"acme\",environment=\"production\",service=\"cart\"} 1",
        "dora_slo_breach_total{tenant=\"acme\",metric=\"change_failure_rate\"}",
    ] {
        assert!(metrics.contains(expected), "missing {expected:?}:\n{metrics}");
    }
    // promtool accepts the exposition; its only complaints are the base-unit lint on the two `_hours`
    // names the seed fixes.
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("promtool (./scripts/test.sh installs Debian's prometheus): {error}"));
    if let Some(mut stdin) = check.stdin.take() {
        use std::io::Write;
        stdin.write_all(metrics.as_bytes()).unwrap_or_else(|error| panic!("{error}"));
    }
    let output = check.wait_with_output().unwrap_or_else(|error| panic!("{error}"));
    let complaints = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = complaints.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(
        lines.iter().all(|line| line.contains("dora_lead_time_hours") || line.contains("dora_time_to_recovery_hours")),
        "promtool check metrics:\n{complaints}"
    );
    assert!(stella.terminate().success());
}

/// An OTLP/JSON log record carrying a DORA event.
fn log_event(name: &str, at: &str, attributes: Value) -> Value {
    let nanos = at.parse::<jiff::Timestamp>().map(|time| time.as_nanosecond().to_string()).unwrap_or_default();
    let attributes: Vec<Value> = attributes
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| {
            let value = match value {
                Value::Array(items) => json!({"arrayValue": {"values": items.iter().map(|item| json!({"stringValue": item})).collect::<Vec<_>>()}}),
                other => json!({"stringValue": other}),
            };
            json!({"key": format!("stella.{key}"), "value": value})
        })
        .collect();
    json!({"timeUnixNano": nanos, "eventName": name, "attributes": attributes, "body": {"stringValue": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_records_named_as_dora_events_are_recorded() {
    let body = "exporters: {events: {}}\nservice:\n  pipelines:\n    logs: {receivers: [otlp], processors: [], exporters: [events]}\n    traces: null\n    metrics: null\n";
    let mut stella = Stella::start(body);
    let records = json!([
        log_event(
            "stella.release.promotion",
            "2026-11-02T10:00:00Z",
            json!({"id": "p1", "environment": "production", "commits": ["c1@2026-11-02T06:00:00Z"]})
        ),
        log_event("stella.release.rollback", "2026-11-02T11:00:00Z", json!({"id": "p2", "environment": "production"})),
        log_event(
            "stella.incident.opened",
            "2026-11-02T10:30:00Z",
            json!({"id": "i1", "environment": "production", "severity": "sev1"})
        ),
        log_event("stella.incident.resolved", "2026-11-02T12:30:00Z", json!({"id": "i1"})),
        log_event("stella.release.promotion", "2026-11-02T13:00:00Z", json!({"environment": "production"})),
        log_event("http.request", "2026-11-02T13:00:00Z", json!({})),
    ]);
    let mut records = records;
    for n in 0..5 {
        let mut observation = log_event(
            "stella.vuln.observation",
            "2026-11-02T14:00:00Z",
            json!({"cve_id": "CVE-2026-0009", "artifact_digest": format!("sha256:{n}")}),
        );
        if let Some(attributes) = observation["attributes"].as_array_mut() {
            attributes.push(json!({"key": "stella.noisy", "value": {"boolValue": n % 2 == 0}}));
        }
        if let Some(list) = records.as_array_mut() {
            list.push(observation);
        }
    }
    let request = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeLogs": [{"logRecords": records}]}]});
    let client = reqwest::Client::new();
    let sent =
        client.post(stella.url("/v1/logs")).json(&request).send().await.map(|response| response.status().as_u16());
    assert_eq!(sent.unwrap_or(0), 200);
    let url = stella.api_url("/telemetry/dora/report?from=2026-11-02&to=2026-11-03&format=json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let report = loop {
        let report: Value = match client.get(&url).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(error) => panic!("{error}"),
        };
        if report["counts"]["deployments"] == 2 && report["metrics"]["mttr"]["value"].as_f64().is_some() {
            break report;
        }
        assert!(std::time::Instant::now() < deadline, "the log events were not recorded: {report}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(report["counts"]["failed"], 1, "p1 is followed by the rollback p2: {report}");
    assert_eq!(report["metrics"]["lead_time"]["value"].as_f64(), Some(4.0));
    assert_eq!(report["metrics"]["mttr"]["value"].as_f64(), Some(2.0), "opened 10:30, resolved 12:30");
    let metrics = reqwest::get(stella.api_url("/metrics")).await.map(|response| response.text());
    let metrics = match metrics {
        Ok(text) => text.await.unwrap_or_default(),
        Err(error) => panic!("{error}"),
    };
    assert!(
        metrics.contains("collector_export_failures_total{exporter=\"events\",reason=\"invalid_event\"} 1"),
        "the promotion without an id is refused and counted:\n{metrics}"
    );
    assert!(stella.terminate().success());
}
