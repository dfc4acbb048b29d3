//! Queries of the embedded store, tenant-scoped (scope `read`): Tempo-compatible trace by id.
//!
//! - `GET /api/traces/{id}`: `{"batches":[ResourceSpans...]}` in OTLP/JSON, or the protobuf `TracesData`
//!   with `Accept: application/protobuf`;
//! - `GET /api/v2/traces/{id}`: `{"trace":{"resourceSpans":[...]}}`;
//! - `GET /api/echo`: `echo` (Grafana's Tempo data source checks it).
//!
//! Spans sent twice (a client re-send) are returned once: dedupe by trace id and span id.
use std::collections::HashSet;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use stella_collector::auth::Principal;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::{OtlpRequest, Signal};

use crate::{ApiError, ApiState, tenant_of};

/// `?tenant=` (operators only, for another tenant).
#[derive(serde::Deserialize)]
pub(crate) struct TenantQuery {
    #[serde(default)]
    pub(crate) tenant: Option<String>,
}

/// A trace id from a path: 1 to 32 hex digits, left-padded to 16 bytes (as Tempo accepts them).
pub fn parse_trace_id(text: &str) -> Option<[u8; 16]> {
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{text:0>32}");
    let mut id = [0u8; 16];
    hex::decode_to_slice(padded, &mut id).ok()?;
    Some(id)
}

/// The spans of `trace_id` in `records`, each once, grouped as they were sent.
pub fn trace_from_records(records: &[Vec<u8>], trace_id: &[u8; 16]) -> ExportTraceServiceRequest {
    let mut seen = HashSet::new();
    let mut trace = ExportTraceServiceRequest::default();
    for record in records {
        let Ok(OtlpRequest::Traces(request)) = OtlpRequest::decode_protobuf(Signal::Traces, record) else { continue };
        for mut group in request.resource_spans {
            for scope in &mut group.scope_spans {
                scope.spans.retain(|span| {
                    span.trace_id.as_slice() == trace_id.as_slice() && seen.insert(span.span_id.clone())
                });
            }
            group.scope_spans.retain(|scope| !scope.spans.is_empty());
            if !group.scope_spans.is_empty() {
                trace.resource_spans.push(group);
            }
        }
    }
    trace
}

async fn find(
    state: &ApiState,
    principal: Option<&Principal>,
    tenant: Option<&str>,
    id: &str,
) -> Result<ExportTraceServiceRequest, ApiError> {
    let tenant = tenant_of(principal, tenant)?;
    let trace_id = parse_trace_id(id).ok_or_else(|| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "query.invalid_trace_id",
        message: format!("{id:?} is not a trace id; give 1 to 32 hex digits"),
    })?;
    let stores = std::sync::Arc::clone(state.collector.stores());
    let records = tokio::task::spawn_blocking(move || stores.trace_records(&tenant, &trace_id))
        .await
        .map_err(|_| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "query.failed",
            message: "the lookup failed".into(),
        })?
        .map_err(|error| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: error.code(),
            message: error.to_string(),
        })?;
    let trace = trace_from_records(&records, &trace_id);
    if trace.resource_spans.is_empty() {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "query.trace_not_found",
            message: format!("trace {} not found", hex::encode(trace_id)),
        });
    }
    Ok(trace)
}

/// The OTLP/JSON `resourceSpans` array of a trace.
fn resource_spans_json(trace: ExportTraceServiceRequest) -> serde_json::Value {
    let json = stella_otlp::json::encode(&OtlpRequest::Traces(trace));
    serde_json::from_slice::<serde_json::Value>(&json)
        .map(|mut value| value["resourceSpans"].take())
        .unwrap_or_default()
}

pub(crate) async fn trace_v1(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Path(id): Path<String>,
    Query(query): Query<TenantQuery>,
    headers: HeaderMap,
) -> Response {
    let trace = match find(&state, principal.as_deref(), query.tenant.as_deref(), &id).await {
        Ok(trace) => trace,
        Err(error) => return error.into_response(),
    };
    let wants_protobuf = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/protobuf") || accept.contains("application/x-protobuf"));
    if wants_protobuf {
        return ([(header::CONTENT_TYPE, "application/protobuf")], trace.encode_to_vec()).into_response();
    }
    axum::Json(serde_json::json!({"batches": resource_spans_json(trace)})).into_response()
}

pub(crate) async fn trace_v2(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Path(id): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Response {
    match find(&state, principal.as_deref(), query.tenant.as_deref(), &id).await {
        Ok(trace) => {
            axum::Json(serde_json::json!({"trace": {"resourceSpans": resource_spans_json(trace)}})).into_response()
        }
        Err(error) => error.into_response(),
    }
}

pub(crate) async fn echo() -> &'static str {
    "echo"
}
