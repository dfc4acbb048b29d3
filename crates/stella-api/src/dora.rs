//! `/telemetry/dora/*`: deployment and incident events in (idempotent by id, per-item results), the
//! executive report out (JSON, Markdown, HTML, CSV), and the `dora_*` metrics. The computation is
//! `stella_dora`'s; events live in the state database's replace-by-id tables.
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use stella_collector::auth::Principal;
use stella_collector::config::DoraConfig;
use stella_dora::{Deployment, DoraSettings, Incident, Outcome, Preset, SloTargets, Window};
use stella_metrics::{CounterVec, HistogramVec, Registry, names};
use stella_store::tables::{RecordRepository, RedbRecords};

use crate::{ApiError, ApiState, bad_request, blocking, internal, tenant_of};

/// The table of deployment events.
const DEPLOYMENTS: &str = "dora.deployments";
/// The table of incident events.
const INCIDENTS: &str = "dora.incidents";
/// Most events in one request.
const MAX_EVENTS: usize = 10_000;
/// Buckets of the lead-time and recovery histograms, hours (the issue's).
const HOUR_BUCKETS: &[f64] = &[1.0, 4.0, 24.0, 168.0, 720.0, 4380.0];
/// How often the trailing-window gauges are recomputed (and retention runs).
const REFRESH: Duration = Duration::from_secs(60);

/// The settings `stella_dora` computes with, from the `dora` config.
pub fn settings(config: &DoraConfig) -> DoraSettings {
    let preset = config.classification.as_ref().map_or_else(Preset::seed_default, |preset| Preset {
        name: preset.name.clone(),
        deployment_frequency_per_day: preset.deployment_frequency_per_day,
        lead_time_hours: preset.lead_time_hours,
        change_failure_rate_percent: preset.change_failure_rate_percent,
        mttr_hours: preset.mttr_hours,
    });
    DoraSettings {
        production_environments: config.production_environments.clone(),
        link_window: config.link_window,
        severities: config.severities.clone(),
        slo: SloTargets {
            lead_time_slo_hours: config.slo.lead_time_slo_hours,
            deployment_frequency_slo_per_day: config.slo.deployment_frequency_slo_per_day,
            change_failure_rate_slo_percent: config.slo.change_failure_rate_slo_percent,
            mttr_slo_hours: config.slo.mttr_slo_hours,
        },
        preset,
    }
}

/// The `dora_*` families.
#[derive(Clone)]
pub struct DoraMetrics {
    deployments: CounterVec,
    failures: CounterVec,
    lead_time: HistogramVec,
    recovery: HistogramVec,
    breaches: CounterVec,
    frequency: stella_metrics::FloatGaugeVec,
    failure_rate: stella_metrics::FloatGaugeVec,
}

impl DoraMetrics {
    /// Registers (or finds) the families in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let labels: &'static [&'static str] = &["tenant", "environment", "service"];
        DoraMetrics {
            deployments: registry.counter(names::DORA_DEPLOYMENTS, "Deployments recorded.", labels),
            failures: registry.counter(
                names::DORA_DEPLOYMENT_FAILURES,
                "Deployments recorded as failed or rolled back.",
                labels,
            ),
            lead_time: registry.histogram(
                names::DORA_LEAD_TIME,
                "Lead time for changes of successful production deployments, hours.",
                labels,
                HOUR_BUCKETS,
            ),
            recovery: registry.histogram(
                names::DORA_TIME_TO_RECOVERY,
                "Time to recovery of resolved production incidents, hours.",
                labels,
                HOUR_BUCKETS,
            ),
            breaches: registry.counter(
                names::DORA_SLO_BREACHES,
                "DORA evaluations that found an SLO breached, by metric.",
                &["tenant", "metric"],
            ),
            frequency: registry.float_gauge(
                names::DORA_DEPLOYMENT_FREQUENCY,
                "Successful production deployments per day over dora.metrics_window.",
                labels,
            ),
            failure_rate: registry.float_gauge(
                names::DORA_CHANGE_FAILURE_RATE,
                "Change failure rate, percent, over dora.metrics_window.",
                labels,
            ),
        }
    }
}

