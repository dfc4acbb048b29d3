//! `stella telemetry rules render` and `dashboards render`: the rules pass `promtool check rules` and
//! their unit tests (`promtool test rules`), every alert has a severity, a summary, a description and a
//! runbook and is tested both firing and not firing; every query in the rules and the dashboards parses
//! as PromQL (`promql-parser`) and names only metrics we emit (our meta-metrics, the span metrics as the
//! remote-write exporter translates them), series our recording rules make, or Prometheus' own.
use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use promql_parser::parser::{self, Expr};
use serde_json::Value;
use stella_otlp::{Batch, OtlpRequest};
use stella_pipeline::Stage;

fn stella(args: &[&str]) -> std::process::Output {
    let output =
        Command::new(env!("CARGO_BIN_EXE_stella")).args(args).output().unwrap_or_else(|error| panic!("{error}"));
    assert!(output.status.success(), "stella {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let output = Command::new("promtool").args(args).current_dir(dir).output().unwrap_or_else(|error| {
        panic!("promtool (Debian's prometheus package; ./scripts/test.sh installs it): {error}")
    });
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn rendered(kind: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let out = dir.path().to_string_lossy().into_owned();
    let listing = stella(&["telemetry", kind, "render", "--out", &out, "--json"]);
    let listing: Value = serde_json::from_slice(&listing.stdout).unwrap_or_else(|error| panic!("{error}"));
    let files: Vec<PathBuf> =
        listing["files"].as_array().into_iter().flatten().filter_map(Value::as_str).map(PathBuf::from).collect();
    assert!(!files.is_empty() && files.iter().all(|file| file.is_file()), "{listing}");
    (dir, files)
}

