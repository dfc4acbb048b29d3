//! Tail sampling and incident mode, whole binary, driven by `stella telemetry loadgen` (unique trace ids).
//! Each instance runs two trace pipelines from one receiver: `traces/all` (no sampling, the reference of
//! what was sent) and `traces` (tail sampling), each to its own file.

use sha2::Digest;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Stella, read_json_lines};
use stella_otlp::proto::common::v1::any_value;
use stella_otlp::{OtlpRequest, Signal};

/// Two trace pipelines: everything to `export/all.jsonl`, sampled to `export/traces.jsonl`; `extra`
/// exporters are added to `traces/all` (e.g. a relay to a second instance).
fn sampling_config(policies: &str, decision_wait: &str, extra: &str, relay: &str) -> String {
    format!(
        "processors:\n  tail_sampling: {{decision_wait: {decision_wait}, policies: {policies}}}\n  batch: {{timeout: 50ms}}\n\
         exporters:\n  file: {{path: \"export/{{signal}}.jsonl\"}}\n  file/all: {{path: export/all.jsonl}}\n{extra}\
         service:\n  pipelines:\n    traces: {{receivers: [otlp], processors: [tail_sampling, batch], exporters: [file]}}\n    \
         traces/all: {{receivers: [otlp], processors: [batch], exporters: [file/all{relay}]}}\n"
    )
}

const ERRORS_AND_TEN_PERCENT: &str = "[{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}, \
     {name: ten-percent, type: probabilistic, probabilistic: {sampling_percentage: 10}}]";

/// Spans by trace: (span ids, service, has an error span, policies seen).
#[derive(Debug, Default, Clone, PartialEq)]
struct Trace {
    spans: Vec<Vec<u8>>,
    service: String,
    error: bool,
    policies: BTreeSet<String>,
}