fn storage(error: impl std::fmt::Display) -> ApiError {
    internal("dora.storage", error)
}

/// The events of a body: one JSON object or an array of them.
fn events(body: &[u8]) -> Result<Vec<Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        bad_request(
            "dora.invalid_json",
            format!("the body is not JSON ({error}); send one event object or an array of them"),
        )
    })?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        other => {
            return Err(bad_request(
                "dora.invalid_json",
                format!("expected an event object or an array of them, found {other}"),
            ));
        }
    };
    if items.len() > MAX_EVENTS {
        return Err(bad_request(
            "dora.too_many_events",
            format!("{} events in one request; send at most {MAX_EVENTS}", items.len()),
        ));
    }
    Ok(items)
}

/// Refuses the whole request when an event names another tenant than the credential's.
fn check_tenants(items: &[Value], tenant: &str) -> Result<(), ApiError> {
    for (index, item) in items.iter().enumerate() {
        if let Some(named) = item.get("tenant").and_then(Value::as_str).filter(|named| *named != tenant) {
            return Err(ApiError {
                status: StatusCode::FORBIDDEN,
                code: "auth.tenant_mismatch",
                message: format!(
                    "event {index} names tenant {named:?}, but this credential's tenant is {tenant:?}; leave the tenant out or use that tenant's token"
                ),
            });
        }
    }
    Ok(())
}

/// One event's result in a batch answer.
fn refused(index: usize, id: Option<&str>, error: &stella_dora::EventError) -> Value {
    json!({"index": index, "id": id, "status": "refused", "code": error.code(), "field": error.field, "message": error.message})
}

