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
use stella_otlp::attributes::label_text;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::{OtlpRequest, Signal, attributes};

use stella_collector::StoreRegistry;
use stella_store::chunks::{ScanFilter, StoreError, Visit};

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
    let records = blocking(move || stores.trace_records(&tenant, &trace_id)).await?;
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

/// One trace in a search answer.
#[derive(Debug, serde::Serialize)]
struct FoundTrace {
    #[serde(rename = "traceId")]
    trace_id: String,
    #[serde(rename = "serviceName")]
    service: String,
    #[serde(rename = "spanName")]
    name: String,
    #[serde(rename = "startTimeUnixNano")]
    start: String,
    #[serde(rename = "durationMs")]
    duration_ms: f64,
    #[serde(rename = "matchedSpans")]
    spans: u64,
    error: bool,
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
) -> Result<Vec<FoundTrace>, ApiError> {
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
    blocking(move || {
        let mut found: Vec<FoundTrace> = Vec::new();
        let mut index: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
        let outcome = stores.scan(&tenant, Signal::Traces, (start, end), filter.service.as_deref(), &mut |record| {
            let Ok(OtlpRequest::Traces(request)) = OtlpRequest::decode_protobuf(Signal::Traces, record) else {
                return true;
            };
            for group in &request.resource_spans {
                let service = attributes::service_name(group.resource.as_ref()).unwrap_or("unknown_service");
                for span in group.scope_spans.iter().flat_map(|scope| &scope.spans) {
                    if !filter.matches(service, span, (start, end)) {
                        continue;
                    }
                    let duration = span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano);
                    let error = span.status.as_ref().is_some_and(|status| status.code == 2);
                    match index.get(&span.trace_id) {
                        Some(at) => {
                            let trace = &mut found[*at];
                            trace.spans += 1;
                            trace.error |= error;
                        }
                        None if found.len() < limit => {
                            index.insert(span.trace_id.clone(), found.len());
                            found.push(FoundTrace {
                                trace_id: hex::encode(&span.trace_id),
                                service: service.to_string(),
                                name: span.name.clone(),
                                start: span.start_time_unix_nano.to_string(),
                                duration_ms: duration as f64 / 1e6,
                                spans: 1,
                                error,
                            });
                        }
                        None => return false,
                    }
                }
            }
            true
        });
        outcome.map(|()| found)
    })
    .await
}

/// Span-level filters of a trace search.
#[derive(Debug, Default)]
struct SpanFilter {
    service: Option<String>,
    name: Option<String>,
    status: Option<i32>,
    min_duration: u64,
    attributes: Vec<(String, String)>,
}

impl SpanFilter {
    fn matches(&self, service: &str, span: &stella_otlp::proto::trace::v1::Span, (start, end): (u64, u64)) -> bool {
        let attribute = |key: &str| attributes::get(&span.attributes, key).and_then(attributes::scalar_text);
        self.service.as_deref().is_none_or(|wanted| wanted == service)
            && self.name.as_deref().is_none_or(|wanted| wanted == span.name)
            && self.status.is_none_or(|wanted| span.status.as_ref().map_or(0, |status| status.code) == wanted)
            && span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) >= self.min_duration
            && span.end_time_unix_nano >= start
            && span.start_time_unix_nano <= end
            && self.attributes.iter().all(|(key, value)| attribute(key).as_deref() == Some(value.as_str()))
    }
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
    tokio::task::spawn_blocking(move || search.stream(&stores, &frames));
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
    service: Option<String>,
    severity_min: i32,
    contains: Option<String>,
    attributes: Vec<(String, String)>,
    range: (u64, u64),
    limit: usize,
    tenant: String,
}

