//! Queries of the embedded store, tenant-scoped (scope `read`): Tempo-compatible trace by id.
//!
//! - `GET /api/traces/{id}`: `{"batches":[ResourceSpans...]}` in OTLP/JSON, or the protobuf `TracesData`
//!   with `Accept: application/protobuf`;
//! - `GET /api/v2/traces/{id}`: `{"trace":{"resourceSpans":[...]}}`, or with `Accept: application/protobuf`
//!   Tempo's protobuf `TraceByIDResponse` (what Grafana's Tempo data source asks for and decodes);
//! - `GET /api/echo`: `echo` (Grafana's Tempo data source checks it).
//!
//! Spans sent twice (a client re-send) are returned once: dedupe by trace id and span id.
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use stella_collector::auth::Principal;
use stella_otlp::OtlpRequest;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_query::logs::{FoundLog, LogFilter};
use stella_query::metrics::MetricQuery;
use stella_query::traces::{SpanFilter, parse_trace_id};
use stella_query::{StoreError, StoreView};

use crate::{ApiError, ApiState, tenant_of};

/// `?tenant=` (operators only, for another tenant).
#[derive(serde::Deserialize)]
pub(crate) struct TenantQuery {
    #[serde(default)]
    pub(crate) tenant: Option<String>,
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
    let trace = blocking(move || stella_query::traces::trace(stores.as_ref(), &tenant, &trace_id)).await?;
    trace.ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        code: "query.trace_not_found",
        message: format!("trace {} not found", hex::encode(trace_id)),
    })
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
    if wants_protobuf(&headers) {
        // Tempo's `Trace` (field 1: repeated ResourceSpans) is OTLP's `TracesData` on the wire.
        return protobuf(trace.encode_to_vec());
    }
    axum::Json(serde_json::json!({"batches": resource_spans_json(trace)})).into_response()
}

pub(crate) async fn trace_v2(
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
    if wants_protobuf(&headers) {
        // `TraceByIDResponse { Trace trace = 1; ... }`: the trace as field 1, always present (Grafana
        // reads its spans without checking), the optional metrics and status left out.
        let mut body = Vec::new();
        prost::encoding::message::encode(1, &trace, &mut body);
        return protobuf(body);
    }
    axum::Json(serde_json::json!({"trace": {"resourceSpans": resource_spans_json(trace)}})).into_response()
}

/// Whether the client asks for protobuf (Tempo's rule: the `Accept` header names it).
fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/protobuf") || accept.contains("application/x-protobuf"))
}

/// A protobuf answer.
fn protobuf(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/protobuf")], body).into_response()
}

pub(crate) async fn echo() -> &'static str {
    "echo"
}

/// A 400 for a bad query parameter.
fn invalid(message: String) -> ApiError {
    crate::bad_request("query.invalid_parameter", message)
}

/// Runs store work on the blocking pool; its errors become API errors.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, stella_store::chunks::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    crate::blocking("query.failed", move || work().map_err(store_failed)).await
}

/// A query whose blocking task died.
fn failed_unexpectedly() -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "query.failed",
        message: "the query failed unexpectedly".into(),
    }
}

/// A query the store could not answer.
fn store_failed(error: StoreError) -> ApiError {
    crate::internal(error.code(), error)
}

/// What every search takes: the window (`start`, `end`), a `limit` (where the search has one), the
/// `tenant`, and `<prefix>.<key>=<value>` filters.
struct Common {
    start: u64,
    end: u64,
    limit: Option<usize>,
    tenant: Option<String>,
    prefixed: Vec<(String, String)>,
}

impl Common {
    /// The defaults; `limit` is `None` for a search without one.
    fn new(limit: Option<usize>) -> Self {
        Common { start: 0, end: u64::MAX, limit, tenant: None, prefixed: Vec::new() }
    }

