//! Rules on the embedded store: the groups of `rules.files` evaluated at their intervals (aligned to
//! multiples of the interval) over the series of `rules.tenant` by [`stella_query::rules`]; what they
//! record and their `ALERTS` / `ALERTS_FOR_STATE` series written back into the store (with staleness
//! markers when a series ends); firing and resolved alerts POSTed to every `alerting.alertmanagers`
//! (`/api/v2/alerts`, through the egress policy, retried); Prometheus's rule-manager meta-metrics; and
//! `GET /api/v1/rules` and `/api/v1/alerts` answering as Prometheus answers (Grafana's alert list
//! reads them).
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};
use stella_collector::jobs::stopped_during;
use stella_collector::{OwnMetricsError, attribute};
use stella_metrics::names;
use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use stella_otlp::proto::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use stella_otlp::proto::resource::v1::Resource;
use stella_query::prometheus::LabelSet;
use stella_query::promql::Options;
use stella_query::rules::{self, Alert, AlertState, Group, GroupState, Health, RuleKind, Schedule};

use crate::ApiState;
use crate::prometheus::{Parameters, bad_data, store_source};

/// Attempts per Alertmanager per batch of alerts.
const SEND_ATTEMPTS: u32 = 3;
/// How long one evaluation may run.
const EVALUATION_TIMEOUT: Duration = Duration::from_secs(60);

/// One group, its state and when it is due.
struct GroupRun {
    group: Group,
    state: GroupState,
    /// The next evaluation time (unix milliseconds, a multiple of the interval).
    next: i64,
}

/// The rule groups the server evaluates and what it knows of them: shared by the evaluation job and the
/// API routes.
#[derive(Default)]
pub struct RuleBook {
    runs: Mutex<Vec<GroupRun>>,
}

impl RuleBook {
    /// The groups and their states now.
    fn snapshot(&self) -> Vec<(Group, GroupState)> {
        let runs = self.runs.lock().unwrap_or_else(|poison| poison.into_inner());
        runs.iter().map(|run| (run.group.clone(), run.state.clone())).collect()
    }

    /// Makes the book hold `groups` (the config's), keeping the state of groups that did not change.
    fn sync(&self, groups: &[Group], interval: Duration, now: i64) {
        let mut runs = self.runs.lock().unwrap_or_else(|poison| poison.into_inner());
        if runs.len() == groups.len() && runs.iter().zip(groups).all(|(run, group)| run.group == *group) {
            return;
        }
        let mut old = std::mem::take(&mut *runs);
        for group in groups {
            let kept = old.iter().position(|run| run.group == *group).map(|at| old.swap_remove(at));
            runs.push(kept.unwrap_or_else(|| {
                let every = interval_ms(group, interval);
                GroupRun { group: group.clone(), state: GroupState::default(), next: now.div_euclid(every) * every }
            }));
        }
    }
}

fn interval_ms(group: &Group, default: Duration) -> i64 {
    i64::try_from(group.interval.unwrap_or(default).as_millis()).unwrap_or(i64::MAX).max(1000)
}

/// Prometheus's `rule_group` label: `<file>;<group>`.
fn group_key(group: &Group) -> String {
    format!("{};{}", group.file, group.name)
}

/// Starts evaluating the configured rules as a job of the collector (the config is read again every
/// second, so a reload applies).
pub fn spawn_evaluation(state: &ApiState) {
    let api = state.clone();
    state.collector.spawn_job("rule evaluation", |stop| async move {
        let http = match stella_export::http_client::plain() {
            Ok(http) => http,
            Err(error) => {
                tracing::error!(%error, "rule evaluation cannot start: no HTTP client for Alertmanager");
                return;
            }
        };
        while !stopped_during(&stop, Duration::from_secs(1)).await {
            let config = api.collector.config();
            let now = Timestamp::now().as_millisecond();
            api.rules.sync(&config.rules.groups, config.rules.interval, now);
            let due: Vec<usize> = {
                let runs = api.rules.runs.lock().unwrap_or_else(|poison| poison.into_inner());
                runs.iter().enumerate().filter(|(_, run)| run.next <= now).map(|(index, _)| index).collect()
            };
            for index in due {
                evaluate_one(&api, &http, index, now).await;
            }
        }
    });
}

