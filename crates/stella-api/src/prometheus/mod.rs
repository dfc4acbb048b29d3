//! The Prometheus HTTP API on the embedded store: PromQL queries (instant and range, in [`query`]),
//! series, label names and label values, and build information, answered with Prometheus's envelopes
//! (`{"status":"success","data":...}`, `{"status":"error","errorType":...,"error":...}`) and status
//! codes, so Grafana's Prometheus data source reads them unchanged. Parameters come from the query string
//! and from a form-encoded body (`POST`, as Grafana sends them), `match[]` repeated; times are unix
//! seconds (fractions allowed) or RFC 3339. Series are those the remote-write exporter would send (see
//! `stella_query::prometheus`), of the token's tenant (operators may add `tenant`).
use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use stella_otlp::prometheus::Naming;
use stella_query::prometheus::{SelectError, Selector, Series, SeriesQuery, valid_label_name};

use crate::{ApiState, Principal, tenant_of};

mod query;

pub(crate) use query::{query, query_range, result_json};

/// Prometheus's error types and the status each answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorType {
    /// A parameter is wrong: 400.
    BadData,
    /// The query could not be run (too many samples): 422.
    Execution,
    /// The query ran past its deadline: 503.
    Timeout,
    /// The store failed: 500.
    Internal,
    /// The token may not act for the tenant asked: 403 (Prometheus has no tenancy; the name says why).
    Forbidden,
}

/// An error in Prometheus's envelope.
#[derive(Debug)]
pub(crate) struct PromError {
    kind: ErrorType,
    message: String,
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let (status, name) = match self.kind {
            ErrorType::BadData => (StatusCode::BAD_REQUEST, "bad_data"),
            ErrorType::Execution => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
            ErrorType::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ErrorType::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ErrorType::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        };
        (status, axum::Json(json!({"status": "error", "errorType": name, "error": self.message}))).into_response()
    }
}

/// A `bad_data` error (400).
pub(crate) fn bad_data(message: impl Into<String>) -> PromError {
    PromError { kind: ErrorType::BadData, message: message.into() }
}

/// A success envelope, with Prometheus's `warnings` when there are any.
fn success(data: Value, warnings: &[String]) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    axum::Json(body).into_response()
}

/// The parameters of one request: the query string, then a form-encoded body.
pub(crate) struct Parameters(Vec<(String, String)>);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Parameters {
    type Rejection = PromError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = request.uri().query().map(str::to_string);
        let headers = request.headers().clone();
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|error| bad_data(format!("cannot read the request body: {error}")))?;
        Parameters::new(query.as_deref(), &headers, &body)
    }
}

impl Parameters {
    fn new(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<Parameters, PromError> {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        if !body.is_empty() {
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
            if !content_type.starts_with("application/x-www-form-urlencoded") {
                return Err(bad_data(format!(
                    "a request body must be application/x-www-form-urlencoded, not {content_type:?}"
                )));
            }
            pairs.extend(form_urlencoded::parse(body).map(|(name, value)| (name.into_owned(), value.into_owned())));
        }
        Ok(Parameters(pairs))
    }

    /// The first value of parameter `name`.
    pub(crate) fn one(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub(crate) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The selectors of every `match[]`.
    fn selectors(&self) -> Result<Vec<Selector>, PromError> {
        self.all("match[]").map(|text| Selector::parse(text).map_err(bad_data)).collect()
    }

    /// `start` and `end` as unix milliseconds (all of time when absent).
    fn range(&self) -> Result<(i64, i64), PromError> {
        let start = self.one("start").map(|text| parse_time("start", text)).transpose()?.unwrap_or(i64::MIN);
        let end = self.one("end").map(|text| parse_time("end", text)).transpose()?.unwrap_or(i64::MAX);
        if end < start {
            return Err(bad_data("invalid parameter \"end\": end timestamp must not be before start time"));
        }
        Ok((start, end))
    }

    /// `limit`: 0 or absent for none.
    fn limit(&self) -> Result<Option<usize>, PromError> {
        match self.one("limit") {
            None => Ok(None),
            Some(text) => match text.parse::<usize>() {
                Ok(0) => Ok(None),
                Ok(limit) => Ok(Some(limit)),
                Err(_) => Err(bad_data(format!("invalid parameter \"limit\": cannot parse {text:?} to a valid limit"))),
            },
        }
    }
}

/// A Prometheus time: unix seconds (with a fraction) or RFC 3339, as unix milliseconds.
fn parse_time(name: &str, text: &str) -> Result<i64, PromError> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    text.parse::<jiff::Timestamp>()
        .map(|at| at.as_millisecond())
        .map_err(|_| bad_data(format!("invalid parameter \"{name}\": cannot parse {text:?} to a valid timestamp")))
}

/// How the store's series are named: as the remote-write exporter names them by default.
const NAMING: Naming = Naming { namespace: None, add_suffixes: true };

/// The store as the PromQL engine's source: the series of `tenant`, named as remote-write names them, at
/// most `max_samples` samples per read.
pub(crate) fn store_source<'a>(
    stores: &'a dyn stella_query::StoreView,
    tenant: &'a str,
    max_samples: usize,
) -> impl Fn(&[Selector], (i64, i64)) -> Result<Vec<Series>, SelectError> + 'a {
    move |selectors: &[Selector], range: (i64, i64)| {
        let query = SeriesQuery { selectors: selectors.to_vec(), range, max_samples };
        stella_query::prometheus::select(stores, tenant, &query, &NAMING)
    }
}

