//! PromQL functions, as Prometheus 2.x computes them: counters and gauges over a range (`rate`,
//! `increase`, `delta` with Prometheus's extrapolation, `irate`, `idelta`, `deriv`, `predict_linear`,
//! `holt_winters`, `changes`, `resets`, `*_over_time`), math, clamping and rounding, labels
//! (`label_replace`, `label_join`), dates, `absent`, `histogram_quantile` over classic buckets, and
//! `time`, `timestamp`, `vector`, `scalar`, `sort`.
use std::collections::HashMap;

use promql_parser::label::{METRIC_NAME, MatchOp};
use promql_parser::parser::{Call, Expr};

use super::aggregate::{kahan_sum, mean, quantile, variance};
use super::eval::{Evaluator, Window, drop_name, type_name};
use super::{QueryError, Sample, Value};
use crate::prometheus::{LabelSet, valid_label_name};

/// The arguments of one call, evaluated on demand.
struct Args<'a> {
    evaluator: &'a Evaluator,
    call: &'a Call,
    time: i64,
}

impl<'a> Args<'a> {
    fn name(&self) -> &'static str {
        self.call.func.name
    }

    fn count(&self) -> usize {
        self.call.args.args.len()
    }

    fn expr(&self, index: usize) -> Result<&Expr, QueryError> {
        self.call
            .args
            .args
            .get(index)
            .map(|arg| arg.as_ref())
            .ok_or_else(|| QueryError::Execution(format!("{}() expects argument {}", self.name(), index + 1)))
    }

    fn value(&self, index: usize) -> Result<Value, QueryError> {
        self.evaluator.eval(self.expr(index)?, self.time)
    }

    fn vector(&self, index: usize) -> Result<Vec<Sample>, QueryError> {
        match self.value(index)? {
            Value::Vector(samples) => Ok(samples),
            other => Err(self.wrong(index, "an instant vector", &other)),
        }
    }

    fn scalar(&self, index: usize) -> Result<f64, QueryError> {
        match self.value(index)? {
            Value::Scalar(value) => Ok(value),
            other => Err(self.wrong(index, "a scalar", &other)),
        }
    }

    fn string(&self, index: usize) -> Result<String, QueryError> {
        match self.value(index)? {
            Value::String(value) => Ok(value),
            other => Err(self.wrong(index, "a string", &other)),
        }
    }

    fn window(&self, index: usize) -> Result<Window<'a>, QueryError> {
        self.evaluator.eval_window(self.expr(index)?, self.time)
    }

    fn wrong(&self, index: usize, expected: &str, got: &Value) -> QueryError {
        QueryError::Execution(format!(
            "{}() expects {expected} as argument {}, got {}",
            self.name(),
            index + 1,
            type_name(got)
        ))
    }
}