/// Evaluates group `index` of the book at its due time, writes its series and sends its alerts.
async fn evaluate_one(api: &ApiState, http: &reqwest::Client, index: usize, now: i64) {
    let config = api.collector.config();
    let taken = {
        let mut runs = api.rules.runs.lock().unwrap_or_else(|poison| poison.into_inner());
        runs.get_mut(index).map(|run| {
            let every = interval_ms(&run.group, config.rules.interval);
            let latest = now.div_euclid(every) * every;
            let missed = (latest - run.next) / every;
            run.next = latest + every;
            (run.group.clone(), std::mem::take(&mut run.state), latest, missed, every)
        })
    };
    let Some((group, mut state, time, missed, every)) = taken else { return };
    let key = group_key(&group);
    let registry = &api.registry;
    if missed > 0 {
        registry
            .counter(
                names::RULE_GROUP_ITERATIONS_MISSED,
                "Rule group evaluations skipped because one ran late.",
                &["rule_group"],
            )
            .with(&[&key])
            .add(u64::try_from(missed).unwrap_or(0));
    }
    let stores = Arc::clone(api.collector.stores());
    let tenant = config.rules.tenant.clone();
    let max_samples = config.api.limits.max_samples;
    let schedule = Schedule {
        interval: Duration::from_millis(u64::try_from(every).unwrap_or(60_000)),
        resend_delay: config.alerting.resend_delay,
    };
    let evaluated = tokio::task::spawn_blocking(move || {
        let options = Options { deadline: Some(std::time::Instant::now() + EVALUATION_TIMEOUT), ..Options::default() };
        let outcome = rules::evaluate(
            &group,
            &mut state,
            &store_source(stores.as_ref(), &tenant, max_samples),
            time,
            schedule,
            options,
        );
        (group, state, outcome)
    })
    .await;
    let Ok((group, state, outcome)) = evaluated else { return };
    registry
        .counter(names::RULE_EVALUATIONS, "Rule evaluations, by rule group.", &["rule_group"])
        .with(&[&key])
        .add(group.rules.len() as u64);
    let failures = state.rules.iter().filter(|rule| matches!(rule.health, Health::Err(_))).count();
    registry
        .counter(names::RULE_EVALUATION_FAILURES, "Rule evaluations that failed, by rule group.", &["rule_group"])
        .with(&[&key])
        .add(failures as u64);
    registry
        .float_gauge(
            names::RULE_GROUP_LAST_DURATION,
            "How long the last evaluation of a rule group took.",
            &["rule_group"],
        )
        .with(&[&key])
        .set(state.evaluation_seconds);
    for (rule, rule_state) in group.rules.iter().zip(&state.rules) {
        if let Health::Err(error) = &rule_state.health {
            tracing::warn!(rule_group = %key, rule = %rule.name, %error, "rule evaluation failed");
        }
    }
    {
        let mut runs = api.rules.runs.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(run) = runs.get_mut(index).filter(|run| run.group == group) {
            run.state = state;
        }
    }
    if !outcome.series.is_empty() || !outcome.ended.is_empty() {
        let request = series_request(&outcome.series, &outcome.ended, time);
        match api.collector.write_own_metrics(&config.rules.tenant, request).await {
            Ok(_) | Err(OwnMetricsError::Stopping) => {}
            Err(error) => {
                tracing::warn!(rule_group = %key, %error, "what the rules recorded is not written into the store")
            }
        }
    }
    if !outcome.notifications.is_empty() {
        send(api, http, &group, &outcome.notifications).await;
    }
}

