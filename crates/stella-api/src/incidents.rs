//! `/telemetry/incidents/mode`: turn incident mode on or off for a tenant's services (scope `admin`; an
//! operator may name any tenant, or `*` for every declared tenant), and read it. Every toggle is persisted
//! before the answer, logged as a structured line and appended to the audit trail.
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::json;
use stella_collector::auth::{Principal, Scope};
use stella_collector::jobs::stopped_during;
use stella_pipeline::incident::{IncidentMode, IncidentState};
use stella_store::chunks::HoldKind;

use crate::query::TenantQuery;
use crate::{ApiError, ApiState, actor, audited, error_response, tenant_of};

/// How long incident mode stays on when the request names no TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(4 * 3600);

/// The longest TTL accepted.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The body of `POST /telemetry/incidents/mode`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModeChange {
    state: IncidentState,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

fn shown(tenant: &str, mode: &IncidentMode) -> serde_json::Value {
    let mut value = serde_json::to_value(mode).unwrap_or_default();
    value["tenant"] = json!(tenant);
    value
}

/// The tenants a request acts for: its own, a named one (operators), or every declared one (`*`,
/// operators only).
fn tenants_for(
    state: &ApiState,
    principal: Option<&Principal>,
    requested: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let declared: Vec<String> = state.collector.config().tenants.iter().map(|tenant| tenant.id.clone()).collect();
    if requested == Some("*") {
        let operator = principal.is_none_or(|principal| principal.scopes.contains(&Scope::Operator));
        if !operator {
            return Err(ApiError {
                status: StatusCode::FORBIDDEN,
                code: "auth.forbidden",
                message: "tenant \"*\" (every tenant) needs an operator token".into(),
            });
        }
        return Ok(declared);
    }
    let tenant = tenant_of(principal, requested)?;
    if !declared.contains(&tenant) {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "tenant.unknown",
            message: format!("tenant {tenant:?} is not declared under tenants: in the config"),
        });
    }
    Ok(vec![tenant])
}

pub(crate) async fn get_mode(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Query(query): Query<TenantQuery>,
) -> Response {
    let tenants = match tenants_for(&state, principal.as_deref(), query.tenant.as_deref()) {
        Ok(tenants) => tenants,
        Err(error) => return error.into_response(),
    };
    let board = state.collector.incidents().board();
    if let [tenant] = tenants.as_slice() {
        return axum::Json(shown(tenant, &board.get(tenant))).into_response();
    }
    let all: Vec<serde_json::Value> = tenants.iter().map(|tenant| shown(tenant, &board.get(tenant))).collect();
    axum::Json(json!({"tenants": all})).into_response()
}