/// Runs `read` with the request's tenant on the blocking pool (store reads block); its errors in
/// Prometheus's classes.
async fn read_blocking<T: Send + 'static>(
    state: &ApiState,
    principal: Option<&Principal>,
    parameters: &Parameters,
    read: impl FnOnce(&dyn stella_query::StoreView, &str) -> Result<T, PromError> + Send + 'static,
) -> Result<T, PromError> {
    let tenant = tenant_of(principal, parameters.one("tenant"))
        .map_err(|error| PromError { kind: ErrorType::Forbidden, message: error.message })?;
    let stores = std::sync::Arc::clone(state.collector.stores());
    match tokio::task::spawn_blocking(move || read(stores.as_ref(), &tenant)).await {
        Ok(answer) => answer,
        Err(_) => Err(PromError { kind: ErrorType::Internal, message: "the query failed unexpectedly".into() }),
    }
}

impl From<SelectError> for PromError {
    fn from(error: SelectError) -> Self {
        match error {
            SelectError::TooManySamples(error) => PromError { kind: ErrorType::Execution, message: error.to_string() },
            SelectError::Store(error) => PromError { kind: ErrorType::Internal, message: error.to_string() },
        }
    }
}

/// The series the request's `match[]` selects (refused without one when `required`) and its `limit`.
async fn select(
    state: &ApiState,
    principal: Option<&Principal>,
    parameters: &Parameters,
    required: bool,
) -> Result<(Vec<Series>, Option<usize>), PromError> {
    let selectors = parameters.selectors()?;
    if required && selectors.is_empty() {
        return Err(bad_data("no match[] parameter provided"));
    }
    let limit = parameters.limit()?;
    let max_samples = state.collector.query_limits().max_samples;
    let query = SeriesQuery { selectors, range: parameters.range()?, max_samples };
    let series = read_blocking(state, principal, parameters, move |stores, tenant| {
        Ok(stella_query::prometheus::select(stores, tenant, &query, &NAMING)?)
    })
    .await?;
    Ok((series, limit))
}

