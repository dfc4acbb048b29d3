//! The HTTP API of a running `stella` (default `127.0.0.1:4319`, `api.endpoint`): health, readiness,
//! meta-metrics and config reload. Glue only: each handler calls the collector and shapes its answer.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | 200 `{"status":"ok"}` while the process lives |
//! | `GET /readyz` | 200 or 503 with one entry per component (receivers, pipelines, exporters) |
//! | `GET /metrics` | Prometheus text format 0.0.4 |
//! | `POST /telemetry/config/reload` | 200 with what changed and what needs a restart, or 400 with every config error |
//!
//! Errors are JSON `{"code","message"}` with a stable code.
#![deny(missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use stella_collector::{Collector, ReloadError};
use stella_metrics::Registry;

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// The running collector.
    pub collector: Arc<Collector>,
    /// The process's meta-metrics.
    pub registry: Registry,
}

/// The API routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/telemetry/config/reload", post(reload))
        .fallback(not_found)
        .with_state(state)
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let readiness = state.collector.readiness();
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(readiness)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], state.registry.encode()).into_response()
}

async fn reload(State(state): State<ApiState>) -> Response {
    match state.collector.reload().await {
        Ok(report) => axum::Json(report).into_response(),
        Err(ReloadError::Config(errors)) => {
            let problems: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            let body = json!({"code": errors.code(), "message": errors.to_string(), "errors": problems});
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
        Err(error) => error_response(StatusCode::SERVICE_UNAVAILABLE, error.code(), &error.to_string()),
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "api.not_found", "no such API route; see the stella-api docs for the routes")
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
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