pub(crate) async fn set_mode(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Result<axum::Json<ModeChange>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let change = match body {
        Ok(axum::Json(change)) => change,
        Err(rejection) => {
            let message = format!(
                "{}; expected {{\"state\":\"on\"|\"off\",\"services\":[...],\"reason\":\"...\",\"ttl\":\"2h\"}}",
                rejection.body_text()
            );
            return error_response(StatusCode::BAD_REQUEST, "api.invalid_body", &message);
        }
    };
    let principal = principal.as_deref();
    let tenants = match tenants_for(&state, principal, change.tenant.as_deref()) {
        Ok(tenants) => tenants,
        Err(error) => return error.into_response(),
    };
    let ttl = match (&change.state, change.ttl.as_deref()) {
        (IncidentState::Off, _) => None,
        (IncidentState::On, None) => Some(DEFAULT_TTL),
        (IncidentState::On, Some(text)) => match stella_pipeline::duration::parse(text) {
            Ok(ttl) if !ttl.is_zero() && ttl <= MAX_TTL => Some(ttl),
            Ok(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "incident.invalid_ttl",
                    "ttl must be more than 0 and at most 7d",
                );
            }
            Err(message) => return error_response(StatusCode::BAD_REQUEST, "incident.invalid_ttl", &message),
        },
    };
    let now = Timestamp::now();
    let until = ttl.and_then(|ttl| jiff::SignedDuration::try_from(ttl).ok()).and_then(|ttl| now.checked_add(ttl).ok());
    let mut services = change.services.clone();
    services.sort();
    services.dedup();
    let mode = IncidentMode {
        state: change.state,
        services: if change.state == IncidentState::On { services } else { Vec::new() },
        reason: change.reason.clone(),
        since: Some(now),
        by: actor(principal),
        until,
    };
    let mut answers = Vec::new();
    for tenant in &tenants {
        let previous = state.collector.incidents().board().get(tenant);
        if let Err(error) = state.collector.incidents().set(tenant, mode.clone()) {
            tracing::error!(code = error.code(), %error, "cannot save incident mode");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, error.code(), &error.to_string());
        }
        // The incident window is held from `incident.lookback` before the toggle until incident mode ends.
        let held = match mode.state {
            IncidentState::On => {
                let from = now.checked_sub(lookback(&state)).unwrap_or(now);
                let reason = format!("incident mode: {}", mode.reason);
                state.collector.holds().add(tenant, HoldKind::Incident, from, None, &reason, &mode.by).map(|_| ())
            }
            IncidentState::Off => state.collector.holds().close_incident(tenant, now),
        };
        if let Err(error) = held {
            tracing::error!(code = error.code(), %error, "cannot place or close the incident hold");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, error.code(), &error.to_string());
        }
        let state_name = if mode.state == IncidentState::On { "on" } else { "off" };
        tracing::warn!(event = "incident.mode", state = state_name, tenant = %tenant, services = ?mode.services, until = ?mode.until, by = %mode.by, "incident mode {state_name}");
        let mut parameters = json!({"state": state_name, "services": mode.services, "reason": mode.reason, "ttl": change.ttl, "until": mode.until});
        if mode.state == IncidentState::Off && previous.state == IncidentState::On {
            parameters["bundle"] = incident_bundle(&state, tenant, previous.since, now).await;
        }
        if let Some(response) = audited(&state, principal, tenant, "incident.mode", parameters.clone()) {
            return response;
        }
        notify(&state, tenant, &mode.by, parameters);
        answers.push(shown(tenant, &mode));
    }
    match answers.as_slice() {
        [one] => axum::Json(one.clone()).into_response(),
        _ => axum::Json(json!({"tenants": answers})).into_response(),
    }
}

/// The forensic bundle of an incident that ended at `end`: its window starts `incident.lookback` before
/// incident mode turned on (`since`). What the audit record says about it: the archived file and its
/// digest, or the error (the toggle itself still happens).
async fn incident_bundle(
    state: &ApiState,
    tenant: &str,
    since: Option<Timestamp>,
    end: Timestamp,
) -> serde_json::Value {
    let start = since.unwrap_or(end).checked_sub(lookback(state)).unwrap_or(end);
    let Ok(end) = Timestamp::from_second(end.as_second() + 1) else { return json!({"error": "time out of range"}) };
    let window = stella_evidence::Window { start, end };
    // Everything acknowledged before the toggle belongs in the bundle: let the store read it first.
    crate::evidence::catch_up(state, tenant).await;
    let (evidence, stores, tenant) =
        (std::sync::Arc::clone(&state.evidence), std::sync::Arc::clone(state.collector.stores()), tenant.to_string());
    let archived =
        tokio::task::spawn_blocking(move || evidence.archive(stores.as_ref(), &tenant, window, "incident")).await;
    match archived {
        Ok(Ok(archived)) => json!({
            "path": archived.path.display().to_string(),
            "sha256": archived.sha256,
            "records": archived.records,
            "window": {"start": window.start.to_string(), "end": window.end.to_string()},
        }),
        Ok(Err(error)) => json!({"error": error.code(), "message": error.to_string()}),
        Err(_) => json!({"error": "bundle.failed"}),
    }
}

/// `incident.lookback` as a signed duration.
fn lookback(state: &ApiState) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(state.collector.config().incident.lookback)
        .unwrap_or(jiff::SignedDuration::from_hours(1))
}

/// Attempts per webhook call.
const NOTIFY_ATTEMPTS: u32 = 3;