/// Evaluates function call `call` at `time`.
pub(super) fn call(evaluator: &Evaluator, call: &Call, time: i64) -> Result<Value, QueryError> {
    let args = Args { evaluator, call, time };
    let name = args.name();
    if let Some(function) = math_function(name) {
        return Ok(Value::Vector(map_values(args.vector(0)?, function)));
    }
    if let Some(function) = date_function(name) {
        return date(&args, function);
    }
    if let Some(result) = over_time(&args)? {
        return Ok(Value::Vector(result));
    }
    let vector = match name {
        "time" => return Ok(Value::Scalar(time as f64 / 1000.0)),
        "pi" => return Ok(Value::Scalar(std::f64::consts::PI)),
        "scalar" => {
            let samples = args.vector(0)?;
            return Ok(Value::Scalar(match samples.as_slice() {
                [only] => only.value,
                _ => f64::NAN,
            }));
        }
        "vector" => vec![Sample { labels: Vec::new(), value: args.scalar(0)? }],
        "round" => {
            let to_nearest = if args.count() > 1 { args.scalar(1)? } else { 1.0 };
            let inverse = 1.0 / to_nearest;
            map_values(args.vector(0)?, |value| (value * inverse + 0.5).floor() / inverse)
        }
        "clamp" => {
            let (min, max) = (args.scalar(1)?, args.scalar(2)?);
            if max < min {
                return Ok(Value::Vector(Vec::new()));
            }
            map_values(args.vector(0)?, |value| go_max(min, go_min(max, value)))
        }
        "clamp_min" => {
            let min = args.scalar(1)?;
            map_values(args.vector(0)?, |value| go_max(min, value))
        }
        "clamp_max" => {
            let max = args.scalar(1)?;
            map_values(args.vector(0)?, |value| go_min(max, value))
        }
        "timestamp" => timestamp(&args)?,
        "sort" | "sort_desc" => {
            let mut samples = args.vector(0)?;
            let descending = name == "sort_desc";
            samples.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Less,
                (false, true) => std::cmp::Ordering::Greater,
                _ => {
                    let order = a.value.partial_cmp(&b.value).unwrap_or(std::cmp::Ordering::Equal);
                    if descending { order.reverse() } else { order }
                }
            });
            samples
        }
        "label_replace" => label_replace(&args)?,
        "label_join" => label_join(&args)?,
        "absent" => {
            if args.vector(0)?.is_empty() {
                vec![Sample { labels: absent_labels(args.expr(0)?), value: 1.0 }]
            } else {
                Vec::new()
            }
        }
        "histogram_quantile" => histogram_quantile(args.scalar(0)?, args.vector(1)?),
        // They read native histograms, which the store does not hold: no float sample has one.
        "histogram_count" | "histogram_sum" | "histogram_fraction" | "histogram_stddev" | "histogram_stdvar" => {
            Vec::new()
        }
        other => {
            return Err(QueryError::Execution(format!(
                "function {other}() is not supported by this engine (it implements the function set of Prometheus 2.x)"
            )));
        }
    };
    Ok(Value::Vector(vector))
}

/// Go's `math.Max`: NaN if either is.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// Go's `math.Min`: NaN if either is.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// Applies `function` to each value; the results are no longer the metric they were.
fn map_values(samples: Vec<Sample>, function: impl Fn(f64) -> f64) -> Vec<Sample> {
    samples
        .into_iter()
        .map(|sample| Sample { labels: drop_name(sample.labels), value: function(sample.value) })
        .collect()
}

fn math_function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => |value: f64| {
            if value > 0.0 {
                1.0
            } else if value < 0.0 {
                -1.0
            } else {
                value
            }
        },
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        _ => return None,
    })
}

/// `timestamp(v)`: the time of each sample, in seconds; a plain selector's samples keep their own
/// times, anything else is at the evaluation time.
fn timestamp(args: &Args<'_>) -> Result<Vec<Sample>, QueryError> {
    let mut expr = args.expr(0)?;
    while let Expr::Paren(paren) = expr {
        expr = &paren.expr;
    }
    if let Expr::VectorSelector(selector) = expr {
        return Ok(args
            .evaluator
            .select_instant(selector, args.time)
            .into_iter()
            .map(|(labels, time, _)| Sample { labels: drop_name(labels.clone()), value: time as f64 / 1000.0 })
            .collect());
    }
    let at = args.time as f64 / 1000.0;
    Ok(map_values(args.vector(0)?, |_| at))
}

/// A date function: a calendar field of each value (unix seconds), or of the evaluation time when
/// called without an argument.
fn date(args: &Args<'_>, field: fn(&jiff::civil::DateTime) -> f64) -> Result<Value, QueryError> {
    let of = |seconds: i64| {
        jiff::Timestamp::from_second(seconds)
            .map(|at| field(&jiff::tz::Offset::UTC.to_datetime(at)))
            .unwrap_or(f64::NAN)
    };
    if args.count() == 0 {
        return Ok(Value::Vector(vec![Sample { labels: Vec::new(), value: of(args.time.div_euclid(1000)) }]));
    }
    Ok(Value::Vector(
        args.vector(0)?
            .into_iter()
            .filter(|sample| sample.value.is_finite())
            .map(|sample| Sample { labels: drop_name(sample.labels), value: of(sample.value as i64) })
            .collect(),
    ))
}

