//! `GET|POST /api/v1/query` and `/api/v1/query_range`: PromQL evaluated on the store by
//! [`stella_query::promql`], answered exactly as Prometheus answers: `resultType` `vector`, `matrix`,
//! `scalar` or `string`, times as unix seconds with milliseconds, values as strings (`"NaN"`,
//! `"+Inf"`), and `bad_data` (400), `execution` (422), `timeout` (503) errors.
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use stella_query::promql::{self, Options, QueryError, RangeSeries, Value, format_time, format_value};

use super::{ErrorType, Parameters, PromError, bad_data, parse_time, read_blocking, store_source};
use crate::{ApiState, Principal};

impl From<QueryError> for PromError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::Select(select) => select.into(),
            QueryError::BadData(message) => PromError { kind: ErrorType::BadData, message },
            QueryError::Execution(message) => PromError { kind: ErrorType::Execution, message },
            QueryError::Timeout => PromError { kind: ErrorType::Timeout, message: QueryError::Timeout.to_string() },
        }
    }
}

/// A Prometheus duration parameter: seconds (with a fraction) or a duration such as `30s`, `1m30s`.
fn parse_duration(name: &str, text: &str) -> Result<Duration, PromError> {
    if let Ok(seconds) = text.parse::<f64>() {
        if (0.0..9.2e15).contains(&seconds) {
            return Ok(Duration::from_secs_f64(seconds));
        }
    } else if let Ok(duration) = promql_parser::util::parse_duration(text) {
        return Ok(duration);
    }
    Err(bad_data(format!("invalid parameter \"{name}\": cannot parse {text:?} to a valid duration")))
}

/// The evaluation limits of a request: its `timeout`, capped by `api.limits.timeout` (the default when
/// it names none), as Prometheus caps it by `--query.timeout`.
fn options(parameters: &Parameters, limit: Duration) -> Result<Options, PromError> {
    let timeout = parameters.one("timeout").map(|text| parse_duration("timeout", text)).transpose()?;
    let timeout = timeout.map_or(limit, |asked| asked.min(limit));
    Ok(Options { deadline: Some(Instant::now() + timeout), ..Options::default() })
}

