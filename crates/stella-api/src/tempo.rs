//! Tempo's search API on the store, as Grafana's Tempo data source reads it (with the same auth and
//! tenancy as the other read routes): `GET /api/search` with TraceQL (`q`) or the older `tags`,
//! `minDuration`, `maxDuration`, `limit`, `spss`, `start`, `end`; tag discovery `GET
//! /api/v2/search/tags`, `/api/v2/search/tag/{tag}/values` and their v1 forms; `GET
//! /api/status/buildinfo`. Answers carry only the fields Grafana's strict protobuf-JSON decoder knows;
//! errors are plain text with Tempo's status codes.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use stella_collector::auth::Principal;
use stella_query::traceql::{self, Attribute, Condition, FoundTrace, Search, SpansetExpr, TagValue};

use crate::plain::{Refusal, now_nanos, refusal as error};
use crate::prometheus::Parameters;
use crate::{ApiState, tenant_of};

/// The version Grafana reads: TraceQL search and tag discovery are gated on a Tempo 2.x version.
const TEMPO_COMPATIBLE_VERSION: &str = "2.9.0";
/// How far back a search looks without `start` (nanoseconds).
const SEARCH_WINDOW: u64 = 3600 * 1_000_000_000;
/// How far back tag discovery looks without `start` (nanoseconds).
const TAG_WINDOW: u64 = 24 * 3600 * 1_000_000_000;

/// `start` and `end` (unix seconds) as nanoseconds; `window` back from now when absent.
fn range(parameters: &Parameters, window: u64) -> Result<(u64, u64), Refusal> {
    let seconds = |name: &str| -> Result<Option<u64>, Refusal> {
        match parameters.one(name) {
            None | Some("") | Some("0") => Ok(None),
            Some(text) => text
                .parse::<u64>()
                .map(|seconds| Some(seconds.saturating_mul(1_000_000_000)))
                .map_err(|_| error(StatusCode::BAD_REQUEST, format!("invalid {name}: {text:?} is not unix seconds"))),
        }
    };
    let end = seconds("end")?.unwrap_or_else(now_nanos);
    let start = seconds("start")?.unwrap_or_else(|| end.saturating_sub(window));
    if start >= end {
        return Err(error(StatusCode::BAD_REQUEST, "http parameter start must be before end"));
    }
    Ok((start, end))
}

fn positive(parameters: &Parameters, name: &str, default: usize) -> Result<usize, Refusal> {
    match parameters.one(name) {
        None | Some("") => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(value) if value > 0 => Ok(value),
            _ => Err(error(StatusCode::BAD_REQUEST, format!("invalid {name}: must be a positive number"))),
        },
    }
}

/// The older search form: `tags` (logfmt `key=value` pairs, `name` the span name) as one spanset.
fn tags_query(text: &str) -> Result<traceql::Query, String> {
    let mut condition = Condition::True;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').ok_or_else(|| format!("invalid tags: {rest:?} is not key=value"))?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(|| "invalid tags: unterminated quote".to_string())?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(' ').unwrap_or((after, ""))
        };
        let field = if key.trim() == "name" {
            Attribute::Intrinsic(traceql::Intrinsic::Name)
        } else {
            Attribute::Any(key.trim().to_string())
        };
        let test = Condition::TextEquals(field, value.to_string());
        condition = match condition {
            Condition::True => test,
            other => Condition::And(Box::new(other), Box::new(test)),
        };
        rest = after.trim();
    }
    Ok(traceql::Query { spansets: SpansetExpr::Filter(condition), select: Vec::new(), count: None })
}

fn duration(parameters: &Parameters, name: &str) -> Result<Option<u64>, Refusal> {
    match parameters.one(name) {
        None | Some("") => Ok(None),
        Some(text) => traceql::duration_nanos(text).map(Some).ok_or_else(|| {
            error(StatusCode::BAD_REQUEST, format!("invalid {name}: {text:?} is not a duration such as 100ms"))
        }),
    }
}

/// A value as OTLP/JSON's `AnyValue`, as Tempo writes attribute values (durations as text).
fn any_value(value: &TagValue) -> Value {
    match value {
        TagValue::Int(number) => json!({"intValue": number.to_string()}),
        TagValue::Float(number) => json!({"doubleValue": number}),
        TagValue::Bool(flag) => json!({"boolValue": flag}),
        other => json!({"stringValue": other.text()}),
    }
}

fn trace_json(trace: &FoundTrace) -> Value {
    let spans: Vec<Value> = trace
        .spans
        .iter()
        .map(|span| {
            let mut out = json!({
                "spanID": span.span_id,
                "name": span.name,
                "startTimeUnixNano": span.start.to_string(),
                "durationNanos": span.duration.to_string(),
            });
            if !span.attributes.is_empty() {
                out["attributes"] = Value::Array(
                    span.attributes.iter().map(|(key, value)| json!({"key": key, "value": any_value(value)})).collect(),
                );
            }
            out
        })
        .collect();
    let spanset = json!({"spans": spans, "matched": trace.matched});
    let mut out = json!({
        "traceID": trace.trace_id,
        "rootServiceName": trace.root_service_name,
        "rootTraceName": trace.root_trace_name,
        "startTimeUnixNano": trace.start.to_string(),
        "spanSet": spanset,
        "spanSets": [spanset],
    });
    if trace.duration_ms > 0 {
        out["durationMs"] = json!(trace.duration_ms.min(u64::from(u32::MAX)));
    }
    out
}

