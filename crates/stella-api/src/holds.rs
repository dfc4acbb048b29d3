//! `/telemetry/holds`: legal holds on a tenant's data (scope `admin`; operators may name a tenant),
//! audited. Retention never deletes a chunk a hold covers. Incident mode places and closes its own holds.
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::json;
use stella_collector::auth::Principal;
use stella_store::chunks::{HoldError, HoldKind};

use crate::query::TenantQuery;
use crate::{ApiError, ApiState, actor, audited, error_response, tenant_of};

/// The body of `POST /telemetry/holds`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewHold {
    from: Timestamp,
    #[serde(default)]
    to: Option<Timestamp>,
    reason: String,
    #[serde(default)]
    tenant: Option<String>,
}

fn hold_error(error: HoldError) -> Response {
    let status = match error {
        HoldError::NotFound(_) => StatusCode::NOT_FOUND,
        HoldError::Reversed { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, error.code(), &error.to_string())
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Query(query): Query<TenantQuery>,
) -> Response {
    let tenant = match tenant_of(principal.as_deref(), query.tenant.as_deref()) {
        Ok(tenant) => tenant,
        Err(error) => return error.into_response(),
    };
    match state.collector.holds().list(&tenant) {
        Ok(holds) => axum::Json(json!({"holds": holds})).into_response(),
        Err(error) => hold_error(error),
    }
}

pub(crate) async fn add(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Result<axum::Json<NewHold>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let hold = match body {
        Ok(axum::Json(hold)) => hold,
        Err(rejection) => {
            let message = format!(
                "{}; expected {{\"from\":\"2026-01-01T00:00:00Z\",\"to\":\"...\" (optional),\"reason\":\"...\"}}",
                rejection.body_text()
            );
            return error_response(StatusCode::BAD_REQUEST, "api.invalid_body", &message);
        }
    };
    let principal = principal.as_deref();
    let tenant = match tenant_of(principal, hold.tenant.as_deref()) {
        Ok(tenant) => tenant,
        Err(error) => return error.into_response(),
    };
    if hold.reason.trim().is_empty() {
        return ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "hold.reason_missing",
            message: "say why: reason".into(),
        }
        .into_response();
    }
    match state.collector.holds().add(&tenant, HoldKind::Legal, hold.from, hold.to, &hold.reason, &actor(principal)) {
        Ok(placed) => {
            let parameters = json!({"id": placed.id, "from": placed.from, "to": placed.to, "reason": placed.reason});
            if let Some(response) = audited(&state, principal, &tenant, "hold.add", parameters) {
                return response;
            }
            (StatusCode::CREATED, axum::Json(placed)).into_response()
        }
        Err(error) => hold_error(error),
    }
}

pub(crate) async fn release(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Path(id): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Response {
    let principal = principal.as_deref();
    let tenant = match tenant_of(principal, query.tenant.as_deref()) {
        Ok(tenant) => tenant,
        Err(error) => return error.into_response(),
    };
    match state.collector.holds().release(&tenant, &id) {
        Ok(released) => {
            if let Some(response) = audited(&state, principal, &tenant, "hold.release", json!({"id": id})) {
                return response;
            }
            axum::Json(released).into_response()
        }
        Err(error) => hold_error(error),
    }
}
