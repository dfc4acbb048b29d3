//! Aggregation operators (`sum`, `avg`, `count`, `min`, `max`, `group`, `stddev`, `stdvar`, `topk`,
//! `bottomk`, `quantile`, `count_values`) with `by`/`without` grouping, as Prometheus computes them.
use std::collections::HashMap;

use promql_parser::label::{Labels, METRIC_NAME};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::type_name;
use super::{QueryError, Sample, Value, format_value};
use crate::prometheus::{LabelSet, valid_label_name};

/// The labels of a sample's group: `by(...)` keeps the listed ones, `without(...)` drops them and the
/// metric name, no clause keeps none.
fn group_labels(labels: &LabelSet, modifier: Option<&LabelModifier>) -> LabelSet {
    match modifier {
        None => Vec::new(),
        Some(LabelModifier::Include(by)) => {
            labels.iter().filter(|(name, _)| by.labels.contains(name)).cloned().collect()
        }
        Some(LabelModifier::Exclude(without)) => {
            labels.iter().filter(|(name, _)| name != METRIC_NAME && !without.labels.contains(name)).cloned().collect()
        }
    }
}

/// Samples by group, groups in the order they were first seen.
fn groups(input: Vec<Sample>, modifier: Option<&LabelModifier>) -> Vec<(LabelSet, Vec<Sample>)> {
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    let mut groups: Vec<(LabelSet, Vec<Sample>)> = Vec::new();
    for sample in input {
        let labels = group_labels(&sample.labels, modifier);
        match index.get(&labels) {
            Some(&at) => groups[at].1.push(sample),
            None => {
                index.insert(labels.clone(), groups.len());
                groups.push((labels, vec![sample]));
            }
        }
    }
    groups
}

fn scalar_param(op: &str, param: Option<Value>) -> Result<f64, QueryError> {
    match param {
        Some(Value::Scalar(value)) => Ok(value),
        Some(other) => {
            Err(QueryError::Execution(format!("{op} expects a scalar parameter, got {}", type_name(&other))))
        }
        None => Err(QueryError::Execution(format!("{op} expects a parameter"))),
    }
}

/// Evaluates aggregation `node` over `input`, `param` being its evaluated parameter.
pub(super) fn evaluate(
    node: &AggregateExpr,
    param: Option<Value>,
    input: Vec<Sample>,
) -> Result<Vec<Sample>, QueryError> {
    let op = node.op.to_string();
    let modifier = node.modifier.as_ref();
    match op.as_str() {
        "topk" | "bottomk" => {
            let k = scalar_param(&op, param)?;
            if k.is_nan() {
                return Err(QueryError::Execution("Parameter value is NaN".into()));
            }
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&k) {
                return Err(QueryError::Execution(format!("Scalar value {} overflows int64", format_value(k))));
            }
            let k = k as i64;
            if k < 1 {
                return Ok(Vec::new());
            }
            let top = op == "topk";
            let mut out = Vec::new();
            for (_, mut samples) in groups(input, modifier) {
                samples.sort_by(|a, b| rank(a.value, b.value, top));
                samples.truncate(usize::try_from(k).unwrap_or(usize::MAX));
                out.extend(samples);
            }
            Ok(out)
        }
        "count_values" => {
            let label = match param {
                Some(Value::String(label)) => label,
                _ => return Err(QueryError::Execution("count_values expects a string parameter".into())),
            };
            if !valid_label_name(&label) {
                return Err(QueryError::Execution(format!("invalid label name {label:?}")));
            }
            let labelled: Vec<Sample> = input
                .into_iter()
                .map(|sample| {
                    let mut labels = sample.labels;
                    labels.retain(|(name, _)| *name != label);
                    labels.push((label.clone(), format_value(sample.value)));
                    labels.sort();
                    Sample { labels, value: sample.value }
                })
                .collect();
            // The value label is part of every group.
            let grouping = match modifier {
                None => LabelModifier::Include(Labels { labels: vec![label.clone()] }),
                Some(LabelModifier::Include(by)) => LabelModifier::Include(Labels {
                    labels: by.labels.iter().cloned().chain([label.clone()]).collect(),
                }),
                Some(LabelModifier::Exclude(without)) => LabelModifier::Exclude(Labels {
                    labels: without.labels.iter().filter(|name| **name != label).cloned().collect(),
                }),
            };
            Ok(groups(labelled, Some(&grouping))
                .into_iter()
                .map(|(labels, samples)| Sample { labels, value: samples.len() as f64 })
                .collect())
        }
        "quantile" => {
            let q = scalar_param(&op, param)?;
            Ok(groups(input, modifier)
                .into_iter()
                .map(|(labels, samples)| {
                    let values: Vec<f64> = samples.iter().map(|sample| sample.value).collect();
                    Sample { labels, value: quantile(q, values) }
                })
                .collect())
        }
        _ => groups(input, modifier)
            .into_iter()
            .map(|(labels, samples)| {
                let values: Vec<f64> = samples.iter().map(|sample| sample.value).collect();
                simple(&op, &values).map(|value| Sample { labels, value })
            })
            .collect(),
    }
}

