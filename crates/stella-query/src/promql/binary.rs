//! Binary operators: arithmetic, comparisons (filtering, or 0/1 with `bool`), `atan2`, and the set
//! operators, between scalars and vectors, with Prometheus's vector matching (`on`, `ignoring`,
//! `group_left`, `group_right`) and its rules for which labels and which value a result keeps.
use std::collections::{HashMap, HashSet};

use promql_parser::label::METRIC_NAME;
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::{drop_name, type_name};
use super::{QueryError, Sample, Value};
use crate::prometheus::LabelSet;

/// Evaluates `node` on its operands' values.
pub(super) fn evaluate(node: &BinaryExpr, lhs: Value, rhs: Value) -> Result<Value, QueryError> {
    let op = node.op.to_string();
    let return_bool = node.modifier.as_ref().is_some_and(|modifier| modifier.return_bool);
    match (lhs, rhs) {
        (Value::Scalar(left), Value::Scalar(right)) => {
            let (value, keep) = apply(&op, left, right)?;
            Ok(Value::Scalar(if is_comparison(&op) { f64::from(u8::from(keep)) } else { value }))
        }
        (Value::Vector(vector), Value::Scalar(scalar)) => {
            vector_scalar(&op, vector, scalar, false, return_bool).map(Value::Vector)
        }
        (Value::Scalar(scalar), Value::Vector(vector)) => {
            vector_scalar(&op, vector, scalar, true, return_bool).map(Value::Vector)
        }
        (Value::Vector(left), Value::Vector(right)) => {
            let matching = node.modifier.as_ref().and_then(|modifier| modifier.matching.as_ref());
            match op.as_str() {
                "and" => Ok(Value::Vector(and_unless(left, &right, matching, true))),
                "unless" => Ok(Value::Vector(and_unless(left, &right, matching, false))),
                "or" => Ok(Value::Vector(or(left, right, matching))),
                _ => {
                    let card =
                        node.modifier.as_ref().map_or(&VectorMatchCardinality::OneToOne, |modifier| &modifier.card);
                    vector_vector(&op, left, right, matching, card, return_bool).map(Value::Vector)
                }
            }
        }
        (left, right) => Err(QueryError::Execution(format!(
            "operator {op} cannot apply to {} and {}",
            type_name(&left),
            type_name(&right)
        ))),
    }
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// Whether the result of `op` loses the metric name (it is no longer the metric it was; Prometheus 2.x
/// keeps it for `atan2`).
fn drops_name(op: &str) -> bool {
    matches!(op, "+" | "-" | "*" | "/" | "%" | "^")
}

/// `left op right`: the value, and for comparisons whether it holds (the value is then `left`).
fn apply(op: &str, left: f64, right: f64) -> Result<(f64, bool), QueryError> {
    Ok(match op {
        "+" => (left + right, true),
        "-" => (left - right, true),
        "*" => (left * right, true),
        "/" => (left / right, true),
        "%" => (left % right, true),
        "^" => (left.powf(right), true),
        "atan2" => (left.atan2(right), true),
        "==" => (left, left == right),
        "!=" => (left, left != right),
        ">" => (left, left > right),
        "<" => (left, left < right),
        ">=" => (left, left >= right),
        "<=" => (left, left <= right),
        other => {
            return Err(QueryError::Execution(format!("operator {other:?} is not supported between these operands")));
        }
    })
}

/// A vector and a scalar; `swapped` when the scalar is on the left. A comparison keeps the vector's
/// value whichever side it is on.
fn vector_scalar(
    op: &str,
    vector: Vec<Sample>,
    scalar: f64,
    swapped: bool,
    return_bool: bool,
) -> Result<Vec<Sample>, QueryError> {
    let mut out = Vec::with_capacity(vector.len());
    for sample in vector {
        let (left, right) = if swapped { (scalar, sample.value) } else { (sample.value, scalar) };
        let (mut value, mut keep) = apply(op, left, right)?;
        if is_comparison(op) && swapped {
            value = right;
        }
        if return_bool {
            value = f64::from(u8::from(keep));
            keep = true;
        }
        if keep {
            let labels = if drops_name(op) || return_bool { drop_name(sample.labels) } else { sample.labels };
            out.push(Sample { labels, value });
        }
    }
    Ok(out)
}

/// The labels two samples are matched on: `on(...)` the listed ones, otherwise all but the metric name
/// and those `ignoring(...)` lists.
fn signature(labels: &LabelSet, matching: Option<&LabelModifier>) -> LabelSet {
    match matching {
        Some(LabelModifier::Include(on)) => {
            labels.iter().filter(|(name, _)| on.labels.contains(name)).cloned().collect()
        }
        Some(LabelModifier::Exclude(ignoring)) => {
            labels.iter().filter(|(name, _)| name != METRIC_NAME && !ignoring.labels.contains(name)).cloned().collect()
        }
        None => labels.iter().filter(|(name, _)| name != METRIC_NAME).cloned().collect(),
    }
}

/// `and` (`keep_matched`) and `unless`: the left samples that have (have no) match on the right.
fn and_unless(
    left: Vec<Sample>,
    right: &[Sample],
    matching: Option<&LabelModifier>,
    keep_matched: bool,
) -> Vec<Sample> {
    let right: HashSet<LabelSet> = right.iter().map(|sample| signature(&sample.labels, matching)).collect();
    left.into_iter().filter(|sample| right.contains(&signature(&sample.labels, matching)) == keep_matched).collect()
}

/// `or`: every left sample, and the right samples with no match on the left.
fn or(mut left: Vec<Sample>, right: Vec<Sample>, matching: Option<&LabelModifier>) -> Vec<Sample> {
    let seen: HashSet<LabelSet> = left.iter().map(|sample| signature(&sample.labels, matching)).collect();
    left.extend(right.into_iter().filter(|sample| !seen.contains(&signature(&sample.labels, matching))));
    left
}

/// Two vectors, one-to-one or many-to-one (`group_left`) / one-to-many (`group_right`, done as
/// many-to-one with the sides swapped).
fn vector_vector(
    op: &str,
    left: Vec<Sample>,
    right: Vec<Sample>,
    matching: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    return_bool: bool,
) -> Result<Vec<Sample>, QueryError> {
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if one_to_many { (right, left) } else { (left, right) };
    let mut ones: HashMap<LabelSet, &Sample> = HashMap::with_capacity(one.len());
    for sample in &one {
        let key = signature(&sample.labels, matching);
        if let Some(previous) = ones.get(&key) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                format_labels(&key),
                format_labels(&sample.labels),
                format_labels(&previous.labels)
            )));
        }
        ones.insert(key, sample);
    }
    let include = match card {
        VectorMatchCardinality::ManyToOne(labels) | VectorMatchCardinality::OneToMany(labels) => Some(&labels.labels),
        _ => None,
    };
    let mut matched: HashMap<LabelSet, HashSet<LabelSet>> = HashMap::new();
    let mut out = Vec::new();
    for sample in &many {
        let key = signature(&sample.labels, matching);
        let Some(other) = ones.get(&key) else { continue };
        let (left, right) = if one_to_many { (other.value, sample.value) } else { (sample.value, other.value) };
        let (mut value, keep) = apply(op, left, right)?;
        if return_bool {
            value = f64::from(u8::from(keep));
        } else if !keep {
            continue;
        }
        let labels = result_labels(&sample.labels, &other.labels, op, matching, include, return_bool);
        let inserted = matched.entry(key).or_default();
        if include.is_none() {
            if !inserted.is_empty() {
                return Err(QueryError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
        } else if inserted.contains(&labels) {
            return Err(QueryError::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        inserted.insert(labels.clone());
        out.push(Sample { labels, value });
    }
    Ok(out)
}

/// The labels of a result: the "many" side's, without the name after arithmetic or `bool`, narrowed by
/// `on`/`ignoring` when matching one-to-one, with the labels `group_x(...)` lists taken from the "one"
/// side.
fn result_labels(
    many: &LabelSet,
    one: &LabelSet,
    op: &str,
    matching: Option<&LabelModifier>,
    include: Option<&Vec<String>>,
    return_bool: bool,
) -> LabelSet {
    let mut labels = many.clone();
    if drops_name(op) || return_bool {
        labels = drop_name(labels);
    }
    match (include, matching) {
        (None, Some(LabelModifier::Include(on))) => labels.retain(|(name, _)| on.labels.contains(name)),
        (None, Some(LabelModifier::Exclude(ignoring))) => labels.retain(|(name, _)| !ignoring.labels.contains(name)),
        _ => {}
    }
    for name in include.into_iter().flatten() {
        labels.retain(|(label, _)| label != name);
        if let Some((_, value)) = one.iter().find(|(label, _)| label == name)
            && !value.is_empty()
        {
            labels.push((name.clone(), value.clone()));
        }
    }
    labels.sort();
    labels
}

/// A label set as Prometheus prints it: `{a="1", b="2"}`.
pub(super) fn format_labels(labels: &LabelSet) -> String {
    let pairs: Vec<String> = labels.iter().map(|(name, value)| format!("{name}={value:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}