/// `GET|POST /api/v1/query`: `query` evaluated at `time` (now when absent).
pub(crate) async fn query(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        let expr = promql::parse(parameters.one("query").unwrap_or_default())?;
        let time = match parameters.one("time") {
            Some(text) => parse_time("time", text)?,
            None => jiff::Timestamp::now().as_millisecond(),
        };
        let limits = state.collector.query_limits();
        let options = options(&parameters, limits.timeout)?;
        let value = read_blocking(&state, principal.as_deref(), &parameters, move |stores, tenant| {
            Ok(promql::instant(&store_source(stores, tenant, limits.max_samples), &expr, time, options)?)
        })
        .await?;
        Ok::<Response, PromError>(instant_body(&value, time))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET|POST /api/v1/query_range`: `query` evaluated at each `step` from `start` to `end`.
pub(crate) async fn query_range(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    parameters: Parameters,
) -> Response {
    let answer = async {
        let start = parse_time("start", parameters.one("start").unwrap_or_default())?;
        let end = parse_time("end", parameters.one("end").unwrap_or_default())?;
        if end < start {
            return Err(bad_data("invalid parameter \"end\": end timestamp must not be before start time"));
        }
        let step = parse_duration("step", parameters.one("step").unwrap_or_default())?;
        let step = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
        let expr = promql::parse(parameters.one("query").unwrap_or_default())?;
        let limits = state.collector.query_limits();
        let options = options(&parameters, limits.timeout)?;
        let series = read_blocking(&state, principal.as_deref(), &parameters, move |stores, tenant| {
            Ok(promql::range(&store_source(stores, tenant, limits.max_samples), &expr, (start, end), step, options)?)
        })
        .await?;
        Ok::<Response, PromError>(json_body("matrix", &matrix(&series)))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// The success envelope around a result already written as JSON.
fn json_body(result_type: &str, result: &str) -> Response {
    let body = format!("{{\"status\":\"success\",\"data\":{{\"resultType\":\"{result_type}\",\"result\":{result}}}}}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An instant query's answer.
fn instant_body(value: &Value, time: i64) -> Response {
    let (result_type, result) = result_json(value, time);
    json_body(result_type, &result)
}

/// A value as a Prometheus API result (as Loki writes metric results too): its `resultType` and the
/// `result` JSON; `time` (unix milliseconds) stamps a scalar, string or vector.
pub(crate) fn result_json(value: &Value, time: i64) -> (&'static str, String) {
    match value {
        Value::Scalar(number) => ("scalar", point(time, &format_value(*number))),
        Value::String(text) => ("string", point(time, text)),
        Value::Vector(samples) => {
            let mut out = String::from("[");
            for (index, sample) in samples.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "{{\"metric\":{},\"value\":{}}}",
                    metric(&sample.labels),
                    point(time, &format_value(sample.value))
                );
            }
            out.push(']');
            ("vector", out)
        }
        Value::Matrix(series) => ("matrix", matrix(series)),
    }
}

/// `[<time>,"<text>"]`.
fn point(time: i64, text: &str) -> String {
    format!("[{},{}]", format_time(time), json_string(text))
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// A label set as a JSON object.
fn metric(labels: &[(String, String)]) -> String {
    let pairs: Vec<String> =
        labels.iter().map(|(name, value)| format!("{}:{}", json_string(name), json_string(value))).collect();
    format!("{{{}}}", pairs.join(","))
}

/// Series as a JSON `matrix` result: `[{"metric":{...},"values":[[t,"v"],...]},...]`.
fn matrix(series: &[RangeSeries]) -> String {
    let mut out = String::from("[");
    for (index, one) in series.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let points: Vec<String> = one.points.iter().map(|(time, value)| point(*time, &format_value(*value))).collect();
        let _ = write!(out, "{{\"metric\":{},\"values\":[{}]}}", metric(&one.labels), points.join(","));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds_or_prometheus_durations() {
        assert_eq!(parse_duration("step", "15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("step", "0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("step", "1m30s").unwrap(), Duration::from_secs(90));
        let error = parse_duration("step", "soon").unwrap_err();
        assert_eq!(error.message, "invalid parameter \"step\": cannot parse \"soon\" to a valid duration");
        assert!(parse_duration("timeout", "-1").is_err());
    }

    #[test]
    fn a_request_timeout_may_shorten_the_configured_one_never_lengthen_it() {
        let deadline = |query: &str, limit: u64| {
            let parameters = Parameters(
                form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
            );
            let before = Instant::now();
            let deadline = options(&parameters, Duration::from_secs(limit)).unwrap().deadline.unwrap();
            let after = Instant::now();
            (deadline - after, deadline - before)
        };
        let within = |(least, most): (Duration, Duration), wanted: u64| {
            least <= Duration::from_secs(wanted) && Duration::from_secs(wanted) <= most
        };
        assert!(within(deadline("timeout=10m", 60), 60), "capped by api.limits.timeout");
        assert!(within(deadline("timeout=5s", 60), 5), "a shorter request timeout holds");
        assert!(within(deadline("", 60), 60), "no request timeout: the configured one");
    }

    #[test]
    fn results_are_written_in_prometheus_json() {
        let series = [RangeSeries {
            labels: vec![("__name__".into(), "up".into()), ("job".into(), "a\"b".into())],
            points: vec![(1_000, 1.0), (2_500, f64::NAN)],
        }];
        assert_eq!(matrix(&series), r#"[{"metric":{"__name__":"up","job":"a\"b"},"values":[[1,"1"],[2.500,"NaN"]]}]"#);
        assert_eq!(matrix(&[]), "[]");
        assert_eq!(point(1_700_000_000_123, "+Inf"), r#"[1700000000.123,"+Inf"]"#);
    }
}
