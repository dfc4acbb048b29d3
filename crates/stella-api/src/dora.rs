//! `/telemetry/dora/*`: deployment and incident events in (idempotent by id, per-item results), the
//! executive report out (JSON, Markdown, HTML, CSV). The service is `stella_dora::service`; this module
//! maps HTTP to it and the `dora` config to its settings.
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use stella_collector::auth::Principal;
use stella_collector::config::DoraConfig;
use stella_dora::service::{BatchAnswer, DEPLOYMENTS_TABLE, DoraMetrics, DoraService, INCIDENTS_TABLE, ServiceError};
use stella_dora::{DoraSettings, Preset, SloTargets, Window};
use stella_metrics::Registry;

use crate::{ApiError, ApiState, bad_request, blocking, internal, tenant_of};

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

/// The API error of a service failure.
pub(crate) fn api_error(error: ServiceError) -> ApiError {
    match &error {
        ServiceError::Invalid { code, .. } => bad_request(code, error.to_string()),
        ServiceError::TenantMismatch { .. } => {
            ApiError { status: StatusCode::FORBIDDEN, code: error.code(), message: error.to_string() }
        }
        _ => internal(error.code(), error),
    }
}

/// The DORA service of the running collector of `state`.
pub fn service(collector: &stella_collector::Collector, registry: &Registry) -> DoraService {
    DoraService::new(
        (Arc::new(collector.records(DEPLOYMENTS_TABLE)), Arc::new(collector.records(INCIDENTS_TABLE))),
        settings(&collector.config().dora),
        DoraMetrics::new(registry),
    )
}

fn answer(result: Result<BatchAnswer, ApiError>) -> Response {
    match result {
        Ok(BatchAnswer { all_refused, body }) => {
            let status = if all_refused { StatusCode::BAD_REQUEST } else { StatusCode::OK };
            (status, axum::Json(body)).into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// `POST /telemetry/dora/deployments`.
pub(crate) async fn record_deployments(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Bytes,
) -> Response {
    answer(ingest(&state, principal.as_deref(), &body, DoraService::record_deployments).await)
}

/// `POST /telemetry/dora/incidents`.
pub(crate) async fn record_incidents(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Bytes,
) -> Response {
    answer(ingest(&state, principal.as_deref(), &body, DoraService::record_incidents).await)
}

/// Records a batch of one kind of event for a tenant.
type Recorder = fn(&DoraService, &str, &[serde_json::Value]) -> Result<BatchAnswer, ServiceError>;

/// Checks a batch's tenancy, then records it on a blocking thread with `record`.
async fn ingest(
    state: &ApiState,
    principal: Option<&Principal>,
    body: &[u8],
    record: Recorder,
) -> Result<BatchAnswer, ApiError> {
    let tenant = tenant_of(principal, None)?;
    let items = stella_dora::service::batch_of(body, &tenant).map_err(api_error)?;
    let service = service(&state.collector, &state.registry);
    blocking("dora.failed", move || record(&service, &tenant, &items).map_err(api_error)).await
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
    let service = service(&state.collector, &state.registry);
    let environment = query.environment.clone();
    blocking("dora.failed", move || {
        let report = service.report(&tenant, &window, environment.as_deref()).map_err(api_error)?;
        let (content_type, body) = match format.as_str() {
            "md" => ("text/markdown; charset=utf-8", stella_dora::render::markdown(&report).into_bytes()),
            "html" => ("text/html; charset=utf-8", stella_dora::render::html(&report).into_bytes()),
            "csv" => ("text/csv; charset=utf-8", stella_dora::render::csv(&report).into_bytes()),
            _ => (
                "application/json",
                stella_evidence::canonical::to_vec(&report).map_err(|error| internal("dora.render_failed", error))?,
            ),
        };
        Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
    })
    .await
}

/// Every `REFRESH`: the trailing-window gauges per tenant, environment and service (each evaluation
/// counts its SLO breaches), and the retention sweep of old events. A job of the collector; each pass
/// reads the config, so it follows reloads.
pub fn spawn_refresh(state: ApiState) {
    let collector = std::sync::Arc::clone(&state.collector);
    collector.spawn_job("DORA refresh", |stop| async move {
        while !stella_collector::jobs::stopped_during(&stop, REFRESH).await {
            let state = state.clone();
            let refreshed = tokio::task::spawn_blocking(move || refresh(&state)).await;
            if let Ok(Err(error)) = refreshed {
                tracing::warn!(code = error.code(), %error, "DORA gauges not refreshed");
            }
        }
    });
}

fn refresh(state: &ApiState) -> Result<(), ServiceError> {
    let config = state.collector.config();
    let mut tenants: Vec<String> = config.tenants.iter().map(|tenant| tenant.id.clone()).collect();
    tenants.push("default".into());
    tenants.sort();
    tenants.dedup();
    let periods = (config.dora.retention, config.dora.metrics_window);
    service(&state.collector, &state.registry).refresh(&tenants, periods, jiff::Timestamp::now())
}