/// A matching log record: its time, and its JSON answer.
type FoundLog = (u64, serde_json::Value);

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
            service,
            severity_min,
            contains,
            attributes,
            range: (start, end),
            limit: limit.unwrap_or(100),
            tenant,
        })
    }

    /// Runs the search on this (blocking) thread and sends the answer to `frames` as it is found: the
    /// first frame opens the JSON object, the last closes it; a failure before anything was sent is
    /// sent alone. Stops early when the receiver hangs up.
    fn stream(&self, stores: &StoreRegistry, frames: &tokio::sync::mpsc::Sender<Result<Vec<u8>, ApiError>>) {
        let mut sent = 0usize;
        let mut send = |log: &serde_json::Value| {
            let mut frame = if sent == 0 { b"{\"logs\":[".to_vec() } else { b",".to_vec() };
            if serde_json::to_writer(&mut frame, log).is_err() {
                return false;
            }
            sent += 1;
            frames.blocking_send(Ok(frame)).is_ok()
        };
        let outcome = self.newest_first(stores, &mut send);
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

    /// Hands every match to `emit`, newest first, until `limit` are out or `emit` returns false. Holds
    /// at most `limit` matches: those that can still be among the newest `limit`.
    fn newest_first(
        &self,
        stores: &StoreRegistry,
        emit: &mut dyn FnMut(&serde_json::Value) -> bool,
    ) -> Result<(), StoreError> {
        let filter = ScanFilter {
            service: self.service.as_deref(),
            severity_min: (self.severity_min > 0).then_some(self.severity_min),
            ..ScanFilter::default()
        };
        let cut = stores.cut(&self.tenant, Signal::Logs, self.range, filter)?;
        // Keyed by (time, order found): the last entry is the newest.
        let mut held: std::collections::BTreeMap<(u64, u64), serde_json::Value> = std::collections::BTreeMap::new();
        let (mut found, mut out, mut open) = (0u64, 0usize, true);
        let mut release = |held: &mut std::collections::BTreeMap<(u64, u64), serde_json::Value>,
                           bound: Option<u64>,
                           out: &mut usize| {
            while *out < self.limit {
                let Some(entry) = held.last_entry() else { break };
                if bound.is_some_and(|bound| entry.key().0 <= bound) {
                    break;
                }
                *out += 1;
                if !emit(&entry.remove()) {
                    return false;
                }
            }
            *out < self.limit
        };
        cut.visit_newest_first(stores.store(), &mut |step| match step {
            Visit::Bound(bound) => {
                open = release(&mut held, Some(bound), &mut out);
                open
            }
            Visit::Record(record) => {
                for (at, log) in self.matches(record) {
                    held.insert((at, found), log);
                    found += 1;
                    if held.len() > self.limit - out {
                        held.pop_first();
                    }
                }
                true
            }
        })?;
        if open {
            release(&mut held, None, &mut out);
        }
        Ok(())
    }

    /// The log records of one stored request that match every filter.
    fn matches(&self, record: &[u8]) -> Vec<FoundLog> {
        let Ok(OtlpRequest::Logs(request)) = OtlpRequest::decode_protobuf(Signal::Logs, record) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for group in &request.resource_logs {
            let service_name = attributes::service_name(group.resource.as_ref()).unwrap_or("unknown_service");
            if self.service.as_deref().is_some_and(|wanted| wanted != service_name) {
                continue;
            }
            for log in group.scope_logs.iter().flat_map(|scope| &scope.log_records) {
                let at = if log.time_unix_nano > 0 { log.time_unix_nano } else { log.observed_time_unix_nano };
                let body = label_text(log.body.as_ref());
                let attribute = |key: &str| {
                    log.attributes
                        .iter()
                        .find(|attribute| attribute.key == key)
                        .map(|attribute| label_text(attribute.value.as_ref()))
                };
                let matches = at >= self.range.0
                    && at <= self.range.1
                    && log.severity_number >= self.severity_min
                    && self.contains.as_deref().is_none_or(|needle| body.contains(needle))
                    && self.attributes.iter().all(|(key, value)| attribute(key).as_deref() == Some(value.as_str()));
                if !matches {
                    continue;
                }
                let shown_attributes: serde_json::Map<String, serde_json::Value> = log
                    .attributes
                    .iter()
                    .map(|attribute| {
                        (attribute.key.clone(), serde_json::Value::String(label_text(attribute.value.as_ref())))
                    })
                    .collect();
                found.push((
                    at,
                    serde_json::json!({
                        "timeUnixNano": at.to_string(),
                        "service": service_name,
                        "severityNumber": log.severity_number,
                        "severityText": log.severity_text,
                        "body": body,
                        "attributes": shown_attributes,
                        "traceId": hex::encode(&log.trace_id),
                        "spanId": hex::encode(&log.span_id),
                    }),
                ));
            }
        }
        found
    }
}

