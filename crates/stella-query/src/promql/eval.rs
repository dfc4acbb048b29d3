//! The evaluator: series loaded once for the expression's whole window, then each node evaluated at a
//! time. Selectors, `offset`, `@` and subqueries are here; operators, aggregations and functions in
//! their own modules.
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::label::METRIC_NAME;
use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector};
use stella_otlp::prometheus::STALE_NAN;

use super::{Options, QueryError, RangeSeries, Sample, Source, Value, aggregate, binary, functions};
use crate::prometheus::{LabelSet, Selector, Series};

/// The step of a subquery that names none (Prometheus's default evaluation interval).
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// Evaluates one expression; holds the series its selectors select.
pub(crate) struct Evaluator {
    /// The series of each selector, by [`key`].
    series: HashMap<String, Vec<Series>>,
    /// The query's first and last evaluation time (what `start()` and `end()` mean).
    bounds: (i64, i64),
    options: Options,
    /// Inner results of subqueries, by node and time: a range query asks the same ones at many steps.
    subquery_cache: RefCell<HashMap<SubqueryPoint, Rc<Vec<Sample>>>>,
}

/// A subquery node (its address in the expression) and a time it was evaluated at.
type SubqueryPoint = (usize, i64);

/// One series of a [`Window`]: borrowed from the selected series where it can be (a range query looks
/// at every series at every step), owned where it was computed (subqueries) or thinned (stale markers).
pub(crate) struct WindowSeries<'a> {
    /// Its labels, sorted by name.
    pub(crate) labels: Cow<'a, LabelSet>,
    /// Its points in the window: unix milliseconds and value, by time.
    pub(crate) points: Cow<'a, [(i64, f64)]>,
}

impl WindowSeries<'_> {
    /// The series, owned.
    pub(crate) fn into_owned(self) -> RangeSeries {
        RangeSeries { labels: self.labels.into_owned(), points: self.points.into_owned() }
    }
}

/// A range vector with the window it was selected from (unix milliseconds, inclusive).
pub(crate) struct Window<'a> {
    /// The series with at least one point in the window.
    pub(crate) series: Vec<WindowSeries<'a>>,
    /// The window's first time.
    pub(crate) from: i64,
    /// The window's last time.
    pub(crate) to: i64,
    /// The window's length in seconds (the selector's range).
    pub(crate) seconds: f64,
}

/// The key under which a selector's series are kept: its name and matchers (not its offset or `@`).
fn key(selector: &VectorSelector) -> String {
    format!("{:?}{:?}", selector.name, selector.matchers)
}

fn millis(duration: &Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(duration)) => millis(duration),
        Some(Offset::Neg(duration)) => -millis(duration),
    }
}

/// Whether a value is Prometheus's staleness marker.
pub(crate) fn is_stale(value: f64) -> bool {
    value.to_bits() == STALE_NAN
}

/// `labels` without `__name__`.
pub(crate) fn drop_name(mut labels: LabelSet) -> LabelSet {
    labels.retain(|(name, _)| name != METRIC_NAME);
    labels
}

impl Evaluator {
    /// Reads, in one pass, the series of every selector in `expr` over the window evaluating it from
    /// `bounds.0` to `bounds.1` looks at.
    pub(crate) fn load(
        source: &dyn Source,
        expr: &Expr,
        bounds: (i64, i64),
        options: Options,
    ) -> Result<Evaluator, QueryError> {
        let mut evaluator =
            Evaluator { series: HashMap::new(), bounds, options, subquery_cache: RefCell::new(HashMap::new()) };
        let mut selectors: Vec<(String, Selector)> = Vec::new();
        let mut window = (i64::MAX, i64::MIN);
        evaluator.collect(expr, bounds, &mut selectors, &mut window);
        if selectors.is_empty() {
            return Ok(evaluator);
        }
        let list: Vec<Selector> = selectors.iter().map(|(_, selector)| selector.clone()).collect();
        let found = source.select(&list, window)?;
        for (key, selector) in selectors {
            let matching = found.iter().filter(|series| selector.matches(&series.labels)).cloned().collect();
            evaluator.series.insert(key, matching);
        }
        Ok(evaluator)
    }