fn date_function(name: &str) -> Option<fn(&jiff::civil::DateTime) -> f64> {
    Some(match name {
        "day_of_month" => |at| f64::from(at.day()),
        "day_of_week" => |at| f64::from(at.weekday().to_sunday_zero_offset()),
        "day_of_year" => |at| f64::from(at.day_of_year()),
        "days_in_month" => |at| f64::from(at.days_in_month()),
        "hour" => |at| f64::from(at.hour()),
        "minute" => |at| f64::from(at.minute()),
        "month" => |at| f64::from(at.month()),
        "year" => |at| f64::from(at.year()),
        _ => return None,
    })
}

/// A range function's points (unix milliseconds, value).
type Points<'p> = &'p [(i64, f64)];

/// What a range function computes from a series' points in a window (nothing: no value at this time).
type RangeFunction = dyn Fn(Points<'_>, &Window<'_>) -> Option<f64>;

/// The range functions: one value per series of the range vector, or `None` when `args` is not one.
fn over_time(args: &Args<'_>) -> Result<Option<Vec<Sample>>, QueryError> {
    let values = |points: Points<'_>| points.iter().map(|(_, value)| *value).collect::<Vec<f64>>();
    let name = args.name();
    let (window, function, keep_name): (Window<'_>, Box<RangeFunction>, bool) = match name {
        "rate" | "increase" | "delta" => {
            let (counter, rate) = (name != "delta", name == "rate");
            (args.window(0)?, Box::new(move |points, window| extrapolated_rate(points, window, counter, rate)), false)
        }
        "irate" | "idelta" => {
            let rate = name == "irate";
            (args.window(0)?, Box::new(move |points, _| instant_rate(points, rate)), false)
        }
        "avg_over_time" => (args.window(0)?, Box::new(|points, _| Some(mean(points.iter().map(|p| p.1)))), false),
        "sum_over_time" => (args.window(0)?, Box::new(|points, _| Some(kahan_sum(points.iter().map(|p| p.1)))), false),
        "count_over_time" => (args.window(0)?, Box::new(|points, _| Some(points.len() as f64)), false),
        "min_over_time" => (
            args.window(0)?,
            Box::new(|points, _| {
                points.iter().map(|p| p.1).reduce(|min, v| if v < min || min.is_nan() { v } else { min })
            }),
            false,
        ),
        "max_over_time" => (
            args.window(0)?,
            Box::new(|points, _| {
                points.iter().map(|p| p.1).reduce(|max, v| if v > max || max.is_nan() { v } else { max })
            }),
            false,
        ),
        "stdvar_over_time" => {
            (args.window(0)?, Box::new(|points, _| Some(variance(points.iter().map(|p| p.1)))), false)
        }
        "stddev_over_time" => {
            (args.window(0)?, Box::new(|points, _| Some(variance(points.iter().map(|p| p.1)).sqrt())), false)
        }
        "last_over_time" => (args.window(0)?, Box::new(|points, _| points.last().map(|p| p.1)), true),
        "present_over_time" => (args.window(0)?, Box::new(|_, _| Some(1.0)), false),
        "quantile_over_time" => {
            let q = args.scalar(0)?;
            (args.window(1)?, Box::new(move |points, _| Some(quantile(q, values(points)))), false)
        }
        "changes" | "resets" => {
            let resets = name == "resets";
            let count = move |points: Points<'_>, _: &Window<'_>| {
                let changed = points.windows(2).filter(|pair| {
                    let (previous, current) = (pair[0].1, pair[1].1);
                    if resets {
                        current < previous
                    } else {
                        current != previous && !(current.is_nan() && previous.is_nan())
                    }
                });
                Some(changed.count() as f64)
            };
            (args.window(0)?, Box::new(count), false)
        }
        "deriv" => (
            args.window(0)?,
            Box::new(|points, _| {
                let first = points.first()?.0;
                (points.len() >= 2).then(|| linear_regression(points, first).0)
            }),
            false,
        ),
        "predict_linear" => {
            let seconds = args.scalar(1)?;
            let time = args.time;
            (
                args.window(0)?,
                Box::new(move |points, _| {
                    (points.len() >= 2).then(|| {
                        let (slope, intercept) = linear_regression(points, time);
                        slope * seconds + intercept
                    })
                }),
                false,
            )
        }
        "holt_winters" => {
            let (smoothing, trend) = (args.scalar(1)?, args.scalar(2)?);
            if smoothing <= 0.0 || smoothing >= 1.0 {
                return Err(QueryError::Execution(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {smoothing:.6}"
                )));
            }
            if trend <= 0.0 || trend >= 1.0 {
                return Err(QueryError::Execution(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {trend:.6}"
                )));
            }
            (args.window(0)?, Box::new(move |points, _| holt_winters(&values(points), smoothing, trend)), false)
        }
        "absent_over_time" => {
            let window = args.window(0)?;
            return Ok(Some(if window.series.is_empty() {
                vec![Sample { labels: absent_labels(args.expr(0)?), value: 1.0 }]
            } else {
                Vec::new()
            }));
        }
        _ => return Ok(None),
    };
    Ok(Some(
        window
            .series
            .iter()
            .filter_map(|series| {
                let value = function(&series.points, &window)?;
                let labels = series.labels.iter().filter(|(label, _)| keep_name || label != METRIC_NAME).cloned();
                let labels = labels.collect();
                Some(Sample { labels, value })
            })
            .collect(),
    ))
}