/// Series at `time_ms` as an OTLP request the store's translation turns back into exactly these
/// labels: `job` and `instance` go on the resource, the rest are attributes of gauge points; ended
/// series get a point flagged "no recorded value" (a staleness marker).
fn series_request(series: &[(LabelSet, f64)], ended: &[LabelSet], time_ms: i64) -> ExportMetricsServiceRequest {
    let nanos = u64::try_from(time_ms).unwrap_or(0).saturating_mul(1_000_000);
    type Resource2 = (Option<String>, Option<String>);
    let mut by_resource: BTreeMap<Resource2, BTreeMap<String, Vec<NumberDataPoint>>> = BTreeMap::new();
    let points =
        series.iter().map(|(labels, value)| (labels, Some(*value))).chain(ended.iter().map(|labels| (labels, None)));
    for (labels, value) in points {
        let get = |name: &str| labels.iter().find(|(label, _)| label == name).map(|(_, value)| value.clone());
        let Some(name) = get("__name__") else { continue };
        let attributes = labels
            .iter()
            .filter(|(label, _)| !matches!(label.as_str(), "__name__" | "job" | "instance"))
            .map(|(label, value)| attribute(label, value))
            .collect();
        let point = NumberDataPoint {
            attributes,
            time_unix_nano: nanos,
            value: value.map(number_data_point::Value::AsDouble),
            flags: if value.is_none() { 1 } else { 0 },
            ..Default::default()
        };
        by_resource.entry((get("job"), get("instance"))).or_default().entry(name).or_default().push(point);
    }
    let resource_metrics = by_resource
        .into_iter()
        .map(|((job, instance), metrics)| {
            let mut attributes = Vec::new();
            if let Some(job) = job {
                attributes.push(attribute("service.name", &job));
            }
            if let Some(instance) = instance {
                attributes.push(attribute("service.instance.id", &instance));
            }
            let metrics = metrics
                .into_iter()
                .map(|(name, data_points)| Metric {
                    name,
                    data: Some(metric::Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                })
                .collect();
            ResourceMetrics {
                resource: Some(Resource { attributes, ..Default::default() }),
                scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// An alert as Alertmanager's v2 API takes it.
fn alertmanager_alert(alert: &Alert, generator: &str) -> Value {
    let starts = alert.fired_at.unwrap_or(alert.active_at);
    let ends = alert.resolved_at.unwrap_or(alert.valid_until);
    json!({
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
        "generatorURL": generator,
    })
}

fn rfc3339(millis: i64) -> String {
    Timestamp::from_millisecond(millis).map(|at| at.to_string()).unwrap_or_default()
}

/// POSTs `alerts` of `group` to every configured Alertmanager (egress permitting), retried.
async fn send(api: &ApiState, http: &reqwest::Client, group: &Group, alerts: &[Alert]) {
    let config = api.collector.config();
    let endpoint = config.api.endpoint;
    let body: Vec<Value> = alerts
        .iter()
        .map(|alert| {
            let rule = group.rules.iter().find(|rule| alert.labels.get("alertname") == Some(&rule.name));
            let expr = rule.map(|rule| rule.query.trim().to_string()).unwrap_or_default();
            let generator = format!(
                "http://{endpoint}/graph?g0.expr={}&g0.tab=1",
                form_urlencoded::byte_serialize(expr.as_bytes()).collect::<String>()
            );
            alertmanager_alert(alert, &generator)
        })
        .collect();
    let sent = api.registry.counter(names::NOTIFICATIONS_SENT, "Alerts sent to an Alertmanager.", &["alertmanager"]);
    let errors = api.registry.counter(
        names::NOTIFICATIONS_ERRORS,
        "Alerts that could not be sent to an Alertmanager.",
        &["alertmanager"],
    );
    for base in &config.alerting.alertmanagers {
        let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        if let Err(denied) = config.egress.check(&url) {
            tracing::warn!(event = "egress.sealed_blocked", component = "alerting", endpoint = %url, reason = denied.reason(), "egress policy: alerts are not sent");
            errors.with(&[base]).add(alerts.len() as u64);
            continue;
        }
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=SEND_ATTEMPTS {
            let outcome = http.post(&url).timeout(config.alerting.timeout).json(&body).send().await;
            let failure = match outcome {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => Some(format!("status {}", response.status().as_u16())),
                Err(error) => Some(if error.is_timeout() { "timeout".into() } else { "unreachable".into() }),
            };
            match failure {
                None => {
                    sent.with(&[base]).add(alerts.len() as u64);
                    break;
                }
                Some(reason) if attempt == SEND_ATTEMPTS => {
                    tracing::error!(alertmanager = %base, %reason, alerts = alerts.len(), "alerts could not be sent");
                    errors.with(&[base]).add(alerts.len() as u64);
                }
                Some(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
    }
}

/// Go's `%e` with the shortest precision, as Prometheus writes an alert's value (`1e+00`).
fn go_exponent(value: f64) -> String {
    if !value.is_finite() {
        return stella_query::promql::format_value(value);
    }
    let text = format!("{value:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    format!("{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs())
}

fn time_or_zero(millis: Option<i64>) -> String {
    millis.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), rfc3339)
}

fn alert_json(alert: &Alert) -> Value {
    json!({
        "labels": alert.labels,
        "annotations": alert.annotations,
        "state": alert.state.name(),
        "activeAt": rfc3339(alert.active_at),
        "value": go_exponent(alert.value),
    })
}

/// `GET /api/v1/rules`: every group with its rules, their health and alerts (`type=alert|record` keeps
/// one kind).
pub(crate) async fn list_rules(
    axum::extract::State(state): axum::extract::State<ApiState>,
    parameters: Parameters,
) -> Response {
    let kind = match parameters.one("type") {
        None | Some("") => None,
        Some("alert") => Some("alerting"),
        Some("record") => Some("recording"),
        Some(other) => {
            return bad_data(format!("invalid parameter \"type\": {other:?} is not alert or record")).into_response();
        }
    };
    let groups: Vec<Value> = state
        .rules
        .snapshot()
        .into_iter()
        .map(|(group, group_state)| {
            let interval = group.interval.unwrap_or(state.collector.config().rules.interval).as_secs_f64();
            let rules: Vec<Value> = group
                .rules
                .iter()
                .zip(group_state.rules.iter().map(Some).chain(std::iter::repeat(None)))
                .filter(|(rule, _)| kind.is_none_or(|kind| rule.type_name() == kind))
                .map(|(rule, rule_state)| {
                    let (health, error) = match rule_state.map(|state| &state.health) {
                        Some(Health::Ok) => ("ok", None),
                        Some(Health::Err(error)) => ("err", Some(error.clone())),
                        Some(Health::Unknown) | None => ("unknown", None),
                    };
                    let labels: BTreeMap<&String, String> = rule
                        .labels
                        .iter()
                        .map(|(name, template)| {
                            let empty = BTreeMap::new();
                            (name, template.expand(rules::template::Data { labels: &empty, value: 0.0 }))
                        })
                        .collect();
                    let mut out = json!({
                        "name": rule.name,
                        "query": rule.expr.to_string(),
                        "health": health,
                        "evaluationTime": rule_state.map_or(0.0, |state| state.evaluation_seconds),
                        "lastEvaluation": time_or_zero(rule_state.and_then(|state| state.last_evaluation)),
                        "type": rule.type_name(),
                    });
                    if let Some(error) = error {
                        out["lastError"] = json!(error);
                    }
                    if !labels.is_empty() || matches!(rule.kind, RuleKind::Alerting { .. }) {
                        out["labels"] = json!(labels);
                    }
                    if let RuleKind::Alerting { hold, keep_firing_for, annotations } = &rule.kind {
                        let alerts: Vec<&Alert> = rule_state
                            .map(|state| {
                                state.alerts.values().filter(|alert| alert.state != AlertState::Inactive).collect()
                            })
                            .unwrap_or_default();
                        let firing = alerts.iter().any(|alert| alert.state == AlertState::Firing);
                        let pending = alerts.iter().any(|alert| alert.state == AlertState::Pending);
                        out["state"] = json!(if firing {
                            "firing"
                        } else if pending {
                            "pending"
                        } else {
                            "inactive"
                        });
                        out["duration"] = json!(hold.as_secs_f64());
                        out["keepFiringFor"] = json!(keep_firing_for.as_secs_f64());
                        let raw: BTreeMap<&String, String> = annotations
                            .iter()
                            .map(|(name, template)| {
                                let empty = BTreeMap::new();
                                (name, template.expand(rules::template::Data { labels: &empty, value: 0.0 }))
                            })
                            .collect();
                        out["annotations"] = json!(raw);
                        out["alerts"] = Value::Array(alerts.into_iter().map(alert_json).collect());
                    }
                    out
                })
                .collect();
            json!({
                "name": group.name,
                "file": group.file,
                "rules": rules,
                "interval": interval,
                "limit": group.limit,
                "evaluationTime": group_state.evaluation_seconds,
                "lastEvaluation": time_or_zero(group_state.last_evaluation),
            })
        })
        .collect();
    axum::Json(json!({"status": "success", "data": {"groups": groups}})).into_response()
}

/// `GET /api/v1/alerts`: the pending and firing alerts.
pub(crate) async fn list_alerts(axum::extract::State(state): axum::extract::State<ApiState>) -> Response {
    let alerts: Vec<Value> = state
        .rules
        .snapshot()
        .iter()
        .flat_map(|(_, group_state)| group_state.rules.iter())
        .flat_map(|rule| rule.alerts.values())
        .filter(|alert| alert.state != AlertState::Inactive)
        .map(alert_json)
        .collect();
    axum::Json(json!({"status": "success", "data": {"alerts": alerts}})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stella_otlp::prometheus::{Dropped, Naming, translate};

    #[test]
    fn recorded_series_and_stale_markers_come_back_from_the_translation_with_their_labels() {
        let labels = |pairs: &[(&str, &str)]| -> LabelSet {
            let mut set: LabelSet = pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
            set.sort();
            set
        };
        let recorded = labels(&[("__name__", "job:errors:ratio_rate5m"), ("job", "shop/cart"), ("team", "core")]);
        let alert =
            labels(&[("__name__", "ALERTS"), ("alertname", "High"), ("alertstate", "firing"), ("instance", "a:1")]);
        let ended = labels(&[("__name__", "gone"), ("job", "x")]);
        let request =
            series_request(&[(recorded.clone(), 0.25), (alert.clone(), 1.0)], std::slice::from_ref(&ended), 60_000);
        let naming = Naming { namespace: None, add_suffixes: true };
        let back: Vec<(LabelSet, u64, i64)> = translate(&request, &naming, &mut Dropped::default())
            .into_iter()
            .map(|series| {
                let labels = series.labels.into_iter().map(|label| (label.name, label.value)).collect();
                (labels, series.samples[0].value.to_bits(), series.samples[0].timestamp)
            })
            .collect();
        assert!(back.contains(&(recorded, 0.25f64.to_bits(), 60_000)), "{back:?}");
        assert!(back.contains(&(alert, 1.0f64.to_bits(), 60_000)), "{back:?}");
        assert!(back.contains(&(ended, stella_otlp::prometheus::STALE_NAN, 60_000)), "{back:?}");
        assert_eq!(back.len(), 3);
    }

    #[test]
    fn alert_values_are_written_as_prometheus_writes_them() {
        assert_eq!(go_exponent(1.0), "1e+00");
        assert_eq!(go_exponent(55.0), "5.5e+01");
        assert_eq!(go_exponent(0.001), "1e-03");
        assert_eq!(time_or_zero(None), "0001-01-01T00:00:00Z");
    }
}