/// Order for `topk` (`top`, largest first) and `bottomk` (smallest first); NaN last in both.
fn rank(a: f64, b: f64, top: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            let order = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            if top { order.reverse() } else { order }
        }
    }
}

/// The aggregations that reduce a group's values to one number.
fn simple(op: &str, values: &[f64]) -> Result<f64, QueryError> {
    let count = values.len() as f64;
    Ok(match op {
        "sum" => kahan_sum(values.iter().copied()),
        "avg" => mean(values.iter().copied()),
        "count" => count,
        "group" => 1.0,
        "min" => {
            values.iter().copied().fold(f64::NAN, |min, value| if value < min || min.is_nan() { value } else { min })
        }
        "max" => {
            values.iter().copied().fold(f64::NAN, |max, value| if value > max || max.is_nan() { value } else { max })
        }
        "stdvar" => variance(values.iter().copied()),
        "stddev" => variance(values.iter().copied()).sqrt(),
        other => return Err(QueryError::Execution(format!("aggregation {other:?} is not supported"))),
    })
}

/// A sum with Kahan-Neumaier compensation.
pub(super) fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut compensation) = (0.0f64, 0.0f64);
    for value in values {
        let total = sum + value;
        if total.is_infinite() {
            compensation = 0.0;
        } else if sum.abs() >= value.abs() {
            compensation += (sum - total) + value;
        } else {
            compensation += (value - total) + sum;
        }
        sum = total;
    }
    if sum.is_infinite() { sum } else { sum + compensation }
}

/// An incremental mean that survives infinities as Prometheus's does.
pub(super) fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut mean, mut count) = (0.0f64, 0.0f64);
    for value in values {
        count += 1.0;
        if count == 1.0 {
            mean = value;
            continue;
        }
        if mean.is_infinite() {
            if value.is_infinite() && (mean > 0.0) == (value > 0.0) {
                continue;
            }
            if !value.is_infinite() && !value.is_nan() {
                continue;
            }
        }
        mean += value / count - mean / count;
    }
    if count == 0.0 { f64::NAN } else { mean }
}

/// The population variance by Welford's method.
pub(super) fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut sum_squares) = (0.0f64, 0.0f64, 0.0f64);
    for value in values {
        count += 1.0;
        let delta = value - mean;
        mean += delta / count;
        sum_squares += delta * (value - mean);
    }
    if count == 0.0 { f64::NAN } else { sum_squares / count }
}

/// The φ-quantile of `values` by linear interpolation between ranks; below 0 is -Inf, above 1 +Inf.
pub(super) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let last = (values.len() - 1) as f64;
    let rank = q * last;
    let low = rank.floor().max(0.0);
    let high = (low + 1.0).min(last);
    let weight = rank - rank.floor();
    let at = |index: f64| values.get(index as usize).copied().unwrap_or(f64::NAN);
    at(low) * (1.0 - weight) + at(high) * weight
}