/// `rate`, `increase` (`counter`) and `delta` over a window, extrapolated to its edges as Prometheus
/// does: to the window's edge if the first (last) sample is within 1.1 average intervals of it,
/// otherwise half an interval; a counter not below zero.
fn extrapolated_rate(points: &[(i64, f64)], window: &Window<'_>, counter: bool, rate: bool) -> Option<f64> {
    let (&(first_time, first), &(last_time, last)) = (points.first()?, points.last()?);
    if points.len() < 2 {
        return None;
    }
    let mut result = last - first;
    if counter {
        for pair in points.windows(2) {
            if pair[1].1 < pair[0].1 {
                result += pair[0].1;
            }
        }
    }
    let mut to_start = (first_time - window.from) as f64 / 1000.0;
    let to_end = (window.to - last_time) as f64 / 1000.0;
    let sampled = (last_time - first_time) as f64 / 1000.0;
    let average = sampled / (points.len() - 1) as f64;
    if counter && result > 0.0 && first >= 0.0 {
        let to_zero = sampled * (first / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold { to_start } else { average / 2.0 };
    interval += if to_end < threshold { to_end } else { average / 2.0 };
    let mut factor = interval / sampled;
    if rate {
        factor /= window.seconds;
    }
    Some(result * factor)
}

/// `irate` (`rate`) and `idelta`: from the last two samples.
fn instant_rate(points: &[(i64, f64)], rate: bool) -> Option<f64> {
    let [.., (previous_time, previous), (last_time, last)] = points else { return None };
    let mut result = last - previous;
    if rate && last < previous {
        result = *last;
    }
    let interval = last_time - previous_time;
    if interval == 0 {
        return None;
    }
    if rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and intercept at `intercept_time` (x in seconds from it), with Kahan sums;
/// a constant series has slope 0 (NaN if it is infinite).
fn linear_regression(points: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let Some(&(_, initial)) = points.first() else { return (f64::NAN, f64::NAN) };
    if points.iter().all(|(_, value)| *value == initial) {
        return if initial.is_infinite() { (f64::NAN, f64::NAN) } else { (0.0, initial) };
    }
    let n = points.len() as f64;
    let x = |time: i64| (time - intercept_time) as f64 / 1000.0;
    let sum_x = kahan_sum(points.iter().map(|(time, _)| x(*time)));
    let sum_y = kahan_sum(points.iter().map(|(_, value)| *value));
    let sum_xy = kahan_sum(points.iter().map(|(time, value)| x(*time) * value));
    let sum_x2 = kahan_sum(points.iter().map(|(time, _)| x(*time) * x(*time)));
    let covariance = sum_xy - sum_x * sum_y / n;
    let variance = sum_x2 - sum_x * sum_x / n;
    let slope = covariance / variance;
    (slope, sum_y / n - slope * sum_x / n)
}

/// Double exponential smoothing (Prometheus 2.x's `holt_winters`).
fn holt_winters(values: &[f64], smoothing: f64, trend: f64) -> Option<f64> {
    let [first, second, ..] = values else { return None };
    let (mut s0, mut s1, mut b) = (0.0, *first, second - first);
    for (i, value) in values.iter().enumerate().skip(1) {
        let x = smoothing * value;
        if i > 1 {
            b = trend * (s1 - s0) + (1.0 - trend) * b;
        }
        let y = (1.0 - smoothing) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// The labels `absent` gives: the selector's equality matchers, but a label matched more than once or
/// by another kind of matcher has none.
fn absent_labels(expr: &Expr) -> LabelSet {
    let selector = match expr {
        Expr::VectorSelector(selector) => selector,
        Expr::MatrixSelector(matrix) => &matrix.vs,
        _ => return Vec::new(),
    };
    let mut labels: LabelSet = Vec::new();
    let mut erased: Vec<&str> = Vec::new();
    for matcher in &selector.matchers.matchers {
        if matcher.name == METRIC_NAME {
            continue;
        }
        if matches!(matcher.op, MatchOp::Equal) && !labels.iter().any(|(name, _)| *name == matcher.name) {
            if !matcher.value.is_empty() {
                labels.push((matcher.name.clone(), matcher.value.clone()));
            }
        } else {
            erased.push(&matcher.name);
        }
    }
    labels.retain(|(name, _)| !erased.contains(&name.as_str()));
    labels.sort();
    labels
}

/// `label_replace(v, dst, replacement, src, regex)`.
fn label_replace(args: &Args<'_>) -> Result<Vec<Sample>, QueryError> {
    let (destination, replacement, source, pattern) =
        (args.string(1)?, args.string(2)?, args.string(3)?, args.string(4)?);
    let regex = regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|_| QueryError::Execution(format!("invalid regular expression in label_replace(): {pattern}")))?;
    if !valid_label_name(&destination) {
        return Err(QueryError::Execution(format!("invalid destination label name in label_replace(): {destination}")));
    }
    Ok(args
        .vector(0)?
        .into_iter()
        .map(|sample| {
            let value = label(&sample.labels, &source);
            let Some(captures) = regex.captures(value) else { return sample };
            let mut replaced = String::new();
            captures.expand(&replacement, &mut replaced);
            Sample { labels: with_label(sample.labels, &destination, replaced), value: sample.value }
        })
        .collect())
}

/// `label_join(v, dst, separator, src...)`.
fn label_join(args: &Args<'_>) -> Result<Vec<Sample>, QueryError> {
    let (destination, separator) = (args.string(1)?, args.string(2)?);
    let sources = (3..args.count()).map(|index| args.string(index)).collect::<Result<Vec<String>, _>>()?;
    if let Some(source) = sources.iter().find(|source| !valid_label_name(source)) {
        return Err(QueryError::Execution(format!("invalid source label name in label_join(): {source}")));
    }
    if !valid_label_name(&destination) {
        return Err(QueryError::Execution(format!("invalid destination label name in label_join(): {destination}")));
    }
    Ok(args
        .vector(0)?
        .into_iter()
        .map(|sample| {
            let joined =
                sources.iter().map(|source| label(&sample.labels, source)).collect::<Vec<&str>>().join(&separator);
            Sample { labels: with_label(sample.labels, &destination, joined), value: sample.value }
        })
        .collect())
}

/// The value of label `name` ("" when absent).
fn label<'l>(labels: &'l LabelSet, name: &str) -> &'l str {
    labels.iter().find(|(label, _)| label == name).map_or("", |(_, value)| value.as_str())
}

/// `labels` with `name` set to `value` (removed when `value` is empty).
fn with_label(mut labels: LabelSet, name: &str, value: String) -> LabelSet {
    labels.retain(|(label, _)| label != name);
    if !value.is_empty() {
        labels.push((name.to_string(), value));
        labels.sort();
    }
    labels
}

/// `histogram_quantile(q, buckets)` over classic buckets (series with an `le` label), grouped by their
/// other labels; the name is dropped.
fn histogram_quantile(q: f64, samples: Vec<Sample>) -> Vec<Sample> {
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    let mut groups: Vec<(LabelSet, Vec<(f64, f64)>)> = Vec::new();
    for sample in samples {
        let Ok(upper) = label(&sample.labels, "le").parse::<f64>() else { continue };
        let labels: LabelSet =
            sample.labels.into_iter().filter(|(name, _)| name != METRIC_NAME && name != "le").collect();
        let at = *index.entry(labels.clone()).or_insert_with(|| {
            groups.push((labels, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push((upper, sample.value));
    }
    groups.into_iter().map(|(labels, buckets)| Sample { labels, value: bucket_quantile(q, buckets) }).collect()
}

/// The quantile of cumulative buckets (upper bound, count), interpolated linearly inside its bucket.
fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if !buckets.last().is_some_and(|(upper, _)| *upper == f64::INFINITY) {
        return f64::NAN;
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (upper, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == upper => last.1 += count,
            _ => merged.push((upper, count)),
        }
    }
    let mut highest = f64::NEG_INFINITY;
    for bucket in &mut merged {
        if bucket.1 > highest {
            highest = bucket.1;
        } else if bucket.1 < highest {
            bucket.1 = highest;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let last = merged.len() - 1;
    let b = merged[..last].partition_point(|(_, count)| *count < rank);
    if b == last {
        return merged[last - 1].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_interpolate_as_prometheus_does() {
        let buckets = vec![(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (f64::INFINITY, 40.0)];
        assert_eq!(bucket_quantile(0.5, buckets.clone()), 0.1 + 0.4 * (10.0 / 20.0));
        assert_eq!(bucket_quantile(1.0, buckets.clone()), 1.0);
        assert_eq!(bucket_quantile(-1.0, buckets.clone()), f64::NEG_INFINITY);
        assert!(bucket_quantile(0.5, vec![(0.1, 1.0), (0.5, 2.0)]).is_nan(), "no +Inf bucket");
        assert!(bucket_quantile(0.5, vec![(f64::INFINITY, 0.0), (1.0, 0.0)]).is_nan(), "no observations");
        // Non-monotonic counts are made monotonic first.
        let uneven = vec![(1.0, 5.0), (2.0, 4.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.5, uneven), 1.0);
    }

    #[test]
    fn a_counter_rate_extrapolates_to_the_window_edges_and_not_below_zero() {
        let window = |from, to, seconds| Window { series: Vec::new(), from, to, seconds };
        // Samples every 10 s from 5 s to 55 s in a 60 s window, +10 each: extrapolated by 5 s each side.
        let points: Vec<(i64, f64)> = (0..6).map(|i| (5_000 + i * 10_000, 100.0 + 10.0 * i as f64)).collect();
        let increase = extrapolated_rate(&points, &window(0, 60_000, 60.0), true, false).unwrap();
        assert!((increase - 60.0).abs() < 1e-9, "{increase}");
        // 5 at the first sample, +50 per 10 s: zero was 1 s before it, so the start extrapolates 1 s,
        // not 5 (the end still 5 s): 250 * (50 + 1 + 5) / 50.
        let young: Vec<(i64, f64)> = (0..6).map(|i| (5_000 + i * 10_000, 5.0 + 50.0 * i as f64)).collect();
        let increase = extrapolated_rate(&young, &window(0, 60_000, 60.0), true, false).unwrap();
        assert!((increase - 280.0).abs() < 1e-9, "{increase}");
        // A reset adds the value before it.
        let reset = vec![(0, 10.0), (10_000, 20.0), (20_000, 5.0)];
        let increase = extrapolated_rate(&reset, &window(0, 20_000, 20.0), true, false).unwrap();
        assert_eq!(increase, 15.0);
        assert!(extrapolated_rate(&[(0, 1.0)], &window(0, 1, 1.0), true, true).is_none(), "one sample");
    }

    #[test]
    fn holt_winters_and_regression_match_hand_computed_values() {
        assert_eq!(holt_winters(&[1.0, 2.0, 3.0], 0.5, 0.5), Some(3.0));
        assert_eq!(holt_winters(&[1.0], 0.5, 0.5), None);
        let line = vec![(0, 1.0), (1_000, 3.0), (2_000, 5.0)];
        assert_eq!(linear_regression(&line, 0), (2.0, 1.0));
        assert_eq!(linear_regression(&[(0, 4.0), (1_000, 4.0)], 0), (0.0, 4.0));
    }
}