/// Search parameters of `GET /telemetry/query/metrics`.
const METRIC_SEARCH_KEYS: &str = "name, label.<key>, start, end, step, tenant";

/// Points gathered at most per query.
const METRIC_SCAN_CAP: usize = 100_000;

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
    blocking(move || {
        use stella_otlp::proto::metrics::v1::{metric::Data, number_data_point};
        type Labels = std::collections::BTreeMap<String, String>;
        let mut series: std::collections::BTreeMap<Labels, Vec<(u64, f64)>> = std::collections::BTreeMap::new();
        let mut points = 0usize;
        let filter = ScanFilter { metric: Some(&name), labels: &labels, ..ScanFilter::default() };
        let outcome = stores.scan(&tenant, Signal::Metrics, (start, end), filter, &mut |record| {
            let Ok(OtlpRequest::Metrics(request)) = OtlpRequest::decode_protobuf(Signal::Metrics, record) else {
                return true;
            };
            for group in &request.resource_metrics {
                let service = attributes::service_name(group.resource.as_ref()).map(str::to_string);
                for metric in group.scope_metrics.iter().flat_map(|scope| &scope.metrics) {
                    let mut add =
                        |suffix: &str, attributes: &[stella_otlp::proto::common::v1::KeyValue], at: u64, value: f64| {
                            if format!("{}{suffix}", metric.name) != name || at < start || at > end {
                                return;
                            }
                            let mut key: Labels = attributes
                                .iter()
                                .map(|attribute| (attribute.key.clone(), label_text(attribute.value.as_ref())))
                                .collect();
                            if let Some(service) = &service {
                                key.insert("service.name".into(), service.clone());
                            }
                            if labels.iter().all(|(label, wanted)| key.get(label) == Some(wanted)) {
                                series.entry(key).or_default().push((at, value));
                                points += 1;
                            }
                        };
                    let number = |point: &stella_otlp::proto::metrics::v1::NumberDataPoint| match point.value {
                        Some(number_data_point::Value::AsDouble(value)) => value,
                        Some(number_data_point::Value::AsInt(value)) => value as f64,
                        None => f64::NAN,
                    };
                    match &metric.data {
                        Some(Data::Gauge(gauge)) => gauge
                            .data_points
                            .iter()
                            .for_each(|point| add("", &point.attributes, point.time_unix_nano, number(point))),
                        Some(Data::Sum(sum)) => sum
                            .data_points
                            .iter()
                            .for_each(|point| add("", &point.attributes, point.time_unix_nano, number(point))),
                        Some(Data::Histogram(histogram)) => histogram.data_points.iter().for_each(|point| {
                            add("_count", &point.attributes, point.time_unix_nano, point.count as f64);
                            add("_sum", &point.attributes, point.time_unix_nano, point.sum.unwrap_or(f64::NAN));
                        }),
                        _ => {}
                    }
                }
            }
            points < METRIC_SCAN_CAP
        });
        outcome.map(|()| {
            series
                .into_iter()
                .map(|(labels, mut raw)| {
                    raw.sort_by_key(|(at, _)| *at);
                    raw.dedup_by_key(|(at, _)| *at);
                    let aligned: Option<Vec<serde_json::Value>> = step.map(|step| {
                        let mut aligned = Vec::new();
                        let mut at = start;
                        while at <= end {
                            let last = raw.iter().take_while(|(time, _)| *time <= at).last();
                            if let Some((_, value)) = last {
                                aligned.push(serde_json::json!([at.to_string(), value]));
                            }
                            match at.checked_add(step) {
                                Some(next) => at = next,
                                None => break,
                            }
                        }
                        aligned
                    });
                    let points: Vec<serde_json::Value> =
                        raw.iter().map(|(at, value)| serde_json::json!([at.to_string(), value])).collect();
                    let mut entry = serde_json::json!({"labels": labels, "points": points});
                    if let Some(aligned) = aligned {
                        entry["steps"] = serde_json::Value::Array(aligned);
                    }
                    entry
                })
                .collect()
        })
    })
    .await
}
