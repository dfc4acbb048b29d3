//! Loki's query API on the store, as Grafana's Loki data source reads it (with the same auth and tenancy
//! as the other read routes): `/loki/api/v1/query_range` and `/loki/api/v1/query` (LogQL; `query`,
//! `start`, `end`, `time` in nanoseconds, float seconds or RFC 3339, `limit`, `direction`, `step`),
//! `/loki/api/v1/labels`, `/loki/api/v1/label/{name}/values`, `/loki/api/v1/series`,
//! `/loki/api/v1/index/stats` and `/loki/api/v1/status/buildinfo`. Streams are answered with
//! `encodingFlags: ["categorize-labels"]` and three-element entries when the client asks for them
//! (`X-Loki-Response-Encoding-Flags`), as Loki does; errors are plain text with Loki's status codes.
use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use stella_collector::auth::Principal;
use stella_query::logql::{self, Category, FoundLine, LogqlError, Stored};
use stella_query::promql::{self, Options, QueryError};

use crate::plain::{Refusal, now_nanos};
use crate::prometheus::{Parameters, result_json};
use crate::{ApiState, tenant_of};

/// The version reported to clients that check it.
const LOKI_COMPATIBLE_VERSION: &str = "3.5.0";
/// Lines a log query returns without `limit`.
const DEFAULT_LIMIT: usize = 100;
/// The most lines one log query may ask for (Loki's `max_entries_limit_per_query`).
const MAX_LIMIT: usize = 5000;
const HOUR: u64 = 3600 * 1_000_000_000;

fn bad(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.into())
}

impl From<LogqlError> for Refusal {
    fn from(error: LogqlError) -> Refusal {
        match error {
            LogqlError::Parse(_) | LogqlError::BadQuery(_) => bad(error.to_string()),
            LogqlError::Query(QueryError::BadData(message) | QueryError::Execution(message)) => bad(message),
            LogqlError::Query(QueryError::Timeout) => {
                Refusal(StatusCode::GATEWAY_TIMEOUT, "request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed".into())
            }
            other => Refusal(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

/// A time parameter as Loki reads it: integer nanoseconds (or seconds when ten digits or fewer), float
/// seconds, or RFC 3339.
fn time(parameters: &Parameters, name: &str) -> Result<Option<u64>, Refusal> {
    let Some(text) = parameters.one(name).filter(|text| !text.is_empty()) else { return Ok(None) };
    if let Ok(integer) = text.parse::<u64>() {
        return Ok(Some(if text.len() <= 10 { integer.saturating_mul(1_000_000_000) } else { integer }));
    }
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Ok(Some((seconds * 1e9) as u64));
    }
    match text.parse::<jiff::Timestamp>() {
        Ok(timestamp) => Ok(Some(u64::try_from(timestamp.as_nanosecond()).unwrap_or(0))),
        Err(_) => Err(bad(format!(
            "invalid {name}: cannot parse {text:?} as a unix timestamp (nanoseconds or seconds) or RFC 3339"
        ))),
    }
}

/// `start` and `end`, `window` back from now by default.
fn range(parameters: &Parameters, window: u64) -> Result<(u64, u64), Refusal> {
    let end = time(parameters, "end")?.unwrap_or_else(now_nanos);
    let start = time(parameters, "start")?.unwrap_or_else(|| end.saturating_sub(window));
    if end < start {
        return Err(bad("the end time must not be before the start time"));
    }
    Ok((start, end))
}

fn limit(parameters: &Parameters) -> Result<usize, Refusal> {
    match parameters.one("limit").filter(|text| !text.is_empty()) {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(0) => Err(bad("limit must be a positive value")),
            Ok(limit) if limit > MAX_LIMIT => Err(bad(format!(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {MAX_LIMIT})"
            ))),
            Ok(limit) => Ok(limit),
            Err(_) => Err(bad(format!("invalid limit: {text:?} is not a number"))),
        },
    }
}

fn forward(parameters: &Parameters) -> Result<bool, Refusal> {
    match parameters.one("direction").map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("backward") => Ok(false),
        Some("forward") => Ok(true),
        Some(other) => Err(bad(format!("invalid direction {other:?}: backward or forward"))),
    }
}