/// `GET /api/search`.
pub(crate) async fn search(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let tenant = match tenant_of(principal.as_deref(), parameters.one("tenant")) {
        Ok(tenant) => tenant,
        Err(denied) => return error(StatusCode::FORBIDDEN, denied.message).into_response(),
    };
    let query = match (
        parameters.one("q").filter(|q| !q.trim().is_empty()),
        parameters.one("tags").filter(|t| !t.trim().is_empty()),
    ) {
        (Some(_), Some(_)) => {
            return error(StatusCode::BAD_REQUEST, "invalid request: q and tags cannot be used together")
                .into_response();
        }
        (Some(q), None) => traceql::parse(q).map_err(|parse| parse.to_string()),
        (None, Some(tags)) => tags_query(tags),
        (None, None) => {
            Ok(traceql::Query { spansets: SpansetExpr::Filter(Condition::True), select: Vec::new(), count: None })
        }
    };
    let query = match query {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, message).into_response(),
    };
    let search = (|| {
        Ok::<Search, Refusal>(Search {
            query,
            range: range(&parameters, SEARCH_WINDOW)?,
            limit: positive(&parameters, "limit", 20)?,
            spans_per_spanset: positive(&parameters, "spss", 3)?,
            min_duration: duration(&parameters, "minDuration")?,
            max_duration: duration(&parameters, "maxDuration")?,
            max_spans: state.collector.query_limits().max_spans,
        })
    })();
    let search = match search {
        Ok(search) => search,
        Err(refusal) => return refusal.into_response(),
    };
    let stores = std::sync::Arc::clone(state.collector.stores());
    let found = tokio::task::spawn_blocking(move || traceql::search(stores.as_ref(), &tenant, &search)).await;
    match found {
        Ok(Ok((traces, inspected, bytes))) => axum::Json(json!({
            "traces": traces.iter().map(trace_json).collect::<Vec<_>>(),
            "metrics": {"inspectedTraces": inspected, "inspectedBytes": bytes.to_string(), "completedJobs": 1, "totalJobs": 1},
        }))
        .into_response(),
        Ok(Err(failed)) => search_failed(failed).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the search failed unexpectedly").into_response(),
    }
}

/// A failed search or tag discovery: 400 when it would hold more spans than `api.limits.max_spans`
/// (the client can narrow the range), else 500.
fn search_failed(failed: traceql::SearchError) -> Refusal {
    match failed {
        traceql::SearchError::TooManySpans { .. } => error(StatusCode::BAD_REQUEST, failed.to_string()),
        traceql::SearchError::Store(_) => error(StatusCode::INTERNAL_SERVER_ERROR, failed.to_string()),
    }
}

/// Runs tag discovery on the blocking pool, reading at most `api.limits.max_spans` spans.
async fn discover<T: Send + 'static>(
    state: &ApiState,
    principal: Option<&Principal>,
    parameters: &Parameters,
    work: impl FnOnce(&dyn stella_query::StoreView, &str, (u64, u64), usize) -> Result<T, traceql::SearchError>
    + Send
    + 'static,
) -> Result<T, Refusal> {
    let tenant = tenant_of(principal, parameters.one("tenant"))
        .map_err(|denied| error(StatusCode::FORBIDDEN, denied.message))?;
    let window = range(parameters, TAG_WINDOW)?;
    let stores = std::sync::Arc::clone(state.collector.stores());
    let max_spans = state.collector.query_limits().max_spans;
    match tokio::task::spawn_blocking(move || work(stores.as_ref(), &tenant, window, max_spans)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(failed)) => Err(search_failed(failed)),
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "tag discovery failed unexpectedly")),
    }
}

