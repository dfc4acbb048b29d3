//! `/telemetry/tokens`: token management against a running server (operator scope), audited.
use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stella_collector::auth::{Principal, Scope};

use crate::{ApiState, audited, error_response};

/// The body of `POST /telemetry/tokens`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    tenant: String,
    scopes: BTreeSet<Scope>,
    #[serde(default)]
    expires_seconds: Option<u64>,
}

pub(crate) async fn list(State(state): State<ApiState>) -> Response {
    match state.token_admin.list() {
        Ok(records) => {
            let listed: Vec<_> = records
                .iter()
                .map(|r| json!({"id": r.id, "tenant": r.tenant, "scopes": r.scopes, "created": r.created, "expires": r.expires, "revoked": r.revoked}))
                .collect();
            axum::Json(json!({"tokens": listed})).into_response()
        }
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, error.code(), &error.to_string()),
    }
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    axum::Json(new): axum::Json<NewToken>,
) -> Response {
    if new.scopes.is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "tokens.no_scope",
            "give at least one scope: ingest, read, export, admin, operator",
        );
    }
    let declared =
        new.tenant == "default" || state.collector.config().tenants.iter().any(|tenant| tenant.id == new.tenant);
    if !declared {
        let message = format!(
            "tenant {:?} is not declared under tenants: in the server's config; declare it and reload first (its requests would be refused)",
            new.tenant
        );
        return error_response(StatusCode::BAD_REQUEST, "tokens.undeclared_tenant", &message);
    }
    let expires = new.expires_seconds.map(Duration::from_secs);
    let (record, token) = match state.token_admin.create(&new.tenant, new.scopes, expires) {
        Ok(created) => created,
        Err(error) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, error.code(), &error.to_string()),
    };
    let parameters = json!({"id": record.id, "scopes": record.scopes, "expires": record.expires});
    if let Some(failed) = audited(&state, principal.as_deref(), &record.tenant, "token.create", parameters) {
        return failed;
    }
    let body = json!({"id": record.id, "tenant": record.tenant, "scopes": record.scopes, "expires": record.expires, "token": token});
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

pub(crate) async fn revoke(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Path(id): Path<String>,
) -> Response {
    match state.token_admin.revoke(&id) {
        Ok(true) => audited(&state, principal.as_deref(), "*", "token.revoke", json!({"id": id}))
            .unwrap_or_else(|| StatusCode::NO_CONTENT.into_response()),
        Ok(false) => error_response(StatusCode::NOT_FOUND, "tokens.not_found", &format!("no token with id {id}")),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, error.code(), &error.to_string()),
    }
}
