//! A PromQL engine over stored series, with the semantics of Prometheus 2.x (the version a site's
//! Prometheus most likely runs, and the one our interop tests compare with): a 5-minute lookback,
//! closed selection windows, staleness markers that end a series, `offset` (negative too) and `@`,
//! subqueries on a grid aligned to their step, every aggregation, vector matching with `on`/`ignoring`/
//! `group_left`/`group_right`/`bool`, and the 2.x function set.
//!
//! An expression is evaluated at one time ([`instant`]) or at each step of a range ([`range`]). The
//! series every selector of the expression needs are read once, in one pass over the store
//! ([`Source`]), for the whole window the expression looks at; evaluation then works in memory.
mod aggregate;
mod binary;
mod eval;
mod functions;

use std::time::Instant;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr};

use crate::prometheus::{LabelSet, SelectError, Selector, Series};

/// The default lookback of an instant vector selector: a sample older than this is not current.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// The most points a range query may give one series (Prometheus's limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels, sorted by name.
    pub labels: LabelSet,
    /// Its value.
    pub value: f64,
}

/// One series of a range vector (or of a range query's answer).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Its labels, sorted by name.
    pub labels: LabelSet,
    /// Its points: unix milliseconds and value, by time.
    pub points: Vec<(i64, f64)>,
}

/// What an expression evaluates to at one time.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number.
    Scalar(f64),
    /// A string.
    String(String),
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector.
    Matrix(Vec<RangeSeries>),
}

/// Where the engine reads series: those any of `selectors` selects with samples in `range` (unix
/// milliseconds, inclusive).
pub trait Source {
    /// The selected series, each with its samples in the range.
    fn select(&self, selectors: &[Selector], range: (i64, i64)) -> Result<Vec<Series>, SelectError>;
}

impl<F> Source for F
where
    F: Fn(&[Selector], (i64, i64)) -> Result<Vec<Series>, SelectError>,
{
    fn select(&self, selectors: &[Selector], range: (i64, i64)) -> Result<Vec<Series>, SelectError> {
        self(selectors, range)
    }
}

/// Limits of one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The lookback of instant vector selectors, milliseconds.
    pub lookback_ms: i64,
    /// When evaluation gives up with [`QueryError::Timeout`].
    pub deadline: Option<Instant>,
}

impl Default for Options {
    fn default() -> Self {
        Options { lookback_ms: LOOKBACK_MS, deadline: None }
    }
}

/// Why a query failed, in Prometheus's error classes.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query or a parameter is wrong (`bad_data`, 400).
    #[error("{0}")]
    BadData(String),
    /// The query is well formed but cannot be evaluated (`execution`, 422).
    #[error("{0}")]
    Execution(String),
    /// Evaluation ran past its deadline (`timeout`, 503).
    #[error("query timed out in expression evaluation")]
    Timeout,
    /// The series could not be read.
    #[error(transparent)]
    Select(#[from] SelectError),
}

/// Parses a query; the message is the parser's, prefixed as Prometheus prefixes it.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    parser::parse(query).map_err(|error| QueryError::BadData(format!("invalid parameter \"query\": {error}")))
}

/// Evaluates `expr` at `time` (unix milliseconds).
pub fn instant(source: &dyn Source, expr: &Expr, time: i64, options: Options) -> Result<Value, QueryError> {
    let evaluator = eval::Evaluator::load(source, expr, (time, time), options)?;
    evaluator.eval(expr, time)
}

/// Evaluates `expr` at `start`, `start + step`, ... up to `end` (unix milliseconds): one series per
/// label set, sorted by labels; a scalar expression gives one series without labels.
pub fn range(
    source: &dyn Source,
    expr: &Expr,
    (start, end): (i64, i64),
    step: i64,
    options: Options,
) -> Result<Vec<RangeSeries>, QueryError> {
    match expr.value_type() {
        ValueType::Vector | ValueType::Scalar => {}
        other => {
            let name = if other == ValueType::Matrix { "range vector".to_string() } else { other.to_string() };
            return Err(QueryError::BadData(format!(
                "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
            )));
        }
    }
    if step <= 0 {
        return Err(QueryError::BadData(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    if end < start {
        return Err(QueryError::BadData(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    if (end - start) / step >= MAX_POINTS_PER_SERIES {
        return Err(QueryError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                .into(),
        ));
    }
    let evaluator = eval::Evaluator::load(source, expr, (start, end), options)?;
    let mut series: std::collections::HashMap<LabelSet, Vec<(i64, f64)>> = std::collections::HashMap::new();
    let mut time = start;
    while time <= end {
        evaluator.check_deadline()?;
        match evaluator.eval(expr, time)? {
            Value::Scalar(value) => series.entry(Vec::new()).or_default().push((time, value)),
            Value::Vector(samples) => {
                for sample in samples {
                    series.entry(sample.labels).or_default().push((time, sample.value));
                }
            }
            Value::String(_) | Value::Matrix(_) => {
                return Err(QueryError::Execution(
                    "a range query must evaluate to a scalar or an instant vector".into(),
                ));
            }
        }
        time += step;
    }
    let mut answer: Vec<RangeSeries> =
        series.into_iter().map(|(labels, points)| RangeSeries { labels, points }).collect();
    answer.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(answer)
}

/// A value as Prometheus writes it: the shortest decimal that reads back exactly, never an exponent,
/// and `NaN`, `+Inf`, `-Inf`.
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{value}")
    }
}

/// A time as Prometheus writes it: unix seconds with the milliseconds, if any, as three digits.
pub fn format_time(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    let magnitude = millis.unsigned_abs();
    let (seconds, fraction) = (magnitude / 1000, magnitude % 1000);
    if fraction == 0 { format!("{sign}{seconds}") } else { format!("{sign}{seconds}.{fraction:03}") }
}

#[cfg(test)]
mod tests;
