//! The HTTP API of a running `stella` (default `127.0.0.1:4319`, `api.endpoint`): health, readiness,
//! meta-metrics and config reload. Glue only: each handler calls the collector and shapes its answer.
//!
//! Every route and the scope it needs are declared once, in [`ROUTES`]; with auth on, a request without a
//! valid token gets 401 and one whose token lacks the scope 403 (`/healthz` and `/readyz` are open,
//! `/metrics` needs `read` unless `api.metrics_public`). Errors are JSON `{"code","message"}`.
#![deny(missing_docs)]

pub use stella_evidence::audit;
pub mod dora;
pub mod events;
pub mod evidence;
mod federation;
mod holds;
pub mod incidents;
mod loki;
mod plain;
mod prometheus;
pub mod query;
pub mod rules;
mod tempo;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use serde_json::json;
use stella_collector::auth::{Principal, Scope, TokenStore};

use crate::audit::{AuditEntry, AuditLog};
use stella_collector::{Collector, ReloadError};
use stella_metrics::Registry;

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// The running collector.
    pub collector: Arc<Collector>,
    /// The process's meta-metrics.
    pub registry: Registry,
    /// The token store when auth is on; `None` leaves every route open (tenant `default`).
    pub tokens: Option<Arc<TokenStore>>,
    /// Serve `/metrics` without a token even with auth on.
    pub metrics_public: bool,
    /// The audit trail of admin and operator actions.
    pub audit: Arc<AuditLog>,
    /// The token store of the data directory, for `/telemetry/tokens` (present whether or not auth is on).
    pub token_admin: Arc<TokenStore>,
    /// The signing key, trust store and bundle metrics.
    pub evidence: Arc<stella_evidence::service::EvidenceService>,
    /// The rule groups evaluated on the store and their alerts.
    pub rules: Arc<rules::RuleBook>,
}