/// POSTs a toggle to `incident.notify.webhook` in the background (through the egress policy; retried
/// with backoff; failures logged and counted as `collector_export_failures_total{exporter="incident.notify"}`).
fn notify(state: &ApiState, tenant: &str, by: &str, parameters: serde_json::Value) {
    let config = state.collector.config();
    let Some(url) = config.incident.webhook.clone() else { return };
    let failures = state.registry.counter(
        stella_metrics::names::EXPORT_FAILURES,
        "Export failures, by exporter and reason.",
        &["exporter", "reason"],
    );
    if let Err(denied) = config.egress.check(&url) {
        tracing::warn!(event = "egress.sealed_blocked", component = "incident.notify", endpoint = %url, reason = denied.reason(), remediation = %denied.remediation(), "egress policy: the incident webhook is not called");
        state
            .registry
            .counter(
                stella_metrics::names::EGRESS_BLOCKED,
                "Endpoints disabled by the egress policy, by component.",
                &["component"],
            )
            .with(&["incident.notify"])
            .inc();
        return;
    }
    let body =
        json!({"event": "incident.mode", "tenant": tenant, "by": by, "at": Timestamp::now(), "change": parameters});
    let timeout = config.incident.webhook_timeout;
    state.collector.spawn_job("incident webhook", |stop| async move {
        let client = match stella_export::http_client::plain() {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(endpoint = %url, %error, "incident webhook: no HTTP client");
                failures.with(&["incident.notify", "client"]).inc();
                return;
            }
        };
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=NOTIFY_ATTEMPTS {
            let outcome = client.post(&url).timeout(timeout).json(&body).send().await;
            let reason = match outcome {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => format!("status {}", response.status().as_u16()),
                Err(error) if error.is_timeout() => "timeout".to_string(),
                Err(_) => "unreachable".to_string(),
            };
            if attempt == NOTIFY_ATTEMPTS {
                tracing::error!(endpoint = %url, %reason, attempts = attempt, "incident webhook failed");
                failures
                    .with(&["incident.notify", if reason.starts_with("status") { "status" } else { reason.as_str() }])
                    .inc();
                return;
            }
            if stopped_during(&stop, backoff).await {
                tracing::warn!(endpoint = %url, %reason, attempts = attempt, "incident webhook not retried: the server is stopping");
                return;
            }
            backoff *= 2;
        }
    });
}

/// Turns off incident modes past their TTL (checked every second) as a job of the collector, with a line
/// in the audit trail for each (actor `ttl`) naming the incident's forensic bundle.
pub fn enforce_ttl(state: &ApiState) {
    let api = state.clone();
    state.collector.spawn_job("incident TTL", |stop| async move {
        while !stopped_during(&stop, Duration::from_secs(1)).await {
            let incidents = std::sync::Arc::clone(api.collector.incidents());
            let Ok(ended) = tokio::task::spawn_blocking(move || incidents.expire(Timestamp::now())).await else {
                continue;
            };
            for (tenant, mode) in ended {
                end_by_ttl(&api, tenant, mode).await;
            }
        }
    });
}

/// The rest of a TTL's end: the hold closed, the incident's bundle, the audit line and the webhook.
async fn end_by_ttl(api: &ApiState, tenant: String, mode: IncidentMode) {
    let now = Timestamp::now();
    if let Err(error) = api.collector.holds().close_incident(&tenant, now) {
        tracing::error!(code = error.code(), %error, "cannot close the incident hold");
    }
    let bundle = incident_bundle(api, &tenant, mode.since, now).await;
    let entry = crate::audit::AuditEntry {
        actor: "ttl".into(),
        tenant,
        action: "incident.mode".into(),
        parameters: json!({"state": "off", "expired_services": mode.services, "until": mode.until, "bundle": bundle}),
        result: "ok".into(),
    };
    let parameters = entry.parameters.clone();
    if let Err(error) = api.audit.append(&entry) {
        tracing::error!(%error, "cannot write the audit trail");
    }
    notify(api, &entry.tenant, "ttl", parameters);
}