/// The names of the series a query selects.
fn selected(expr: &Expr, names: &mut BTreeSet<String>) {
    let mut vector = |selector: &parser::VectorSelector| {
        let by_matcher = selector.matchers.matchers.iter().find(|matcher| matcher.name == "__name__");
        match (&selector.name, by_matcher) {
            (Some(name), _) => names.insert(name.clone()),
            (None, Some(matcher)) => names.insert(matcher.value.clone()),
            (None, None) => panic!("a selector without a metric name: {selector}"),
        };
    };
    match expr {
        Expr::Aggregate(aggregate) => {
            selected(&aggregate.expr, names);
            if let Some(param) = &aggregate.param {
                selected(param, names);
            }
        }
        Expr::Unary(unary) => selected(&unary.expr, names),
        Expr::Binary(binary) => {
            selected(&binary.lhs, names);
            selected(&binary.rhs, names);
        }
        Expr::Paren(paren) => selected(&paren.expr, names),
        Expr::Subquery(subquery) => selected(&subquery.expr, names),
        Expr::VectorSelector(selector) => vector(selector),
        Expr::MatrixSelector(matrix) => vector(&matrix.vs),
        Expr::Call(call) => call.args.args.iter().for_each(|arg| selected(arg, names)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn parse(query: &str, context: &str) -> BTreeSet<String> {
    // Grafana's interval variables are durations by the time Prometheus sees the query.
    let query = ["$__rate_interval", "$__interval", "$__range"]
        .iter()
        .fold(query.to_string(), |query, variable| query.replace(variable, "5m"));
    let expr = parser::parse(&query).unwrap_or_else(|error| panic!("{context}: {query:?} does not parse: {error}"));
    let mut names = BTreeSet::new();
    selected(&expr, &mut names);
    names
}

/// The span-metric series as Prometheus receives them: the real stage's output through the real
/// remote-write translation.
fn span_metric_names() -> BTreeSet<String> {
    let config = serde_json::from_value(serde_json::json!({})).unwrap_or_else(|error| panic!("{error}"));
    let stage = stella_pipeline::spanmetrics::SpanMetrics::new(
        "spanmetrics".into(),
        config,
        1,
        stella_metrics::Registry::default().counter("x", "x", &["p"]).with(&["p"]),
    );
    let OtlpRequest::Traces(mut request) = common::traces("m", 2) else { unreachable!() };
    if let Some(span) = request
        .resource_spans
        .first_mut()
        .and_then(|group| group.scope_spans.first_mut())
        .and_then(|scope| scope.spans.first_mut())
    {
        span.status = Some(stella_otlp::proto::trace::v1::Status { code: 2, ..Default::default() });
    }
    let (ack, _wait) = stella_otlp::Ack::new();
    let mut batch = Batch::new(Arc::from("default"), OtlpRequest::Traces(request), ack);
    stage.process(&mut batch);
    let naming = stella_otlp::prometheus::Naming { namespace: None, add_suffixes: true };
    let mut names = BTreeSet::new();
    for (_, request) in stage.snapshot(2) {
        let mut dropped = stella_otlp::prometheus::Dropped::default();
        for series in stella_otlp::prometheus::translate(&request, &naming, &mut dropped) {
            names
                .extend(series.labels.iter().filter(|label| label.name == "__name__").map(|label| label.value.clone()));
        }
    }
    assert!(names.contains("traces_span_metrics_calls_total"), "{names:?}");
    names
}

/// What rules and dashboards may name.
fn known_metrics(recorded: &BTreeSet<String>) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = BTreeSet::new();
    for name in stella_metrics::names::ALL {
        known.insert(name.to_string());
        for suffix in ["_bucket", "_sum", "_count"] {
            known.insert(format!("{name}{suffix}"));
        }
    }
    known.extend(span_metric_names());
    known.extend(recorded.iter().cloned());
    // Prometheus' own series, and the policy engine's histogram the rules watch when it is present.
    for name in [
        "up",
        "ALERTS",
        "prometheus_rule_evaluation_failures_total",
        "prometheus_rule_evaluations_total",
        "prometheus_rule_group_last_duration_seconds",
        "prometheus_rule_group_interval_seconds",
        "prometheus_rule_group_iterations_missed_total",
        "policy_run_duration_seconds_bucket",
        "policy_run_duration_seconds_count",
        "policy_run_duration_seconds_sum",
    ] {
        known.insert(name.to_string());
    }
    known
}

#[test]
fn rules_pass_promtool_and_their_unit_tests_cover_every_alert_firing_and_not() {
    let (dir, files) = rendered("rules");
    let rules_file = dir.path().join("stella-telemetry.rules.yml");
    assert!(files.contains(&rules_file), "{files:?}");
    promtool(&["check", "rules", "stella-telemetry.rules.yml"], dir.path());
    let tests: Vec<String> = files
        .iter()
        .filter(|file| file.to_string_lossy().ends_with(".test.yml"))
        .map(|file| file.strip_prefix(dir.path()).unwrap_or(file).to_string_lossy().into_owned())
        .collect();
    assert!(!tests.is_empty());
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    promtool(&args, dir.path());

    let rules = yaml(&rules_file);
    let (mut alerts, mut recorded) = (BTreeSet::new(), BTreeSet::new());
    let mut queries = Vec::new();
    for rule in rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().into_iter().flatten())
    {
        let expr = rule["expr"].as_str().unwrap_or_default().to_string();
        if let Some(name) = rule["alert"].as_str() {
            for key in ["summary", "description", "runbook_url"] {
                assert!(rule["annotations"][key].as_str().is_some_and(|text| !text.is_empty()), "{name}: no {key}");
            }
            assert!(
                ["page", "ticket", "info"].contains(&rule["labels"]["severity"].as_str().unwrap_or_default()),
                "{name}: severity"
            );
            alerts.insert(name.to_string());
            queries.push((name.to_string(), expr));
        } else if let Some(name) = rule["record"].as_str() {
            recorded.insert(name.to_string());
            queries.push((name.to_string(), expr));
        }
    }
    assert!(alerts.len() >= 10, "{alerts:?}");
    // Every alert is expected to fire somewhere and expected silent somewhere.
    let mut outcomes: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for test in &tests {
        let test = yaml(&dir.path().join(test));
        for case in test["tests"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|case| case["alert_rule_test"].as_array().into_iter().flatten())
        {
            let name = case["alertname"].as_str().unwrap_or_default().to_string();
            let fires = case["exp_alerts"].as_array().is_some_and(|expected| !expected.is_empty());
            let entry = outcomes.entry(name).or_default();
            if fires { entry.0 = true } else { entry.1 = true }
        }
    }
    for alert in &alerts {
        assert_eq!(outcomes.get(alert), Some(&(true, true)), "{alert} must be tested firing and not firing");
    }
    let known = known_metrics(&recorded);
    for (name, query) in &queries {
        for metric in parse(query, name) {
            assert!(known.contains(&metric), "rule {name} names {metric}, which nothing emits");
        }
    }
}

#[test]
fn every_dashboard_query_parses_and_names_only_metrics_we_emit() {
    let (rules_dir, _) = rendered("rules");
    let recorded: BTreeSet<String> = yaml(&rules_dir.path().join("stella-telemetry.rules.yml"))["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().into_iter().flatten())
        .filter_map(|rule| rule["record"].as_str().map(str::to_string))
        .collect();
    let known = known_metrics(&recorded);
    let (_dir, files) = rendered("dashboards");
    assert!(files.len() >= 6, "{files:?}");
    let (mut titles, mut used) = (BTreeSet::new(), BTreeSet::new());
    for file in &files {
        let dashboard: Value = serde_json::from_slice(&std::fs::read(file).unwrap_or_default())
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        assert!(dashboard["schemaVersion"].as_u64().is_some_and(|version| version >= 39), "{}", file.display());
        assert!(titles.insert(dashboard["uid"].as_str().unwrap_or_default().to_string()), "uids are unique");
        let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
        assert!(!panels.is_empty(), "{}", file.display());
        let mut queries = 0;
        for panel in panels.iter().chain(
            panels
                .iter()
                .flat_map(|panel| panel["panels"].as_array().cloned().unwrap_or_default().into_iter())
                .collect::<Vec<_>>()
                .iter(),
        ) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str() else { continue };
                queries += 1;
                let context = format!("{} / {}", file.display(), panel["title"].as_str().unwrap_or_default());
                for metric in parse(expr, &context) {
                    assert!(known.contains(&metric), "{context}: {metric} is not a metric we emit");
                    used.insert(metric);
                }
            }
        }
        assert!(queries > 0, "{} has no query", file.display());
    }
    let lead_time_buckets = format!("{}_bucket", stella_metrics::names::DORA_LEAD_TIME);
    for family in [
        stella_metrics::names::RECEIVER_ACCEPTED_ITEMS,
        stella_metrics::names::INCIDENT_MODE,
        stella_metrics::names::STORE_BYTES,
        lead_time_buckets.as_str(),
    ] {
        assert!(used.contains(family), "no dashboard shows {family}: {used:?}");
    }
}