/// A list answer: the first `limit` items, with Prometheus's warning when it cut the list.
fn list<T: serde::Serialize>(mut items: Vec<T>, limit: Option<usize>) -> Response {
    let mut warnings = Vec::new();
    if let Some(limit) = limit
        && items.len() > limit
    {
        items.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    success(json!(items), &warnings)
}

/// `GET|POST /api/v1/series`: the label sets of the series `match[]` selects with samples in the range.
pub(crate) async fn series(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        let (series, limit) = select(&state, principal.as_deref(), &parameters, true).await?;
        let sets: Vec<Value> = series
            .into_iter()
            .map(|series| {
                Value::Object(series.labels.into_iter().map(|(name, value)| (name, Value::String(value))).collect())
            })
            .collect();
        Ok::<Response, PromError>(list(sets, limit))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET|POST /api/v1/labels`: the label names of the series `match[]` selects (every series without
/// one) with samples in the range, sorted.
pub(crate) async fn labels(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        let (series, limit) = select(&state, principal.as_deref(), &parameters, false).await?;
        let names: BTreeSet<String> =
            series.into_iter().flat_map(|series| series.labels).map(|(name, _)| name).collect();
        Ok::<Response, PromError>(list(names.into_iter().collect(), limit))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/label/{name}/values`: the values label `name` takes in the series `match[]` selects
/// (every series without one) with samples in the range, sorted.
pub(crate) async fn label_values(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        if !valid_label_name(&name) {
            return Err(bad_data(format!("invalid label name: {name:?}")));
        }
        let (series, limit) = select(&state, principal.as_deref(), &parameters, false).await?;
        let values: BTreeSet<String> = series
            .into_iter()
            .filter_map(|series| series.labels.into_iter().find(|(label, _)| *label == name).map(|(_, value)| value))
            .collect();
        Ok::<Response, PromError>(list(values.into_iter().collect(), limit))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// How far back `/api/v1/metadata` looks without `start` (Prometheus answers for what it scrapes now).
const METADATA_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// `GET /api/v1/metadata`: the type, help and unit of each metric family stored in the last day (or
/// between `start` and `end`), `metric` naming one, `limit` families at most, `limit_per_metric`
/// entries of each.
pub(crate) async fn metadata(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        let count = |name: &str| match parameters.one(name) {
            None => Ok(None),
            Some(text) => match text.parse::<i64>() {
                Ok(limit) if limit > 0 => Ok(Some(usize::try_from(limit).unwrap_or(usize::MAX))),
                Ok(_) => Ok(None),
                Err(_) => {
                    Err(bad_data(format!("invalid parameter \"{name}\": cannot parse {text:?} to a valid limit")))
                }
            },
        };
        let (limit, per_metric) = (count("limit")?, count("limit_per_metric")?);
        let metric = parameters.one("metric").map(str::to_string);
        let (start, end) = parameters.range()?;
        let end = if end == i64::MAX { jiff::Timestamp::now().as_millisecond() } else { end };
        let start = if start == i64::MIN { end.saturating_sub(METADATA_WINDOW_MS) } else { start };
        let families = read_blocking(&state, principal.as_deref(), &parameters, move |stores, tenant| {
            stella_query::prometheus::metadata(stores, tenant, (start, end), &NAMING)
                .map_err(|error| PromError { kind: ErrorType::Internal, message: error.to_string() })
        })
        .await?;
        let mut data = serde_json::Map::new();
        for (name, entries) in families {
            if metric.as_ref().is_some_and(|wanted| *wanted != name) {
                continue;
            }
            if limit.is_some_and(|limit| data.len() >= limit) {
                break;
            }
            let entries: Vec<Value> = entries
                .into_iter()
                .take(per_metric.unwrap_or(usize::MAX))
                .map(|family| json!({"type": family.kind, "help": family.help, "unit": family.unit}))
                .collect();
            data.insert(name, Value::Array(entries));
        }
        Ok::<Response, PromError>(success(Value::Object(data), &[]))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET|POST /api/v1/format_query`: `query` in PromQL's canonical layout (promql-parser's prettifier,
/// a port of Prometheus's); a query that does not parse is `bad_data` with the parser's message.
pub(crate) async fn format_query(parameters: Parameters) -> Response {
    let Some(query) = parameters.one("query") else {
        return bad_data("invalid parameter \"query\": query is required").into_response();
    };
    match promql_parser::parser::parse(query) {
        Ok(expression) => success(json!(expression.prettify()), &[]),
        Err(error) => bad_data(format!("invalid parameter \"query\": {error}")).into_response(),
    }
}

/// `GET /api/v1/status/buildinfo`: the build, in Prometheus's fields (Grafana reads `version`).
pub(crate) async fn buildinfo() -> Response {
    success(
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "revision": option_env!("STELLA_GIT_COMMIT").unwrap_or("unknown"),
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        }),
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_unix_seconds_or_rfc_3339() {
        assert_eq!(parse_time("start", "1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("start", "1700000000.123").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_time("start", "2023-11-14T22:13:20.5Z").unwrap(), 1_700_000_000_500);
        let error = parse_time("end", "yesterday").unwrap_err();
        assert_eq!(error.kind, ErrorType::BadData);
        assert!(error.message.contains("invalid parameter \"end\""), "{}", error.message);
    }

    #[test]
    fn parameters_come_from_the_query_string_and_a_form_body_with_match_repeated() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        let parameters =
            Parameters::new(Some("match%5B%5D=up&start=1"), &headers, b"match[]=%7Bjob%3D%22api%22%7D&end=2").unwrap();
        assert_eq!(parameters.all("match[]").collect::<Vec<_>>(), vec!["up", "{job=\"api\"}"]);
        assert_eq!(parameters.range().unwrap(), (1000, 2000));
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(Parameters::new(None, &headers, b"{}").is_err());
        let backwards = Parameters::new(Some("start=5&end=4"), &HeaderMap::new(), &[]).unwrap();
        assert!(backwards.range().unwrap_err().message.contains("end timestamp must not be before start"));
    }
}