    /// Takes a common parameter or a `<prefix>.<key>` filter; `Ok(false)` when `key` is neither.
    fn take(&mut self, key: &str, value: &str, prefix: &str) -> Result<bool, ApiError> {
        match key {
            "start" => self.start = parse_time("start", value)?,
            "end" => self.end = parse_time("end", value)?,
            "tenant" => self.tenant = Some(value.to_string()),
            "limit" if self.limit.is_some() => {
                let limit = value.parse::<usize>().ok().filter(|limit| (1..=1000).contains(limit));
                self.limit =
                    Some(limit.ok_or_else(|| invalid(format!("limit={value:?}; give a number from 1 to 1000")))?);
            }
            other => match other.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('.')) {
                Some(name) if !name.is_empty() => self.prefixed.push((name.to_string(), value.to_string())),
                _ => return Ok(false),
            },
        }
        Ok(true)
    }
}

/// Search parameters of `GET /telemetry/query/traces`.
const TRACE_SEARCH_KEYS: &str =
    "service, name, min_duration, status (error|ok|unset), attr.<key>, start, end, limit, tenant";

/// A time parameter: RFC 3339, or unix seconds.
fn parse_time(key: &str, text: &str) -> Result<u64, ApiError> {
    let invalid = || ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "query.invalid_parameter",
        message: format!("{key}={text:?} is not a time; give RFC 3339 (2026-11-29T10:00:00Z) or unix seconds"),
    };
    if let Ok(seconds) = text.parse::<u64>() {
        return seconds.checked_mul(1_000_000_000).ok_or_else(invalid);
    }
    let at: jiff::Timestamp = text.parse().map_err(|_| invalid())?;
    u64::try_from(at.as_nanosecond()).map_err(|_| invalid())
}