/// One API route: method, path, the scope a token needs (`None`: open to everyone), and its handler, so
/// that each path is written once and a route cannot exist without its handler.
#[derive(Clone, Copy)]
pub struct Route {
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path.
    pub path: &'static str,
    /// The scope needed; `/metrics`'s `read` is waived by `api.metrics_public`.
    pub scope: Option<Scope>,
    /// What it answers.
    pub summary: &'static str,
    /// The handler, as the method router that serves it.
    pub handler: fn() -> MethodRouter<ApiState>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Every route of the API. A route is served only if it is listed here, so none can lack a scope.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/healthz",
        scope: None,
        summary: "200 {\"status\":\"ok\"} while the process lives",
        handler: || get(healthz),
    },
    Route {
        method: "GET",
        path: "/readyz",
        scope: None,
        summary: "200 or 503, one entry per receiver, pipeline and exporter",
        handler: || get(readyz),
    },
    Route {
        method: "GET",
        path: "/metrics",
        scope: Some(Scope::Read),
        summary: "Prometheus text format 0.0.4",
        handler: || get(metrics),
    },
    Route {
        method: "GET",
        path: "/telemetry/audit",
        scope: Some(Scope::Operator),
        summary: "audit lines, ?offset=&limit=",
        handler: || get(audit_lines),
    },
    Route {
        method: "POST",
        path: "/telemetry/config/reload",
        scope: Some(Scope::Operator),
        summary: "what changed and what needs a restart, or 400 with every config error",
        handler: || post(reload),
    },
    Route {
        method: "GET",
        path: "/api/echo",
        scope: None,
        summary: "`echo`: the Tempo data source's health check",
        handler: || get(query::echo),
    },
    Route {
        method: "GET",
        path: "/api/traces/{id}",
        scope: Some(Scope::Read),
        summary: "a trace from the store (Tempo v1): {batches}, or protobuf TracesData with Accept: application/protobuf",
        handler: || get(query::trace_v1),
    },
    Route {
        method: "GET",
        path: "/api/v2/traces/{id}",
        scope: Some(Scope::Read),
        summary: "a trace from the store (Tempo v2): {trace: {resourceSpans}}, or protobuf TraceByIDResponse",
        handler: || get(query::trace_v2),
    },
    Route {
        method: "GET",
        path: "/api/search",
        scope: Some(Scope::Read),
        summary: "Tempo API: traces matching TraceQL ?q= (or the older ?tags=), ?minDuration=&maxDuration=&limit=&spss=&start=&end=",
        handler: || get(tempo::search),
    },
    Route {
        method: "GET",
        path: "/api/v2/search/tags",
        scope: Some(Scope::Read),
        summary: "Tempo API: attribute names by scope (?scope=resource|span|intrinsic, start, end, limit)",
        handler: || get(tempo::tags_v2),
    },
    Route {
        method: "GET",
        path: "/api/v2/search/tag/{tag}/values",
        scope: Some(Scope::Read),
        summary: "Tempo API: typed values of a scoped attribute or intrinsic (?q= a spanset filter, start, end, limit)",
        handler: || get(tempo::tag_values_v2),
    },
    Route {
        method: "GET",
        path: "/api/search/tags",
        scope: Some(Scope::Read),
        summary: "Tempo API (v1): attribute names",
        handler: || get(tempo::tags_v1),
    },
    Route {
        method: "GET",
        path: "/api/search/tag/{tag}/values",
        scope: Some(Scope::Read),
        summary: "Tempo API (v1): values of an attribute as text",
        handler: || get(tempo::tag_values_v1),
    },
    Route {
        method: "GET",
        path: "/api/status/buildinfo",
        scope: Some(Scope::Read),
        summary: "Tempo API: build information (a Tempo 2.x version, for Grafana's feature checks)",
        handler: || get(tempo::buildinfo),
    },
    Route {
        method: "GET",
        path: "/loki/api/v1/query_range",
        scope: Some(Scope::Read),
        summary: "Loki API: LogQL over a range (?query=&start=&end=&limit=&direction=&step=): streams or a matrix",
        handler: || get(loki::query_range),
    },
    Route {
        method: "POST",
        path: "/loki/api/v1/query_range",
        scope: Some(Scope::Read),
        summary: "Loki API: the same, form-encoded",
        handler: || post(loki::query_range),
    },
    Route {
        method: "GET",
        path: "/loki/api/v1/query",
        scope: Some(Scope::Read),
        summary: "Loki API: an instant LogQL metric query (?query=&time=)",
        handler: || get(loki::query),
    },
    Route {
        method: "POST",
        path: "/loki/api/v1/query",
        scope: Some(Scope::Read),
        summary: "Loki API: the same, form-encoded",
        handler: || post(loki::query),
    },
    Route {
        method: "GET",
        path: "/loki/api/v1/labels",
        scope: Some(Scope::Read),
        summary: "Loki API: stream label names (?start=&end=&query=)",
        handler: || get(loki::labels),
    },
    Route {
        method: "GET",
        path: "/loki/api/v1/label/{name}/values",
        scope: Some(Scope::Read),
        summary: "Loki API: values of a stream label (?start=&end=&query=)",
        handler: || get(loki::label_values),
    },
    Route {
        method: "GET",
        path: "/loki/api/v1/series",
        scope: Some(Scope::Read),
        summary: "Loki API: the streams selectors pick (?match[]=&start=&end=)",
        handler: || get(loki::series),
    },
    Route {
        method: "POST",
        path: "/loki/api/v1/series",
        scope: Some(Scope::Read),
        summary: "Loki API: the same, form-encoded",
        handler: || post(loki::series),
    },
    Route {
        method: "GET",
        path: "/loki/api/v1/index/stats",
        scope: Some(Scope::Read),
        summary: "Loki API: streams, chunks, bytes and entries a selector covers",
        handler: || get(loki::index_stats),
    },
    Route {
        method: "GET",
        path: "/loki/api/v1/status/buildinfo",
        scope: Some(Scope::Read),
        summary: "Loki API: build information",
        handler: || get(loki::buildinfo),
    },
    Route {
        method: "GET",
        path: "/telemetry/query/traces",
        scope: Some(Scope::Read),
        summary: "traces with a span matching ?service=&name=&min_duration=&status=&attr.k=v&start=&end=&limit=",
        handler: || get(query::search_traces),
    },
    Route {
        method: "GET",
        path: "/telemetry/query/logs",
        scope: Some(Scope::Read),
        summary: "log records matching ?service=&severity_min=&contains=&attr.k=v&start=&end=&limit=, newest first",
        handler: || get(query::search_logs),
    },
    Route {
        method: "GET",
        path: "/telemetry/query/metrics",
        scope: Some(Scope::Read),
        summary: "series of ?name= matching label.k=v between start and end, raw and (with step) step-aligned",
        handler: || get(query::query_metrics),
    },
    Route {
        method: "GET",
        path: "/api/v1/query",
        scope: Some(Scope::Read),
        summary: "Prometheus API: PromQL ?query= evaluated at ?time= (now when absent; ?timeout=)",
        handler: || get(prometheus::query),
    },
    Route {
        method: "POST",
        path: "/api/v1/query",
        scope: Some(Scope::Read),
        summary: "Prometheus API: /api/v1/query with a form-encoded body, as Grafana sends it",
        handler: || post(prometheus::query),
    },
    Route {
        method: "GET",
        path: "/api/v1/query_range",
        scope: Some(Scope::Read),
        summary: "Prometheus API: PromQL ?query= at each ?step= from ?start= to ?end= (at most 11,000 points)",
        handler: || get(prometheus::query_range),
    },
    Route {
        method: "POST",
        path: "/api/v1/query_range",
        scope: Some(Scope::Read),
        summary: "Prometheus API: /api/v1/query_range with a form-encoded body, as Grafana sends it",
        handler: || post(prometheus::query_range),
    },
    Route {
        method: "GET",
        path: "/api/v1/series",
        scope: Some(Scope::Read),
        summary: "Prometheus API: label sets of the series ?match[]= selects between start and end (limit)",
        handler: || get(prometheus::series),
    },
    Route {
        method: "POST",
        path: "/api/v1/series",
        scope: Some(Scope::Read),
        summary: "Prometheus API: /api/v1/series with a form-encoded body, as Grafana sends it",
        handler: || post(prometheus::series),
    },
    Route {
        method: "GET",
        path: "/api/v1/labels",
        scope: Some(Scope::Read),
        summary: "Prometheus API: label names of the series ?match[]= selects (all without) between start and end",
        handler: || get(prometheus::labels),
    },
    Route {
        method: "POST",
        path: "/api/v1/labels",
        scope: Some(Scope::Read),
        summary: "Prometheus API: /api/v1/labels with a form-encoded body",
        handler: || post(prometheus::labels),
    },
    Route {
        method: "GET",
        path: "/api/v1/label/{name}/values",
        scope: Some(Scope::Read),
        summary: "Prometheus API: the values of a label in the series ?match[]= selects between start and end",
        handler: || get(prometheus::label_values),
    },
    Route {
        method: "GET",
        path: "/api/v1/rules",
        scope: Some(Scope::Read),
        summary: "Prometheus API: the rule groups of rules.files with health, state and alerts (?type=alert|record)",
        handler: || get(rules::list_rules),
    },
    Route {
        method: "GET",
        path: "/api/v1/alerts",
        scope: Some(Scope::Read),
        summary: "Prometheus API: the pending and firing alerts of the rules",
        handler: || get(rules::list_alerts),
    },
    Route {
        method: "GET",
        path: "/api/v1/metadata",
        scope: Some(Scope::Read),
        summary: "Prometheus API: type, help and unit of the metric families stored in the last day (?metric=&limit=&limit_per_metric=)",
        handler: || get(prometheus::metadata),
    },
    Route {
        method: "GET",
        path: "/api/v1/format_query",
        scope: Some(Scope::Read),
        summary: "Prometheus API: ?query= in PromQL's canonical layout",
        handler: || get(prometheus::format_query),
    },
    Route {
        method: "POST",
        path: "/api/v1/format_query",
        scope: Some(Scope::Read),
        summary: "Prometheus API: /api/v1/format_query with a form-encoded body",
        handler: || post(prometheus::format_query),
    },
    Route {
        method: "GET",
        path: "/api/v1/status/buildinfo",
        scope: Some(Scope::Read),
        summary: "Prometheus API: build information (Grafana reads version)",
        handler: || get(prometheus::buildinfo),
    },
    Route {
        method: "GET",
        path: "/telemetry/holds",
        scope: Some(Scope::Admin),
        summary: "the tenant's holds (?tenant= for operators)",
        handler: || get(holds::list),
    },
    Route {
        method: "POST",
        path: "/telemetry/holds",
        scope: Some(Scope::Admin),
        summary: "place a legal hold {from, to?, reason, tenant?}: retention keeps what it covers",
        handler: || post(holds::add),
    },
    Route {
        method: "DELETE",
        path: "/telemetry/holds/{id}",
        scope: Some(Scope::Admin),
        summary: "release a hold (?tenant= for operators): 200, or 404",
        handler: || delete(holds::release),
    },
    Route {
        method: "GET",
        path: "/telemetry/incidents/mode",
        scope: Some(Scope::Admin),
        summary: "incident mode of the token's tenant (?tenant= for operators; * for all)",
        handler: || get(incidents::get_mode),
    },
    Route {
        method: "POST",
        path: "/telemetry/incidents/mode",
        scope: Some(Scope::Admin),
        summary: "{state: on|off, services?, reason, ttl?, tenant?}: keep the services' traces at 100% until off or ttl",
        handler: || post(incidents::set_mode),
    },
    Route {
        method: "GET",
        path: "/telemetry/config/profile/{name}",
        scope: Some(Scope::Read),
        summary: "the profile's config bundle: a DSSE envelope of its YAML signed by the server key; 404 lists the profiles",
        handler: || get(evidence::config_profile),
    },
    Route {
        method: "GET",
        path: "/telemetry/exports/forensic/{window}",
        scope: Some(Scope::Export),
        summary: "a signed forensic bundle of the window (24h or START..END, URL-encoded), ?tenant=&compression=gzip|zstd",
        handler: || get(evidence::export_forensic),
    },
    Route {
        method: "POST",
        path: "/telemetry/dora/deployments",
        scope: Some(Scope::Ingest),
        summary: "record deployment events (one object or an array; idempotent by id; per-item results)",
        handler: || post(dora::record_deployments),
    },
    Route {
        method: "POST",
        path: "/telemetry/dora/incidents",
        scope: Some(Scope::Ingest),
        summary: "record incident events (one object or an array; idempotent by id; per-item results)",
        handler: || post(dora::record_incidents),
    },
    Route {
        method: "GET",
        path: "/telemetry/dora/report",
        scope: Some(Scope::Read),
        summary: "the DORA report ?from=&to=&tz=&as_of=&environment=&format=json|md|html|csv",
        handler: || get(dora::report),
    },
    Route {
        method: "POST",
        path: "/telemetry/federation/observations",
        scope: Some(Scope::Ingest),
        summary: "record vulnerability observations {cve_id, artifact_digest, noisy, observed_at} (object or array)",
        handler: || post(federation::record_observations),
    },
    Route {
        method: "GET",
        path: "/telemetry/federation/consents",
        scope: Some(Scope::Admin),
        summary: "the tenant's federation consents with their status",
        handler: || get(federation::list_consents),
    },
    Route {
        method: "POST",
        path: "/telemetry/federation/consents",
        scope: Some(Scope::Admin),
        summary: "grant a consent {federation_id, scope, purpose, expires_at, not_before?, site_alias?}, signed by the server",
        handler: || post(federation::grant),
    },
    Route {
        method: "POST",
        path: "/telemetry/federation/consents/{digest}/revoke",
        scope: Some(Scope::Admin),
        summary: "revoke a consent {reason}: answers the signed revocation to push to hubs",
        handler: || post(federation::revoke),
    },
    Route {
        method: "GET",
        path: "/telemetry/federation/bundle",
        scope: Some(Scope::Export),
        summary: "the signed federation bundle ?window=7d|START..END&consent= (k-anonymity, optional noise within the budget)",
        handler: || get(federation::bundle),
    },
    Route {
        method: "POST",
        path: "/telemetry/federation/bundles",
        scope: Some(Scope::Ingest),
        summary: "hub: verify and import a bundle file (idempotent by bundle id)",
        handler: || post(federation::import_bundle),
    },
    Route {
        method: "POST",
        path: "/telemetry/federation/revocations",
        scope: Some(Scope::Ingest),
        summary: "hub: verify and keep a consent revocation; its bundles leave the aggregate",
        handler: || post(federation::import_revocation),
    },
    Route {
        method: "GET",
        path: "/telemetry/federation/aggregate",
        scope: Some(Scope::Read),
        summary: "hub: the federated buckets ?window= with per-site provenance",
        handler: || get(federation::aggregate),
    },
    Route {
        method: "GET",
        path: "/telemetry/tokens",
        scope: Some(Scope::Operator),
        summary: "token records (never secrets)",
        handler: || get(tokens::list),
    },
    Route {
        method: "POST",
        path: "/telemetry/tokens",
        scope: Some(Scope::Operator),
        summary: "create a token: {tenant, scopes, expires_seconds?}; the answer holds it once",
        handler: || post(tokens::create),
    },
    Route {
        method: "DELETE",
        path: "/telemetry/tokens/{id}",
        scope: Some(Scope::Operator),
        summary: "revoke a token: 204, or 404",
        handler: || delete(tokens::revoke),
    },
];