#[test]
fn rules_test_agrees_with_promtool_on_the_shipped_tests_and_on_a_broken_one() {
    let (dir, files) = rendered("rules");
    let tests: Vec<String> = files
        .iter()
        .filter(|file| file.to_string_lossy().ends_with(".test.yml"))
        .map(|file| file.strip_prefix(dir.path()).unwrap_or(file).to_string_lossy().into_owned())
        .collect();
    let stella = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stella"))
            .args(["telemetry", "rules", "test"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let passed = stella(&tests.iter().map(String::as_str).collect::<Vec<_>>());
    let text = String::from_utf8_lossy(&passed.stdout);
    assert!(passed.status.success(), "{text}{}", String::from_utf8_lossy(&passed.stderr));
    assert_eq!(text.matches("  SUCCESS").count(), tests.len(), "{text}");

    // One expectation changed: promtool and stella both fail it, and say which alert and when.
    let original = std::fs::read_to_string(dir.path().join("tests/incident-bundles.test.yml")).unwrap();
    let broken = original.replacen("summary: \"Incident mode is on\"", "summary: \"Incident mode is off\"", 1);
    assert_ne!(broken, original);
    std::fs::write(dir.path().join("tests/broken.test.yml"), broken).unwrap();
    let promtool = Command::new("promtool")
        .args(["test", "rules", "tests/broken.test.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!promtool.status.success(), "promtool accepted the broken test");
    let failed = stella(&["tests/broken.test.yml", "--json"]);
    assert_eq!(failed.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&failed.stdout).unwrap();
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{report}");
    assert!(failures[0].as_str().unwrap().starts_with("alertname: StellaIncidentModeOn, time: 15m"), "{report}");
}