/// `GET /api/v2/search/tags?scope=`: attribute names by scope (resource, span, intrinsic).
pub(crate) async fn tags_v2(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let scope = parameters.one("scope").unwrap_or("").to_string();
    if !matches!(scope.as_str(), "" | "all" | "resource" | "span" | "intrinsic" | "event" | "link" | "instrumentation")
    {
        return error(StatusCode::BAD_REQUEST, format!("invalid scope: {scope:?}")).into_response();
    }
    let limit = match positive(&parameters, "limit", 5000) {
        Ok(limit) => limit,
        Err(refusal) => return refusal.into_response(),
    };
    let names = discover(&state, principal.as_deref(), &parameters, move |stores, tenant, window, max_spans| {
        traceql::tag_names(stores, tenant, window, limit, max_spans)
    })
    .await;
    let (resource, span) = match names {
        Ok(names) => names,
        Err(refusal) => return refusal.into_response(),
    };
    let intrinsic: Vec<&str> = traceql::INTRINSIC_TAGS.to_vec();
    let mut scopes = Vec::new();
    for (name, tags) in [
        ("resource", resource.into_iter().collect::<Vec<_>>()),
        ("span", span.into_iter().collect()),
        ("intrinsic", intrinsic.iter().map(|tag| tag.to_string()).collect()),
    ] {
        if scope.is_empty() || scope == "all" || scope == name {
            scopes.push(json!({"name": name, "tags": tags}));
        }
    }
    axum::Json(json!({"scopes": scopes, "metrics": {"inspectedBytes": "0"}})).into_response()
}

/// `GET /api/search/tags`: attribute names of every scope.
pub(crate) async fn tags_v1(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let names = discover(&state, principal.as_deref(), &parameters, |stores, tenant, window, max_spans| {
        traceql::tag_names(stores, tenant, window, 5000, max_spans)
    })
    .await;
    match names {
        Ok((resource, span)) => {
            let all: std::collections::BTreeSet<String> = resource.into_iter().chain(span).collect();
            axum::Json(json!({"tagNames": all, "metrics": {"inspectedBytes": "0"}})).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// The values of `tag` on spans admitted by `q` (a spanset filter; one that does not parse is ignored,
/// as Tempo does).
async fn values(
    state: &ApiState,
    principal: Option<&Principal>,
    parameters: &Parameters,
    tag: Attribute,
) -> Result<Vec<TagValue>, Refusal> {
    let filter = parameters.one("q").and_then(|q| traceql::parse(q).ok()).and_then(|query| match query.spansets {
        SpansetExpr::Filter(condition) => Some(condition),
        SpansetExpr::Binary(..) => None,
    });
    let limit = positive(parameters, "limit", 1000)?;
    discover(state, principal, parameters, move |stores, tenant, window, max_spans| {
        traceql::tag_values(stores, tenant, window, &tag, filter.as_ref(), limit, max_spans)
    })
    .await
}

/// `GET /api/v2/search/tag/{tag}/values`: typed values (`string`, `int`, `float`, `bool`, `keyword`).
pub(crate) async fn tag_values_v2(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Path(tag): Path<String>,
    parameters: Parameters,
) -> Response {
    let Some(attribute) = traceql::attribute(&tag) else {
        return error(StatusCode::BAD_REQUEST, "please provide a valid tagName").into_response();
    };
    match values(&state, principal.as_deref(), &parameters, attribute).await {
        Ok(values) => {
            let values: Vec<Value> =
                values.iter().map(|value| json!({"type": value.type_name(), "value": value.text()})).collect();
            axum::Json(json!({"tagValues": values, "metrics": {"inspectedBytes": "0"}})).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// `GET /api/search/tag/{tag}/values`: the values of an unscoped attribute (or intrinsic) as text.
pub(crate) async fn tag_values_v1(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    Path(tag): Path<String>,
    parameters: Parameters,
) -> Response {
    let attribute = traceql::attribute(&tag)
        .filter(|attribute| matches!(attribute, Attribute::Intrinsic(_)))
        .unwrap_or(Attribute::Any(tag));
    match values(&state, principal.as_deref(), &parameters, attribute).await {
        Ok(values) => {
            let values: Vec<String> = values.iter().map(TagValue::text).collect();
            axum::Json(json!({"tagValues": values, "metrics": {"inspectedBytes": "0"}})).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// `GET /api/status/buildinfo`: Tempo's build information (Grafana gates TraceQL features on the
/// version); `revision` names the real build.
pub(crate) async fn buildinfo() -> Response {
    axum::Json(json!({
        "version": TEMPO_COMPATIBLE_VERSION,
        "revision": format!("stella-{}-{}", env!("CARGO_PKG_VERSION"), option_env!("STELLA_GIT_COMMIT").unwrap_or("unknown")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_older_tags_form_becomes_one_spanset() {
        let query = tags_query(r#"service.name=cart name="GET /x" http.status_code=500"#).unwrap();
        let SpansetExpr::Filter(Condition::And(first, last)) = query.spansets else { panic!() };
        assert!(matches!(*first, Condition::And(..)));
        assert_eq!(*last, Condition::TextEquals(Attribute::Any("http.status_code".into()), "500".into()));
        assert!(tags_query("nonsense").unwrap_err().contains("is not key=value"));
    }

    #[test]
    fn values_are_written_as_tempo_writes_them() {
        assert_eq!(any_value(&TagValue::Int(500)), json!({"intValue": "500"}));
        assert_eq!(any_value(&TagValue::Duration(1_500_000_000)), json!({"stringValue": "1.5s"}));
        assert_eq!(any_value(&TagValue::Keyword("error".into())), json!({"stringValue": "error"}));
    }
}