/// The API routes, each behind the scope [`ROUTES`] declares for it. Routes of one path are served by one
/// method router, so they share one scope (a test checks the table for that).
pub fn router(state: ApiState) -> Router {
    let mut paths: Vec<(&'static str, Option<Scope>, axum::routing::MethodRouter<ApiState>)> = Vec::new();
    for route in ROUTES {
        let handler = (route.handler)();
        let scope = match route.scope {
            Some(Scope::Read) if route.path == "/metrics" && state.metrics_public => None,
            scope => scope,
        };
        match paths.iter().position(|(path, _, _)| *path == route.path) {
            Some(index) => {
                let (path, scope, existing) = paths.remove(index);
                paths.insert(index, (path, scope, existing.merge(handler)));
            }
            None => paths.push((route.path, scope, handler)),
        }
    }
    let mut router = Router::new();
    for (path, scope, handler) in paths {
        let guarded = match scope {
            None => handler,
            Some(scope) => handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                move |state: State<ApiState>, request: Request, next: Next| require(state, scope, request, next),
            )),
        };
        router = router.route(path, guarded);
    }
    router.fallback(not_found).with_state(state)
}

/// Lets the request through when auth is off or its token has `scope`; puts the [`Principal`] in the
/// request's extensions for the handler's tenant checks.
async fn require(State(state): State<ApiState>, scope: Scope, mut request: Request, next: Next) -> Response {
    let Some(tokens) = &state.tokens else { return next.run(request).await };
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    match tokens.authorize(authorization, scope) {
        Ok(principal) => {
            request.extensions_mut().insert::<Principal>(principal);
            next.run(request).await
        }
        Err(error) => {
            let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
            let mut response = error_response(status, error.code(), &error.to_string());
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let readiness = state.collector.readiness();
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(readiness)).into_response()
}

/// `/metrics`: every series for operators (and when auth is off or `api.metrics_public` is set); for other
/// tokens only process-wide series and those of their own tenant (a series with a `tenant` label of another
/// tenant is left out).
async fn metrics(State(state): State<ApiState>, principal: Option<axum::Extension<Principal>>) -> Response {
    state.collector.refresh_gauges();
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    let scope = match principal.as_deref() {
        Some(principal) if !principal.scopes.contains(&Scope::Operator) => {
            stella_metrics::Scope::Tenant(&principal.tenant)
        }
        _ => stella_metrics::Scope::All,
    };
    ([(header::CONTENT_TYPE, content_type)], state.registry.encode_scoped(scope)).into_response()
}

/// Appends an action to the audit trail; the error response to send if that failed.
pub(crate) fn audited(
    state: &ApiState,
    principal: Option<&Principal>,
    tenant: &str,
    action: &str,
    parameters: serde_json::Value,
) -> Option<Response> {
    let entry = AuditEntry {
        actor: actor(principal),
        tenant: tenant.into(),
        action: action.into(),
        parameters,
        result: "ok".into(),
    };
    state
        .audit
        .append(&entry)
        .err()
        .map(|error| error_response(StatusCode::INTERNAL_SERVER_ERROR, error.code(), &error.to_string()))
}

/// The tenant a request acts for: the token's, unless the body or query names another, which only an
/// operator token may do (403 `auth.tenant_mismatch` otherwise). With auth off: the named one or `default`.
pub(crate) fn tenant_of(principal: Option<&Principal>, requested: Option<&str>) -> Result<String, ApiError> {
    match (principal, requested) {
        (None, requested) => Ok(requested.unwrap_or("default").to_string()),
        (Some(principal), None) => Ok(principal.tenant.clone()),
        (Some(principal), Some(requested)) if requested == principal.tenant => Ok(principal.tenant.clone()),
        (Some(principal), Some(requested)) if principal.scopes.contains(&Scope::Operator) => Ok(requested.to_string()),
        (Some(principal), Some(requested)) => Err(ApiError {
            status: StatusCode::FORBIDDEN,
            code: "auth.tenant_mismatch",
            message: format!(
                "this token belongs to tenant {:?} and cannot act for {requested:?}; leave the tenant out or use that tenant's token",
                principal.tenant
            ),
        }),
    }
}

/// Who made a request: `token:<id>` with auth on, `unauthenticated` with it off.
pub(crate) fn actor(principal: Option<&Principal>) -> String {
    principal.map_or_else(|| "unauthenticated".to_string(), |principal| format!("token:{}", principal.token_id))
}

async fn reload(State(state): State<ApiState>, principal: Option<axum::Extension<Principal>>) -> Response {
    let outcome = state.collector.reload().await;
    let entry = AuditEntry {
        actor: actor(principal.as_deref()),
        tenant: "*".into(),
        action: "config.reload".into(),
        parameters: serde_json::json!({}),
        result: match &outcome {
            Ok(_) => "ok".into(),
            Err(error) => format!("error: {}", error.code()),
        },
    };
    if let Err(error) = state.audit.append(&entry) {
        tracing::error!(%error, "cannot write the audit trail");
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, error.code(), &error.to_string());
    }
    match outcome {
        Ok(report) => axum::Json(report).into_response(),
        Err(ReloadError::Config(errors)) => {
            let problems: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            let body = json!({"code": errors.code(), "message": errors.to_string(), "errors": problems});
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
        Err(error) => error_response(StatusCode::SERVICE_UNAVAILABLE, error.code(), &error.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_page")]
    limit: usize,
}

fn default_page() -> usize {
    100
}

async fn audit_lines(State(state): State<ApiState>, page: axum::extract::Query<Page>) -> Response {
    match state.audit.lines() {
        Ok(lines) => {
            let limit = page.limit.clamp(1, 1000);
            let chosen: Vec<serde_json::Value> = lines
                .iter()
                .skip(page.offset)
                .take(limit)
                .map(|line| serde_json::from_str(line).unwrap_or(serde_json::Value::String(line.clone())))
                .collect();
            let next = (page.offset + chosen.len() < lines.len()).then_some(page.offset + chosen.len());
            axum::Json(json!({"lines": chosen, "next_offset": next, "total": lines.len()})).into_response()
        }
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, error.code(), &error.to_string()),
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "api.not_found", "no such API route; see the stella-api docs for the routes")
}

/// An API error: its status, stable code and message, answered as JSON `{"code","message"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, self.code, &self.message)
    }
}

/// A 400 answer with `code`.
pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError { status: StatusCode::BAD_REQUEST, code, message: message.into() }
}

/// A 500 answer with `code` for what `error` says (storage failures and the like).
pub(crate) fn internal(code: &'static str, error: impl std::fmt::Display) -> ApiError {
    ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code, message: error.to_string() }
}

/// Runs `work` on the blocking pool (redb, chunk files, signing); a task that dies answers 500 with `code`.
pub(crate) async fn blocking<T: Send + 'static>(
    code: &'static str,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| internal(code, "the request failed unexpectedly"))?
}

pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"code": code, "message": message}))).into_response()
}

/// Registers `stella_build_info{version} 1`.
pub fn register_build_info(registry: &Registry, version: &str) {
    registry
        .gauge(stella_metrics::names::BUILD_INFO, "Build information; the value is always 1.", &["version"])
        .with(&[version])
        .set(1);
}

#[cfg(test)]
mod tests;