/// `GET /telemetry/query/traces`: traces with a span matching every filter, newest data first, at most
/// `limit` (default 20, at most 1000). A span matches when its service, name, status, attributes and
/// duration all do.
pub(crate) async fn search_traces(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Query(parameters): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    match search(&state, principal.as_deref(), parameters).await {
        Ok(found) => axum::Json(serde_json::json!({"traces": found})).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn search(
    state: &ApiState,
    principal: Option<&Principal>,
    parameters: std::collections::BTreeMap<String, String>,
) -> Result<Vec<stella_query::traces::FoundTrace>, ApiError> {
    let mut filter = SpanFilter::default();
    let mut common = Common::new(Some(20));
    for (key, value) in parameters {
        match key.as_str() {
            "service" => filter.service = Some(value),
            "name" => filter.name = Some(value),
            "status" => {
                filter.status = Some(match value.as_str() {
                    "unset" => 0,
                    "ok" => 1,
                    "error" => 2,
                    other => return Err(invalid(format!("status={other:?}; give error, ok or unset"))),
                })
            }
            "min_duration" => {
                let duration = stella_pipeline::duration::parse(&value).map_err(invalid)?;
                filter.min_duration = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
            }
            other => {
                if !common.take(other, &value, "attr")? {
                    return Err(invalid(format!("unknown parameter {other:?}; valid: {TRACE_SEARCH_KEYS}")));
                }
            }
        }
    }
    filter.attributes = std::mem::take(&mut common.prefixed);
    let Common { start, end, limit, tenant, .. } = common;
    let limit = limit.unwrap_or(20);
    let tenant = tenant_of(principal, tenant.as_deref())?;
    let stores = std::sync::Arc::clone(state.collector.stores());
    blocking(move || stella_query::traces::search(stores.as_ref(), &tenant, &filter, (start, end), limit)).await
}

/// Search parameters of `GET /telemetry/query/logs`.
const LOG_SEARCH_KEYS: &str = "service, severity_min (1-24 or TRACE|DEBUG|INFO|WARN|ERROR|FATAL), contains, attr.<key>, start, end, limit, tenant";

/// Answer frames buffered between the scan and the connection.
const LOG_STREAM_FRAMES: usize = 16;

/// `GET /telemetry/query/logs`: log records matching every filter, newest first, at most `limit`
/// (default 100, at most 1000), streamed as `{"logs":[...]}`: each record is sent as soon as no record
/// still unread can be newer (chunks are read by descending latest time), so the first arrive before
/// the scan ends, and the scan stops once `limit` are out. A store failure before the first record is
/// an error answer; after it, the array is closed and an `"error":{"code","message"}` member follows.
pub(crate) async fn search_logs(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Query(parameters): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    let search = match LogSearch::parse(principal.as_deref(), parameters) {
        Ok(search) => search,
        Err(error) => return error.into_response(),
    };
    let stores = std::sync::Arc::clone(state.collector.stores());
    let (frames, mut receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, ApiError>>(LOG_STREAM_FRAMES);
    tokio::task::spawn_blocking(move || search.stream(stores.as_ref(), &frames));
    let first = match receiver.recv().await {
        Some(Ok(frame)) => frame,
        Some(Err(error)) => return error.into_response(),
        None => return failed_unexpectedly().into_response(),
    };
    let rest = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let frame = receiver.recv().await?.ok()?;
        Some((Ok::<_, std::convert::Infallible>(frame), receiver))
    });
    let body = futures_util::StreamExt::chain(futures_util::stream::once(async move { Ok(first) }), rest);
    ([(header::CONTENT_TYPE, "application/json")], axum::body::Body::from_stream(body)).into_response()
}

/// A severity by number or name.
fn parse_severity(text: &str) -> Option<i32> {
    let named = match text.to_ascii_uppercase().as_str() {
        "TRACE" => Some(1),
        "DEBUG" => Some(5),
        "INFO" => Some(9),
        "WARN" | "WARNING" => Some(13),
        "ERROR" => Some(17),
        "FATAL" => Some(21),
        _ => None,
    };
    named.or_else(|| text.parse::<i32>().ok().filter(|number| (1..=24).contains(number)))
}

/// A parsed `GET /telemetry/query/logs`.
struct LogSearch {
    filter: LogFilter,
    limit: usize,
    tenant: String,
}

/// The JSON answer of one log record.
fn log_json(log: FoundLog) -> serde_json::Value {
    serde_json::json!({
        "timeUnixNano": log.at.to_string(),
        "service": log.service,
        "severityNumber": log.severity.0,
        "severityText": log.severity.1,
        "body": log.body,
        "attributes": log.attributes,
        "traceId": log.trace.0,
        "spanId": log.trace.1,
    })
}

impl LogSearch {
    fn parse(
        principal: Option<&Principal>,
        parameters: std::collections::BTreeMap<String, String>,
    ) -> Result<LogSearch, ApiError> {
        let (mut service, mut severity_min, mut contains) = (None, 0, None);
        let mut common = Common::new(Some(100));
        for (key, value) in parameters {
            match key.as_str() {
                "service" => service = Some(value),
                "severity_min" => {
                    severity_min = parse_severity(&value).ok_or_else(|| {
                        invalid(format!(
                            "severity_min={value:?}; give 1 to 24 or TRACE, DEBUG, INFO, WARN, ERROR, FATAL"
                        ))
                    })?
                }
                "contains" => contains = Some(value),
                other => {
                    if !common.take(other, &value, "attr")? {
                        return Err(invalid(format!("unknown parameter {other:?}; valid: {LOG_SEARCH_KEYS}")));
                    }
                }
            }
        }
        let Common { start, end, limit, tenant, prefixed: attributes } = common;
        let tenant = tenant_of(principal, tenant.as_deref())?;
        Ok(LogSearch {
            filter: LogFilter { service, severity_min, contains, attributes, range: (start, end) },
            limit: limit.unwrap_or(100),
            tenant,
        })
    }

    /// Runs the search on this (blocking) thread and sends the answer to `frames` as it is found: the
    /// first frame opens the JSON object, the last closes it; a failure before anything was sent is
    /// sent alone. Stops early when the receiver hangs up.
    fn stream(&self, stores: &dyn StoreView, frames: &tokio::sync::mpsc::Sender<Result<Vec<u8>, ApiError>>) {
        let mut sent = 0usize;
        let mut send = |log: FoundLog| {
            let mut frame = if sent == 0 { b"{\"logs\":[".to_vec() } else { b",".to_vec() };
            if serde_json::to_writer(&mut frame, &log_json(log)).is_err() {
                return false;
            }
            sent += 1;
            frames.blocking_send(Ok(frame)).is_ok()
        };
        let outcome = stella_query::logs::newest_first(stores, &self.tenant, &self.filter, self.limit, &mut send);
        let opened = sent > 0;
        let closing = match outcome {
            Ok(()) if opened => b"]}".to_vec(),
            Ok(()) => b"{\"logs\":[]}".to_vec(),
            Err(error) if !opened => {
                let _ = frames.blocking_send(Err(store_failed(error)));
                return;
            }
            Err(error) => {
                let error = store_failed(error);
                let detail = serde_json::json!({"code": error.code, "message": error.message});
                format!("],\"error\":{detail}}}").into_bytes()
            }
        };
        let _ = frames.blocking_send(Ok(closing));
    }
}

/// Search parameters of `GET /telemetry/query/metrics`.
const METRIC_SEARCH_KEYS: &str = "name, label.<key>, start, end, step, tenant";

/// `GET /telemetry/query/metrics`: the series of metric `name` (gauges and sums; histograms as `_count`
/// and `_sum`) whose labels (data-point attributes plus `service.name`) match every `label.<key>`, with
/// their raw points and, with `step`, one point per step (the last value at or before each step time).
pub(crate) async fn query_metrics(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Query(parameters): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    match metrics(&state, principal.as_deref(), parameters).await {
        Ok(series) => axum::Json(serde_json::json!({"series": series})).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn metrics(
    state: &ApiState,
    principal: Option<&Principal>,
    parameters: std::collections::BTreeMap<String, String>,
) -> Result<Vec<serde_json::Value>, ApiError> {
    let (mut name, mut step) = (None, None);
    let mut common = Common::new(None);
    for (key, value) in parameters {
        match key.as_str() {
            "name" => name = Some(value),
            "step" => {
                let duration = stella_pipeline::duration::parse(&value).map_err(invalid)?;
                step = Some(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX).max(1));
            }
            other => {
                if !common.take(other, &value, "label")? {
                    return Err(invalid(format!("unknown parameter {other:?}; valid: {METRIC_SEARCH_KEYS}")));
                }
            }
        }
    }
    let Common { start, end, tenant, prefixed: labels, .. } = common;
    let name = name.ok_or_else(|| invalid(format!("name is required; valid parameters: {METRIC_SEARCH_KEYS}")))?;
    if step.is_some() && (start == 0 || end == u64::MAX) {
        return Err(invalid("step needs start and end".into()));
    }
    let tenant = tenant_of(principal, tenant.as_deref())?;
    let stores = std::sync::Arc::clone(state.collector.stores());
    let query = MetricQuery { name, labels, range: (start, end), step };
    let series = blocking(move || stella_query::metrics::series(stores.as_ref(), &tenant, &query)).await?;
    let pairs = |points: &[(u64, f64)]| -> Vec<serde_json::Value> {
        points.iter().map(|(at, value)| serde_json::json!([at.to_string(), value])).collect()
    };
    Ok(series
        .into_iter()
        .map(|series| {
            let mut entry = serde_json::json!({"labels": series.labels, "points": pairs(&series.points)});
            if let Some(steps) = &series.steps {
                entry["steps"] = serde_json::Value::Array(pairs(steps));
            }
            entry
        })
        .collect())
}