/// `step` as a duration (`15s`, `60000ms`) or float seconds, in milliseconds; by default as Loki picks it
/// (a 250th of the range, at least a second).
fn step(parameters: &Parameters, (start, end): (u64, u64)) -> Result<i64, Refusal> {
    let millis = match parameters.one("step").filter(|text| !text.is_empty()) {
        None => ((end - start) / 1_000_000_000 / 250).max(1) as f64 * 1000.0,
        Some(text) => match text.parse::<f64>() {
            Ok(seconds) => seconds * 1000.0,
            Err(_) => match stella_query::traceql::duration_nanos(text) {
                Some(nanos) => nanos as f64 / 1e6,
                None => return Err(bad(format!("invalid step: {text:?} is not a duration or a number of seconds"))),
            },
        },
    };
    if millis.is_nan() || millis < 1.0 {
        return Err(bad("zero or negative query resolution step widths are not accepted. Try a positive integer"));
    }
    if (end - start) as f64 / 1e6 / millis > promql::MAX_POINTS_PER_SERIES as f64 {
        return Err(bad(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    Ok(millis as i64)
}

/// The tenant and a reader of its logs, on the blocking pool.
async fn run<T: Send + 'static>(
    state: &ApiState,
    principal: Option<&Principal>,
    parameters: &Parameters,
    work: impl FnOnce(&Stored<'_>) -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    let tenant = tenant_of(principal, parameters.one("tenant"))
        .map_err(|denied| Refusal(StatusCode::FORBIDDEN, denied.message))?;
    let stores = std::sync::Arc::clone(state.collector.stores());
    tokio::task::spawn_blocking(move || work(&Stored { view: stores.as_ref(), tenant: &tenant }))
        .await
        .unwrap_or_else(|_| Err(Refusal(StatusCode::INTERNAL_SERVER_ERROR, "the query failed unexpectedly".into())))
}

fn object(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(pairs.into_iter().map(|(name, value)| (name, Value::String(value))).collect())
}

/// Lines grouped into streams: by stream labels with the other labels per entry when `categorized`,
/// else by every label.
fn streams_json(found: Vec<FoundLine>, categorized: bool) -> Value {
    let mut order: Vec<Vec<(String, String)>> = Vec::new();
    let mut streams: BTreeMap<Vec<(String, String)>, Vec<Value>> = BTreeMap::new();
    for line in found {
        let mut key = Vec::new();
        let (mut metadata, mut parsed) = (Vec::new(), Vec::new());
        for (name, (value, category)) in line.labelled.labels {
            match category {
                _ if !categorized => key.push((name, value)),
                Category::Stream => key.push((name, value)),
                Category::Metadata => metadata.push((name, value)),
                Category::Parsed => parsed.push((name, value)),
            }
        }
        let at = line.at.to_string();
        let entry = if categorized {
            let mut categories = serde_json::Map::new();
            if !metadata.is_empty() {
                categories.insert("structuredMetadata".into(), object(metadata));
            }
            if !parsed.is_empty() {
                categories.insert("parsed".into(), object(parsed));
            }
            json!([at, line.labelled.line, categories])
        } else {
            json!([at, line.labelled.line])
        };
        if !streams.contains_key(&key) {
            order.push(key.clone());
        }
        streams.entry(key).or_default().push(entry);
    }
    Value::Array(
        order
            .into_iter()
            .map(|key| {
                let values = streams.remove(&key).unwrap_or_default();
                json!({"stream": object(key), "values": values})
            })
            .collect(),
    )
}

/// Loki's envelope, keys in Loki's order (`encodingFlags` before `result`, as Grafana needs).
fn envelope(result_type: &str, result: &str, categorized: bool) -> Response {
    let flags = if categorized { r#""encodingFlags":["categorize-labels"],"# } else { "" };
    let body = format!(
        r#"{{"status":"success","data":{{"resultType":"{result_type}",{flags}"result":{result},"stats":{{}}}}}}"#
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Whether the client asked for categorized labels.
fn categorized(headers: &HeaderMap) -> bool {
    headers
        .get_all("x-loki-response-encoding-flags")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|flag| flag.trim() == "categorize-labels")
}

/// The evaluation options and the line limit of a metric query, from `api.limits`.
fn options(state: &ApiState) -> (Options, usize) {
    let limits = state.collector.query_limits();
    (Options { deadline: Some(Instant::now() + limits.timeout), ..Options::default() }, limits.max_lines)
}

fn query_text(parameters: &Parameters) -> Result<String, Refusal> {
    match parameters.one("query").map(str::trim).filter(|query| !query.is_empty()) {
        Some(query) => Ok(query.to_string()),
        None => Err(bad("query parameter is required: a LogQL query such as {service_name=\"cart\"}")),
    }
}

/// `GET|POST /loki/api/v1/query_range`.
pub(crate) async fn query_range(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    headers: HeaderMap,
    parameters: Parameters,
) -> Response {
    let categorized = categorized(&headers);
    let answer = async {
        let text = query_text(&parameters)?;
        let window = range(&parameters, HOUR)?;
        if logql::is_log_query(&text) {
            let query = logql::log_query(&text).map_err(LogqlError::from)?;
            let (limit, forward) = (limit(&parameters)?, forward(&parameters)?);
            let found = run(&state, principal.as_deref(), &parameters, move |source| {
                logql::lines(source, &query, window, limit, forward)
                    .map_err(|error| Refusal(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
            })
            .await?;
            return Ok(envelope("streams", &streams_json(found, categorized).to_string(), categorized));
        }
        let query = logql::metric_query(&text).map_err(LogqlError::from)?;
        let step = step(&parameters, window)?;
        let steps = ((window.0 / 1_000_000) as i64, (window.1 / 1_000_000) as i64, step);
        let (options, max_lines) = options(&state);
        let value = run(&state, principal.as_deref(), &parameters, move |source| {
            Ok(logql::metric(source, &query, steps, false, options, max_lines)?)
        })
        .await?;
        let (result_type, result) = result_json(&value, steps.1);
        Ok::<Response, Refusal>(envelope(result_type, &result, false))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET|POST /loki/api/v1/query`: an instant metric query (Grafana's health check sends
/// `vector(1)+vector(1)`).
pub(crate) async fn query(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        let text = query_text(&parameters)?;
        if logql::is_log_query(&text) {
            return Err(bad(
                "log queries are not supported as an instant query type, please change your query to a range query type",
            ));
        }
        let query = logql::metric_query(&text).map_err(LogqlError::from)?;
        let at = (time(&parameters, "time")?.unwrap_or_else(now_nanos) / 1_000_000) as i64;
        let (options, max_lines) = options(&state);
        let value = run(&state, principal.as_deref(), &parameters, move |source| {
            Ok(logql::metric(source, &query, (at, at, 1), true, options, max_lines)?)
        })
        .await?;
        let (kind, result) = result_json(&value, at);
        Ok::<Response, Refusal>(envelope(kind, &result, false))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// The selector of `query` (or `match[]`), if given.
fn selector(parameters: &Parameters, name: &str) -> Result<Vec<logql::Matcher>, Refusal> {
    match parameters.one(name).map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(Vec::new()),
        Some(text) => Ok(logql::log_query(text).map_err(LogqlError::from)?.selector),
    }
}

fn list(values: impl IntoIterator<Item = String>) -> Response {
    axum::Json(json!({"status": "success", "data": values.into_iter().collect::<Vec<_>>()})).into_response()
}

/// `GET /loki/api/v1/labels`: stream label names (the last 6 hours by default).
pub(crate) async fn labels(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        let (window, selector) = (range(&parameters, 6 * HOUR)?, selector(&parameters, "query")?);
        run(&state, principal.as_deref(), &parameters, move |source| {
            logql::label_names(source, &selector, window)
                .map_err(|error| Refusal(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
        })
        .await
    };
    answer.await.map(list).unwrap_or_else(IntoResponse::into_response)
}

/// `GET /loki/api/v1/label/{name}/values`.
pub(crate) async fn label_values(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Path(name): Path<String>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        let (window, selector) = (range(&parameters, 6 * HOUR)?, selector(&parameters, "query")?);
        run(&state, principal.as_deref(), &parameters, move |source| {
            logql::label_values(source, &name, &selector, window)
                .map_err(|error| Refusal(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
        })
        .await
    };
    answer.await.map(list).unwrap_or_else(IntoResponse::into_response)
}

/// `GET|POST /loki/api/v1/series?match[]=`: the streams the selectors pick.
pub(crate) async fn series(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        let window = range(&parameters, 6 * HOUR)?;
        let mut selectors = Vec::new();
        for text in parameters.all("match[]").chain(parameters.all("match")) {
            selectors.push(logql::log_query(text).map_err(LogqlError::from)?.selector);
        }
        if selectors.is_empty() {
            selectors.push(Vec::new());
        }
        run(&state, principal.as_deref(), &parameters, move |source| {
            let mut all = BTreeMap::new();
            for selector in &selectors {
                let (streams, _) = logql::series(source, selector, window)
                    .map_err(|error| Refusal(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
                all.extend(streams);
            }
            Ok(all)
        })
        .await
    };
    match answer.await {
        Ok(streams) => {
            let data: Vec<Value> = streams.into_keys().map(object).collect();
            axum::Json(json!({"status": "success", "data": data})).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// `GET /loki/api/v1/index/stats?query=`: streams, chunks, bytes and entries a selector covers (no
/// envelope, as Loki answers). A stored record of a stream counts as one chunk.
pub(crate) async fn index_stats(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        let (window, selector) = (range(&parameters, HOUR)?, selector(&parameters, "query")?);
        run(&state, principal.as_deref(), &parameters, move |source| {
            logql::series(source, &selector, window)
                .map_err(|error| Refusal(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
        })
        .await
    };
    match answer.await {
        Ok((_, stats)) => axum::Json(json!({
            "streams": stats.streams, "chunks": stats.streams, "bytes": stats.bytes, "entries": stats.entries,
        }))
        .into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// `GET /loki/api/v1/status/buildinfo`.
pub(crate) async fn buildinfo() -> Response {
    axum::Json(json!({
        "version": LOKI_COMPATIBLE_VERSION,
        "revision": format!("stella-{}", env!("CARGO_PKG_VERSION")),
        "branch": "", "buildUser": "", "buildDate": "", "goVersion": "",
    }))
    .into_response()
}