fn traces_of(requests: &[OtlpRequest]) -> BTreeMap<Vec<u8>, Trace> {
    let mut traces: BTreeMap<Vec<u8>, Trace> = BTreeMap::new();
    for request in requests {
        let OtlpRequest::Traces(request) = request else { continue };
        for group in &request.resource_spans {
            let service = group
                .resource
                .as_ref()
                .and_then(|resource| resource.attributes.iter().find(|attribute| attribute.key == "service.name"))
                .and_then(|attribute| match attribute.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in group.scope_spans.iter().flat_map(|scope| &scope.spans) {
                let trace = traces.entry(span.trace_id.clone()).or_default();
                trace.spans.push(span.span_id.clone());
                trace.service = service.clone();
                trace.error |= span.status.as_ref().is_some_and(|status| status.code == 2);
                for attribute in span.attributes.iter().filter(|attribute| attribute.key == "sampling.policy") {
                    if let Some(any_value::Value::StringValue(name)) =
                        attribute.value.as_ref().and_then(|value| value.value.as_ref())
                    {
                        trace.policies.insert(name.clone());
                    }
                }
            }
        }
    }
    for trace in traces.values_mut() {
        trace.spans.sort();
    }
    traces
}

fn loadgen(stella: &Stella, args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "loadgen", "--endpoint", &stella.url(""), "--json"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn exported(stella: &Stella, file: &str) -> Vec<OtlpRequest> {
    read_json_lines(&stella.data_dir().join("export").join(file), Signal::Traces)
}

/// Waits until `file` holds `count` traces (or the deadline passes).
async fn wait_for_traces(stella: &Stella, file: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while traces_of(&exported(stella, file)).len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_kept_the_rest_at_ten_percent_whole_and_two_instances_agree() {
    let mut second = Stella::start(&sampling_config(ERRORS_AND_TEN_PERCENT, "1s", "", ""));
    let relay = format!("  otlphttp/second: {{endpoint: \"http://127.0.0.1:{}\"}}\n", second.http);
    let mut first = Stella::start(&sampling_config(ERRORS_AND_TEN_PERCENT, "1s", &relay, ", otlphttp/second"));
    let load = ["--requests", "120", "--workers", "2", "--traces-per-request", "20"];
    loadgen(&first, &[&load[..], &["--spans-per-trace", "4", "--error-percent", "1"]].concat());
    assert!(first.terminate().success(), "{}", first.log());
    let sent = traces_of(&exported(&first, "all.jsonl"));
    wait_for_traces(&second, "all.jsonl", sent.len()).await;
    assert!(second.terminate().success(), "{}", second.log());

    let kept = traces_of(&exported(&first, "traces.jsonl"));
    assert_eq!(sent.len(), 2400, "120 requests of 20 traces");
    let errors: Vec<&Vec<u8>> = sent.iter().filter(|(_, trace)| trace.error).map(|(id, _)| id).collect();
    assert!(!errors.is_empty(), "loadgen sent error traces");
    for id in &errors {
        assert_eq!(
            kept.get(*id).map(|trace| trace.policies.clone()),
            Some(["errors".to_string()].into()),
            "every error trace is kept by `errors`"
        );
    }
    for (id, trace) in &kept {
        assert_eq!(Some(&trace.spans), sent.get(id).map(|sent| &sent.spans), "kept traces are whole");
    }
    let candidates = (sent.len() - errors.len()) as f64;
    let sampled = kept.values().filter(|trace| trace.policies.contains("ten-percent")).count() as f64;
    let sigma = (candidates * 0.1 * 0.9).sqrt();
    assert!((sampled - candidates * 0.1).abs() < 5.0 * sigma, "kept {sampled} of {candidates} non-error traces");

    let second_sent = traces_of(&exported(&second, "all.jsonl"));
    assert_eq!(second_sent.len(), sent.len(), "the relay delivered everything to the second instance");
    let second_kept = traces_of(&exported(&second, "traces.jsonl"));
    let ids = |traces: &BTreeMap<Vec<u8>, Trace>| traces.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(ids(&second_kept), ids(&kept), "two instances with the same policies keep the same traces");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sampler_replays_the_log_to_the_same_decisions_exactly_once() {
    let mut stella = Stella::start(&sampling_config(ERRORS_AND_TEN_PERCENT, "3s", "", ""));
    loadgen(
        &stella,
        &["--duration", "2s", "--workers", "2", "--rate", "50", "--traces-per-request", "20", "--error-percent", "5"],
    );
    // Every trace is still undecided (3s wait): the kill loses the sampler's memory, not the traces.
    stella.signal("KILL");
    stella.wait_exit();
    stella.spawn();
    let sent = traces_of(&exported(&stella, "all.jsonl"));
    let errors = sent.values().filter(|trace| trace.error).count();
    wait_for_traces(&stella, "traces.jsonl", errors).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(stella.terminate().success(), "{}", stella.log());
    let sent = traces_of(&exported(&stella, "all.jsonl"));
    let requests = exported(&stella, "traces.jsonl");
    let mut spans = BTreeMap::new();
    for request in &requests {
        let OtlpRequest::Traces(request) = request else { continue };
        for span in request.resource_spans.iter().flat_map(|group| &group.scope_spans).flat_map(|scope| &scope.spans) {
            *spans.entry((span.trace_id.clone(), span.span_id.clone())).or_insert(0) += 1;
        }
    }
    assert!(spans.values().all(|count| *count == 1), "a span was passed on twice");
    let kept = traces_of(&requests);
    for (id, trace) in &sent {
        if trace.error {
            assert!(kept.contains_key(id), "an error trace was lost in the restart");
        }
    }
    for (id, trace) in &kept {
        assert_eq!(Some(&trace.spans), sent.get(id).map(|sent| &sent.spans), "kept traces are whole");
        let policy = if sent[id].error { "errors" } else { "ten-percent" };
        assert_eq!(trace.policies, [policy.to_string()].into());
    }
    assert!(stella.log().contains("tail sampling: started"), "{}", stella.log());
}

fn cli(stella: &Stella, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "incident"])
        .args(args)
        .args(["--server", &stella.api_url("")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_mode_keeps_a_service_whole_at_once_survives_a_restart_and_ends_with_its_ttl() {
    let keep_nothing = "[{name: none, type: probabilistic, probabilistic: {sampling_percentage: 0}}]";
    let mut stella = Stella::start(&sampling_config(keep_nothing, "500ms", "", ""));
    let load = ["--duration", "1s", "--workers", "1", "--rate", "20", "--traces-per-request", "5"];
    let with_services = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args: Vec<&'static str> = load.to_vec();
        args.extend_from_slice(&["--services", "checkout,search"]);
        args.extend_from_slice(extra);
        args
    };

    let on =
        cli(&stella, &["on", "--services", "checkout", "--ttl", "8s", "--reason", "sev2 checkout errors", "--json"]);
    let on: serde_json::Value = serde_json::from_str(&on).unwrap();
    assert_eq!((on["state"].as_str(), on["tenant"].as_str()), (Some("on"), Some("default")));
    assert_eq!(stella.metric("telemetry_incident_mode{state=\"on\"}").await, Some(1.0));
    // A restart keeps it on.
    assert!(stella.terminate().success());
    stella.spawn();
    let status = cli(&stella, &["status"]);
    assert!(status.contains("incident mode ON for checkout") && status.contains("sev2 checkout errors"), "{status}");

    loadgen(&stella, &with_services(&[]));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = traces_of(&exported(&stella, "all.jsonl"));
    let checkout = sent.values().filter(|trace| trace.service == "checkout").count();
    assert!(checkout > 0);
    wait_for_traces(&stella, "traces.jsonl", checkout).await;
    let kept = traces_of(&exported(&stella, "traces.jsonl"));
    assert_eq!(kept.len(), checkout, "every checkout trace and nothing else is kept");
    assert!(kept.values().all(|trace| trace.service == "checkout" && trace.policies.contains("incident_mode")));

    // Past its TTL it ends by itself (audited as `ttl`), and checkout is sampled by the policies again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cli(&stella, &["status"]).contains("incident mode off") {
        assert!(Instant::now() < deadline, "incident mode did not end with its TTL");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(stella.metric("telemetry_incident_mode{state=\"on\"}").await, Some(0.0));
    // Incident mode held its window (from an hour before the toggle) and closed the hold when it ended.
    let holds: serde_json::Value =
        reqwest::get(stella.api_url("/telemetry/holds")).await.unwrap().json().await.unwrap();
    let incident_holds: Vec<&serde_json::Value> =
        holds["holds"].as_array().unwrap().iter().filter(|hold| hold["kind"] == "incident").collect();
    assert_eq!(incident_holds.len(), 1, "{holds}");
    assert!(incident_holds[0]["to"].is_string(), "closed when incident mode ended: {holds}");
    loadgen(&stella, &with_services(&[]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(stella.terminate().success());
    assert_eq!(traces_of(&exported(&stella, "traces.jsonl")).len(), checkout, "nothing more was kept");
    let audit = std::fs::read_to_string(stella.data_dir().join("audit/audit.jsonl")).unwrap();
    let toggles: Vec<serde_json::Value> = audit
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["action"] == "incident.mode")
        .collect();
    assert_eq!(toggles.len(), 2, "{audit}");
    assert_eq!(toggles[1]["actor"], "ttl");
    // Its end archived the incident window's signed bundle, named with its digest in the audit record.
    let bundle = &toggles[1]["parameters"]["bundle"];
    let path = bundle["path"].as_str().unwrap_or_else(|| panic!("no bundle: {bundle}"));
    assert!(path.contains("/archive/default/incident-"), "{path}");
    let key = stella.data_dir().join("keys/signing-key.pub.pem");
    let verified = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(["telemetry", "verify", path, "--json", "--trusted-key", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()));
    assert_eq!(bundle["sha256"].as_str(), Some(digest.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_metrics_count_every_span_even_those_sampling_drops() {
    // The default profile's pipelines: spanmetrics runs before tail sampling, its metrics go to `metrics`.
    let mut stella = Stella::start(
        "processors:\n  spanmetrics: {metrics_flush_interval: 200ms}\n  tail_sampling: {decision_wait: 200ms, policies: [{name: none, type: probabilistic, probabilistic: {sampling_percentage: 0}}]}\n",
    );
    loadgen(
        &stella,
        &[
            "--duration",
            "1s",
            "--workers",
            "1",
            "--rate",
            "10",
            "--traces-per-request",
            "3",
            "--spans-per-trace",
            "2",
            "--error-percent",
            "50",
            "--services",
            "checkout",
        ],
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(stella.terminate().success(), "{}", stella.log());
    assert!(traces_of(&exported(&stella, "traces.jsonl")).is_empty(), "sampling kept nothing");
    let metrics = read_json_lines(&stella.data_dir().join("export/metrics.jsonl"), Signal::Metrics);
    // The last flush holds the cumulative totals: calls per status add up to every span sent.
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for request in &metrics {
        let OtlpRequest::Metrics(request) = request else { continue };
        for metric in
            request.resource_metrics.iter().flat_map(|group| &group.scope_metrics).flat_map(|scope| &scope.metrics)
        {
            if metric.name != "traces.span.metrics.calls" {
                continue;
            }
            let Some(stella_otlp::proto::metrics::v1::metric::Data::Sum(sum)) = &metric.data else { continue };
            for point in &sum.data_points {
                let series = format!("{:?}", point.attributes);
                if let Some(stella_otlp::proto::metrics::v1::number_data_point::Value::AsInt(value)) = point.value {
                    last.insert(series, value);
                }
            }
        }
    }
    let total: i64 = last.values().sum();
    assert_eq!(last.len(), 3, "operation-0 unset, operation-1 unset and error: {last:?}");
    assert!(last.keys().any(|series| series.contains("STATUS_CODE_ERROR")), "{last:?}");
    assert!(total >= 20, "10 requests x 3 traces x 2 spans = 60 spans were sent in ~1s; counted {total}");
    assert_eq!(total % 2, 0, "two spans per trace");
}