    /// Gathers the selectors of `expr` and widens `window` to what evaluating it in `bounds` reads.
    fn collect(
        &self,
        expr: &Expr,
        bounds: (i64, i64),
        selectors: &mut Vec<(String, Selector)>,
        window: &mut (i64, i64),
    ) {
        let mut add = |selector: &VectorSelector, reach: i64, window: &mut (i64, i64)| {
            let (from, to) = self.pinned(&selector.at, bounds);
            let offset = offset_ms(&selector.offset);
            window.0 = window.0.min(from.saturating_sub(offset).saturating_sub(reach));
            window.1 = window.1.max(to.saturating_sub(offset));
            let key = key(selector);
            if !selectors.iter().any(|(known, _)| *known == key) {
                selectors.push((key, Selector::from_parts(selector.name.clone(), selector.matchers.clone())));
            }
        };
        match expr {
            Expr::VectorSelector(selector) => add(selector, self.options.lookback_ms, window),
            Expr::MatrixSelector(MatrixSelector { vs, range }) => add(vs, millis(range), window),
            Expr::Subquery(subquery) => {
                let (from, to) = self.pinned(&subquery.at, bounds);
                let offset = offset_ms(&subquery.offset);
                let step = subquery.step.as_ref().map_or(DEFAULT_SUBQUERY_STEP_MS, millis);
                let inner = (
                    from.saturating_sub(offset).saturating_sub(millis(&subquery.range)).saturating_sub(step),
                    to - offset,
                );
                self.collect(&subquery.expr, inner, selectors, window);
            }
            Expr::Aggregate(aggregate) => {
                if let Some(param) = &aggregate.param {
                    self.collect(param, bounds, selectors, window);
                }
                self.collect(&aggregate.expr, bounds, selectors, window);
            }
            Expr::Unary(unary) => self.collect(&unary.expr, bounds, selectors, window),
            Expr::Paren(paren) => self.collect(&paren.expr, bounds, selectors, window),
            Expr::Binary(binary) => {
                self.collect(&binary.lhs, bounds, selectors, window);
                self.collect(&binary.rhs, bounds, selectors, window);
            }
            Expr::Call(call) => {
                for arg in &call.args.args {
                    self.collect(arg, bounds, selectors, window);
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }

    /// The evaluation times of a node with modifier `at` when its parent is evaluated in `bounds`.
    fn pinned(&self, at: &Option<AtModifier>, bounds: (i64, i64)) -> (i64, i64) {
        match at {
            None => bounds,
            Some(at) => {
                let time = self.at_time(at);
                (time, time)
            }
        }
    }

    fn at_time(&self, at: &AtModifier) -> i64 {
        match at {
            AtModifier::Start => self.bounds.0,
            AtModifier::End => self.bounds.1,
            AtModifier::At(time) => at_millis(*time),
        }
    }

    /// The time a node with `at` and `offset` reads at when evaluated at `time`.
    fn reference_time(&self, at: &Option<AtModifier>, offset: &Option<Offset>, time: i64) -> i64 {
        let time = at.as_ref().map_or(time, |at| self.at_time(at));
        time.saturating_sub(offset_ms(offset))
    }

    /// Fails with [`QueryError::Timeout`] once the deadline has passed.
    pub(crate) fn check_deadline(&self) -> Result<(), QueryError> {
        match self.options.deadline {
            Some(deadline) if std::time::Instant::now() > deadline => Err(QueryError::Timeout),
            _ => Ok(()),
        }
    }

    /// Evaluates `expr` at `time` (unix milliseconds).
    pub(crate) fn eval(&self, expr: &Expr, time: i64) -> Result<Value, QueryError> {
        match expr {
            Expr::NumberLiteral(literal) => Ok(Value::Scalar(literal.val)),
            Expr::StringLiteral(literal) => Ok(Value::String(literal.val.clone())),
            Expr::Paren(paren) => self.eval(&paren.expr, time),
            Expr::VectorSelector(selector) => Ok(Value::Vector(
                self.select_instant(selector, time)
                    .into_iter()
                    .map(|(labels, _, value)| Sample { labels: labels.clone(), value })
                    .collect(),
            )),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                let window = self.eval_window(expr, time)?;
                Ok(Value::Matrix(window.series.into_iter().map(WindowSeries::into_owned).collect()))
            }
            Expr::Unary(unary) => match self.eval(&unary.expr, time)? {
                Value::Scalar(value) => Ok(Value::Scalar(-value)),
                Value::Vector(samples) => unique(
                    samples
                        .into_iter()
                        .map(|sample| Sample { labels: drop_name(sample.labels), value: -sample.value })
                        .collect(),
                ),
                other => Err(QueryError::Execution(format!("unary minus cannot apply to {}", type_name(&other)))),
            },
            Expr::Binary(node) => {
                let lhs = self.eval(&node.lhs, time)?;
                let rhs = self.eval(&node.rhs, time)?;
                binary::evaluate(node, lhs, rhs).and_then(|value| match value {
                    Value::Vector(samples) => unique(samples),
                    other => Ok(other),
                })
            }
            Expr::Aggregate(node) => {
                let param = node.param.as_ref().map(|param| self.eval(param, time)).transpose()?;
                let Value::Vector(input) = self.eval(&node.expr, time)? else {
                    return Err(QueryError::Execution(format!("{} expects an instant vector", node.op)));
                };
                aggregate::evaluate(node, param, input).map(Value::Vector)
            }
            Expr::Call(call) => functions::call(self, call, time).and_then(|value| match value {
                Value::Vector(samples) => unique(samples),
                other => Ok(other),
            }),
            Expr::Extension(extension) => {
                Err(QueryError::Execution(format!("unsupported expression {:?}", extension.expr.name())))
            }
        }
    }

    /// The current sample of each series `selector` selects at `time`: its labels, the sample's own
    /// time and its value. Current means the latest at or before the reference time, no older than the
    /// lookback, and not a staleness marker.
    pub(crate) fn select_instant(&self, selector: &VectorSelector, time: i64) -> Vec<(&LabelSet, i64, f64)> {
        let reference = self.reference_time(&selector.at, &selector.offset, time);
        let oldest = reference.saturating_sub(self.options.lookback_ms);
        let Some(series) = self.series.get(&key(selector)) else { return Vec::new() };
        series
            .iter()
            .filter_map(|series| {
                let at = series.samples.partition_point(|(sample_time, _)| *sample_time <= reference);
                let (sample_time, value) = *series.samples.get(at.checked_sub(1)?)?;
                (sample_time >= oldest && !is_stale(value)).then_some((&series.labels, sample_time, value))
            })
            .collect()
    }

    /// Evaluates a range-vector expression (a matrix selector or a subquery, in parentheses or not)
    /// at `time`.
    pub(crate) fn eval_window(&self, expr: &Expr, time: i64) -> Result<Window<'_>, QueryError> {
        match expr {
            Expr::Paren(paren) => self.eval_window(&paren.expr, time),
            Expr::MatrixSelector(MatrixSelector { vs, range }) => {
                let to = self.reference_time(&vs.at, &vs.offset, time);
                let from = to.saturating_sub(millis(range));
                let series = self
                    .series
                    .get(&key(vs))
                    .map(|all| {
                        all.iter()
                            .filter_map(|series| {
                                let first = series.samples.partition_point(|(sample_time, _)| *sample_time < from);
                                let last = series.samples.partition_point(|(sample_time, _)| *sample_time <= to);
                                let inside = series.samples.get(first..last)?;
                                let points = if inside.iter().any(|(_, value)| is_stale(*value)) {
                                    let fresh = inside.iter().copied().filter(|(_, value)| !is_stale(*value));
                                    Cow::Owned(fresh.collect())
                                } else {
                                    Cow::Borrowed(inside)
                                };
                                (!points.is_empty())
                                    .then_some(WindowSeries { labels: Cow::Borrowed(&series.labels), points })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Window { series, from, to, seconds: range.as_secs_f64() })
            }
            Expr::Subquery(subquery) => self.eval_subquery(subquery, time),
            other => Err(QueryError::Execution(format!(
                "expected a range vector (a selector with a [range], or a subquery), got {}",
                other.value_type()
            ))),
        }
    }

    /// A subquery at `time`: its expression evaluated at every multiple of its step inside the window.
    fn eval_subquery(&self, subquery: &SubqueryExpr, time: i64) -> Result<Window<'_>, QueryError> {
        let to = self.reference_time(&subquery.at, &subquery.offset, time);
        let range = millis(&subquery.range);
        let from = to.saturating_sub(range);
        let step = subquery.step.as_ref().map_or(DEFAULT_SUBQUERY_STEP_MS, millis).max(1);
        let mut grid = from.div_euclid(step) * step;
        if grid < from {
            grid += step;
        }
        let node = subquery as *const SubqueryExpr as usize;
        let mut series: HashMap<LabelSet, Vec<(i64, f64)>> = HashMap::new();
        let mut order: Vec<LabelSet> = Vec::new();
        while grid <= to {
            self.check_deadline()?;
            let cached = self.subquery_cache.borrow().get(&(node, grid)).cloned();
            let samples = match cached {
                Some(samples) => samples,
                None => {
                    let samples = Rc::new(match self.eval(&subquery.expr, grid)? {
                        Value::Vector(samples) => samples,
                        Value::Scalar(value) => vec![Sample { labels: Vec::new(), value }],
                        other => {
                            return Err(QueryError::Execution(format!(
                                "a subquery needs an instant vector or a scalar, got {}",
                                type_name(&other)
                            )));
                        }
                    });
                    self.subquery_cache.borrow_mut().insert((node, grid), Rc::clone(&samples));
                    samples
                }
            };
            for sample in samples.iter() {
                let points = series.entry(sample.labels.clone()).or_insert_with(|| {
                    order.push(sample.labels.clone());
                    Vec::new()
                });
                points.push((grid, sample.value));
            }
            grid += step;
        }
        let series = order
            .into_iter()
            .filter_map(|labels| {
                let points = series.remove(&labels)?;
                Some(WindowSeries { labels: Cow::Owned(labels), points: Cow::Owned(points) })
            })
            .collect();
        Ok(Window { series, from, to, seconds: subquery.range.as_secs_f64() })
    }
}

/// Unix milliseconds of an `@` time (before the epoch too).
fn at_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => millis(&after),
        Err(before) => -millis(&before.duration()),
    }
}

/// The name of a value's type, as error messages say it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Scalar(_) => "scalar",
        Value::String(_) => "string",
        Value::Vector(_) => "instant vector",
        Value::Matrix(_) => "range vector",
    }
}

/// `samples` as a vector, refused when two share a label set (as after dropping metric names of
/// series that differed only by name).
pub(crate) fn unique(samples: Vec<Sample>) -> Result<Value, QueryError> {
    let mut seen = std::collections::HashSet::with_capacity(samples.len());
    for sample in &samples {
        if !seen.insert(&sample.labels) {
            return Err(QueryError::Execution("vector cannot contain metrics with the same labelset".into()));
        }
    }
    Ok(Value::Vector(samples))
}