/// Stores `parsed` (index, id, time, event) in one transaction and builds the batch answer.
fn store<T: serde::Serialize>(
    table: &RedbRecords,
    tenant: &str,
    parsed: &[(usize, &str, jiff::Timestamp, &T)],
    mut results: Vec<(usize, Value)>,
) -> Result<(Vec<bool>, (StatusCode, Value)), ApiError> {
    let encoded: Vec<Vec<u8>> =
        parsed.iter().map(|(_, _, _, event)| serde_json::to_vec(event).unwrap_or_default()).collect();
    let rows: Vec<(&str, jiff::Timestamp, &[u8])> =
        parsed.iter().zip(&encoded).map(|((_, id, at, _), bytes)| (*id, *at, bytes.as_slice())).collect();
    let replaced = table.put_many(tenant, &rows).map_err(storage)?;
    for ((index, id, _, _), replaced) in parsed.iter().zip(&replaced) {
        let status = if *replaced { "replaced" } else { "recorded" };
        results.push((*index, json!({"index": index, "id": id, "status": status})));
    }
    results.sort_by_key(|(index, _)| *index);
    let refused = results.iter().filter(|(_, result)| result["status"] == "refused").count();
    let answer = json!({
        "recorded": replaced.iter().filter(|replaced| !**replaced).count(),
        "replaced": replaced.iter().filter(|replaced| **replaced).count(),
        "refused": refused,
        "results": results.into_iter().map(|(_, result)| result).collect::<Vec<_>>(),
    });
    let status = if parsed.is_empty() && refused > 0 { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok((replaced, (status, answer)))
}

/// What recording events needs: the tables, the settings, the metrics.
#[derive(Clone)]
pub struct Ingest {
    deployments: RedbRecords,
    incidents: RedbRecords,
    settings: DoraSettings,
    metrics: DoraMetrics,
}

impl Ingest {
    /// For the running collector of `state`.
    fn of(state: &ApiState) -> Ingest {
        Ingest::new(&state.collector, &state.registry)
    }

    /// For `collector`, counting into `registry`.
    pub fn new(collector: &stella_collector::Collector, registry: &Registry) -> Ingest {
        Ingest {
            deployments: collector.records(DEPLOYMENTS),
            incidents: collector.records(INCIDENTS),
            settings: settings(&collector.config().dora),
            metrics: DoraMetrics::new(registry),
        }
    }

    /// Parses and records deployment events of `tenant` in one transaction: the batch answer.
    pub(crate) fn deployments(&self, tenant: &str, items: &[Value]) -> Result<(StatusCode, Value), ApiError> {
        let (mut accepted, mut results) = (Vec::new(), Vec::new());
        for (index, item) in items.iter().enumerate() {
            match stella_dora::parse_deployment(item) {
                Ok(deployment) => accepted.push((index, deployment)),
                Err(error) => results.push((index, refused(index, item.get("id").and_then(Value::as_str), &error))),
            }
        }
        let parsed: Vec<(usize, &str, jiff::Timestamp, &Deployment)> =
            accepted.iter().map(|(index, event)| (*index, event.id.as_str(), event.finished, event)).collect();
        let (replaced, answer) = store(&self.deployments, tenant, &parsed, results)?;
        for ((_, deployment), replaced) in accepted.iter().zip(replaced) {
            if !replaced {
                count_deployment(&self.metrics, &self.settings, tenant, deployment);
            }
        }
        Ok(answer)
    }

    /// Parses and records incident events of `tenant` in one transaction: the batch answer.
    pub(crate) fn incidents(&self, tenant: &str, items: &[Value]) -> Result<(StatusCode, Value), ApiError> {
        let (mut accepted, mut results) = (Vec::new(), Vec::new());
        for (index, item) in items.iter().enumerate() {
            match stella_dora::parse_incident(item, &self.settings.severities) {
                Ok(incident) => accepted.push((index, incident)),
                Err(error) => results.push((index, refused(index, item.get("id").and_then(Value::as_str), &error))),
            }
        }
        // Recovery is observed once: when an incident is first known resolved.
        let mut newly_resolved = Vec::new();
        for (_, incident) in &accepted {
            if incident.resolved.is_some() && self.settings.is_production(&incident.environment) {
                let was_resolved =
                    self.incident(tenant, &incident.id)?.is_some_and(|earlier| earlier.resolved.is_some());
                if !was_resolved && !newly_resolved.contains(&incident.id) {
                    newly_resolved.push(incident.id.clone());
                }
            }
        }
        let parsed: Vec<(usize, &str, jiff::Timestamp, &Incident)> =
            accepted.iter().map(|(index, event)| (*index, event.id.as_str(), event.started, event)).collect();
        let (_, answer) = store(&self.incidents, tenant, &parsed, results)?;
        for (_, incident) in accepted.iter().filter(|(_, incident)| newly_resolved.contains(&incident.id)) {
            if let Some(resolved) = incident.resolved {
                let hours = stella_dora::hours(incident.started, resolved);
                self.metrics.recovery.with(&[tenant, &incident.environment, &incident.service]).observe(hours);
            }
        }
        Ok(answer)
    }

    /// `tenant`'s stored incident `id`.
    pub(crate) fn incident(&self, tenant: &str, id: &str) -> Result<Option<Incident>, ApiError> {
        let record = self.incidents.get(tenant, id).map_err(storage)?;
        Ok(record.and_then(|record| serde_json::from_slice::<Incident>(&record.value).ok()))
    }
}

fn answer(result: Result<(StatusCode, Value), ApiError>) -> Response {
    match result {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST /telemetry/dora/deployments`.
pub(crate) async fn record_deployments(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Bytes,
) -> Response {
    answer(ingest(&state, principal.as_deref(), &body, Ingest::deployments).await)
}

/// `POST /telemetry/dora/incidents`.
pub(crate) async fn record_incidents(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Bytes,
) -> Response {
    answer(ingest(&state, principal.as_deref(), &body, Ingest::incidents).await)
}

/// Records a batch of one kind of event for a tenant: [`Ingest::deployments`] or [`Ingest::incidents`].
type Recorder = fn(&Ingest, &str, &[Value]) -> Result<(StatusCode, Value), ApiError>;

/// Checks a batch's tenancy, then records it on a blocking thread with `record`.
async fn ingest(
    state: &ApiState,
    principal: Option<&Principal>,
    body: &[u8],
    record: Recorder,
) -> Result<(StatusCode, Value), ApiError> {
    let tenant = tenant_of(principal, None)?;
    let items = events(body)?;
    check_tenants(&items, &tenant)?;
    let ingest = Ingest::of(state);
    blocking("dora.failed", move || record(&ingest, &tenant, &items)).await
}

/// The counters and the lead-time histogram of a newly recorded deployment.
fn count_deployment(metrics: &DoraMetrics, settings: &DoraSettings, tenant: &str, deployment: &Deployment) {
    let labels = [tenant, &*deployment.environment, &*deployment.service];
    metrics.deployments.with(&labels).inc();
    if matches!(deployment.outcome, Outcome::Failed | Outcome::RolledBack) {
        metrics.failures.with(&labels).inc();
    }
    if deployment.outcome == Outcome::Succeeded && settings.is_production(&deployment.environment) {
        let histogram = metrics.lead_time.with(&labels);
        for commit in &deployment.commits {
            let hours = stella_dora::hours(commit.time, deployment.finished);
            if hours > 0.0 {
                histogram.observe(hours);
            }
        }
    }
}

/// `tenant`'s events, their repeated names shared ([`stella_dora::Names`]).
fn load(
    deployments: &RedbRecords,
    incidents: &RedbRecords,
    tenant: &str,
) -> Result<(Vec<Deployment>, Vec<Incident>), ApiError> {
    let decode = |kind: &str, id: &str, error: serde_json::Error| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "dora.damaged_record",
        message: format!("stored {kind} {id:?} cannot be read ({error}); re-send the event to replace it"),
    };
    // Decoded record by record as redb hands them over; the first damaged one fails the load.
    let mut names = stella_dora::Names::default();
    let mut failure = None;
    let (mut loaded, mut known) = (Vec::new(), Vec::new());
    deployments
        .for_each(tenant, &mut |id, _, bytes| {
            match serde_json::from_slice::<Deployment>(bytes) {
                Ok(mut deployment) => {
                    names.deployment(&mut deployment);
                    loaded.push(deployment);
                }
                Err(error) => {
                    failure.get_or_insert_with(|| decode("deployment", id, error));
                }
            }
            Ok(())
        })
        .map_err(storage)?;
    incidents
        .for_each(tenant, &mut |id, _, bytes| {
            match serde_json::from_slice::<Incident>(bytes) {
                Ok(mut incident) => {
                    names.incident(&mut incident);
                    known.push(incident);
                }
                Err(error) => {
                    failure.get_or_insert_with(|| decode("incident", id, error));
                }
            }
            Ok(())
        })
        .map_err(storage)?;
    match failure {
        Some(error) => Err(error),
        None => Ok((loaded, known)),
    }
}

/// The parameters of `GET /telemetry/dora/report`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    tz: Option<String>,
    #[serde(default)]
    as_of: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// `GET /telemetry/dora/report?from=&to=&tz=&as_of=&environment=&format=json|md|html|csv`.
pub(crate) async fn report(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match build_report(&state, principal.as_deref(), query).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn build_report(
    state: &ApiState,
    principal: Option<&Principal>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        bad_request(
            "dora.invalid_query",
            format!("{}; valid: from, to, tz, as_of, environment, format, tenant", rejection.body_text()),
        )
    })?;
    let tenant = tenant_of(principal, query.tenant.as_deref())?;
    let format = query.format.as_deref().unwrap_or("json").to_string();
    if !["json", "md", "html", "csv"].contains(&format.as_str()) {
        return Err(bad_request("dora.invalid_query", format!("format={format:?}; use json, md, html or csv")));
    }
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let to = query.to.clone().unwrap_or_else(|| now.to_string());
    let from = match &query.from {
        Some(from) => from.clone(),
        None => (now - jiff::SignedDuration::from_hours(30 * 24)).to_string(),
    };
    let window = Window::parse(&from, &to, query.tz.as_deref(), query.as_of.as_deref())
        .map_err(|error| bad_request("dora.invalid_window", error.to_string()))?;
    let settings = settings(&state.collector.config().dora);
    let (deployments, incidents) = (state.collector.records(DEPLOYMENTS), state.collector.records(INCIDENTS));
    let metrics = DoraMetrics::new(&state.registry);
    let environment = query.environment.clone();
    blocking("dora.failed", move || {
        let (deployments, incidents) = load(&deployments, &incidents, &tenant)?;
        let report = stella_dora::report(&tenant, &deployments, &incidents, &settings, &window, environment.as_deref());
        for metric in report.breaches() {
            metrics.breaches.with(&[&tenant, metric]).inc();
        }
        let (content_type, body) = match format.as_str() {
            "md" => ("text/markdown; charset=utf-8", stella_dora::render::markdown(&report).into_bytes()),
            "html" => ("text/html; charset=utf-8", stella_dora::render::html(&report).into_bytes()),
            "csv" => ("text/csv; charset=utf-8", stella_dora::render::csv(&report).into_bytes()),
            _ => ("application/json", stella_evidence::canonical::to_vec(&report).map_err(storage)?),
        };
        Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
    })
    .await
}

/// Every `REFRESH`: the trailing-window gauges per tenant, environment and service (each evaluation
/// counts its SLO breaches), and the retention sweep of old events. Runs until the collector stops.
pub fn spawn_refresh(state: ApiState) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REFRESH).await;
            if state.collector.is_stopping() {
                return;
            }
            let state = state.clone();
            let refreshed = tokio::task::spawn_blocking(move || refresh(&state)).await;
            if let Ok(Err(error)) = refreshed {
                tracing::warn!(code = error.code, message = %error.message, "DORA gauges not refreshed");
            }
        }
    });
}

fn refresh(state: &ApiState) -> Result<(), ApiError> {
    let config = state.collector.config();
    let settings = settings(&config.dora);
    let (deployments, incidents) = (state.collector.records(DEPLOYMENTS), state.collector.records(INCIDENTS));
    let now = jiff::Timestamp::now();
    let cutoff = now - jiff::SignedDuration::try_from(config.dora.retention).unwrap_or(jiff::SignedDuration::MAX);
    deployments.remove_older_than(None, cutoff).map_err(storage)?;
    incidents.remove_older_than(None, cutoff).map_err(storage)?;
    let from = now - jiff::SignedDuration::try_from(config.dora.metrics_window).unwrap_or(jiff::SignedDuration::ZERO);
    let window = Window::parse(&from.to_string(), &now.to_string(), None, None)
        .map_err(|error| bad_request("dora.invalid_window", error.to_string()))?;
    let metrics = DoraMetrics::new(&state.registry);
    let mut tenants: Vec<String> = config.tenants.iter().map(|tenant| tenant.id.clone()).collect();
    tenants.push("default".into());
    tenants.sort();
    tenants.dedup();
    for tenant in tenants {
        let (deployments, incidents) = load(&deployments, &incidents, &tenant)?;
        if deployments.is_empty() && incidents.is_empty() {
            continue;
        }
        let overall = stella_dora::report(&tenant, &deployments, &incidents, &settings, &window, None);
        for metric in overall.breaches() {
            metrics.breaches.with(&[&tenant, metric]).inc();
        }
        for gauge in stella_dora::service_gauges(&deployments, &incidents, &settings, &window) {
            let labels = [tenant.as_str(), gauge.environment.as_str(), gauge.service.as_str()];
            metrics.frequency.with(&labels).set(gauge.deployment_frequency_per_day.unwrap_or(0.0));
            metrics.failure_rate.with(&labels).set(gauge.change_failure_rate_percent.unwrap_or(0.0));
        }
    }
    Ok(())
}
