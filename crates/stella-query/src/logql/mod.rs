//! LogQL on the store, as Loki answers it. Log records are read as the streams our `loki` exporter makes
//! of them (`stella_otlp::loki::streams`, with its default labels: `service_name`,
//! `deployment_environment`, `severity`; every other attribute, `trace_id` and `span_id` as structured
//! metadata), so the same query finds the same lines here and in a Loki fed by `stella`.
//!
//! A log query (`{selector} | stages`) gives lines, newest or oldest first up to a limit. A metric query
//! is PromQL around log range aggregations: each aggregation (`count_over_time({...} |= "x" [5m])`) is
//! computed at every step from the lines, then the PromQL engine evaluates the rest (`sum by (level)
//! (...)`, `topk`, binary operators, `vector(1)+vector(1)`) over those series.
mod parse;
mod pipeline;

pub use parse::{
    Compare, Conversion, LabelFilter, LogQuery, MatchOp, Matcher, MetricQuery, ParseError, RangeAggregation, SUPPORTED,
    Stage, is_log_query, log_query, metric_query, placeholder,
};
pub use pipeline::{Category, Labelled};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use stella_otlp::loki::{StreamLabels, streams};
use stella_otlp::{OtlpRequest, Signal};

use crate::prometheus::{LabelSet, SelectError, Selector, Series};
use crate::promql::{self, Options, QueryError, RangeSeries};
use stella_store::chunks::{Decoded, LogVolume, StreamVolume, Tally, slots_from_to, trigram_terms};

use crate::{ScanFilter, StoreError, StoreView};

/// Why a LogQL query failed.
#[derive(Debug, thiserror::Error)]
pub enum LogqlError {
    /// The query does not parse (400).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The query is not allowed as asked, or a pipeline error reached a metric (400).
    #[error("{0}")]
    BadQuery(String),
    /// The PromQL around the aggregations failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One stream's entry, with its stream labels and structured metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    /// Unix nanoseconds.
    pub at: u64,
    /// The stream labels, sorted.
    pub stream: Vec<(String, String)>,
    /// The line.
    pub line: String,
    /// Structured metadata, sorted.
    pub metadata: Vec<(String, String)>,
}

/// Where log entries are read: [`Stored`] on a store; tests give entries in memory.
pub trait LogSource {
    /// Visits the entries with `start <= at < end` (unix nanoseconds) whose stream `selector` picks
    /// (every stream when empty); `visit` returns false to stop. `terms` ([`line_terms`]) may spare
    /// reading what holds no line carrying them; entries without them may still be visited.
    fn read(
        &self,
        selector: &[Matcher],
        terms: &[Vec<u128>],
        range: (u64, u64),
        visit: &mut dyn FnMut(StoredEntry) -> bool,
    ) -> Result<(), StoreError>;

    /// The same entries, with [`Newest::Bound`]s between them: no entry still to come is later than a
    /// bound, so a caller after the newest lines can stop early. The default reads in any order and
    /// never bounds.
    fn read_newest_first(
        &self,
        selector: &[Matcher],
        terms: &[Vec<u128>],
        range: (u64, u64),
        visit: &mut dyn FnMut(Newest) -> bool,
    ) -> Result<(), StoreError> {
        self.read(selector, terms, range, &mut |entry| visit(Newest::Entry(entry)))
    }

    /// Hands the [`LogVolume`]s of what [`LogSource::read`] reads for `selector` and `range` to `visit`
    /// (they may hold other streams and times too); `visit` returns false to stop. `Ok(false)` when the
    /// source keeps no volumes: the caller reads the lines instead. The default keeps none.
    fn volumes(
        &self,
        _selector: &[Matcher],
        _range: (u64, u64),
        _visit: &mut dyn FnMut(&LogVolume) -> bool,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// What [`LogSource::read_newest_first`] hands out.
pub enum Newest {
    /// No entry still to come is later than this (unix nanoseconds).
    Bound(u64),
    /// An entry.
    Entry(StoredEntry),
}

/// The log records of one tenant in a store, read as Loki streams.
pub struct Stored<'a> {
    /// The store.
    pub view: &'a dyn StoreView,
    /// The tenant.
    pub tenant: &'a str,
}

fn stream_value<'a>(stream: &'a [(String, String)], name: &str) -> &'a str {
    stream.iter().find(|(label, _)| label == name).map_or("", |(_, value)| value.as_str())
}

impl Stored<'_> {
    /// The cut of the range, narrowed to a `service_name="x"` selector's service (a resource without
    /// `service.name` is `unknown_service` in the index shards but has no `service_name` label: not
    /// narrowed).
    fn cut(
        &self,
        selector: &[Matcher],
        terms: &[Vec<u128>],
        (start, end): (u64, u64),
    ) -> Result<stella_store::chunks::Cut, StoreError> {
        let service = selector
            .iter()
            .find(|matcher| {
                matcher.name == "service_name" && matcher.op == MatchOp::Eq && matcher.value != "unknown_service"
            })
            .map(|matcher| matcher.value.as_str());
        let filter = ScanFilter { service, terms, ..ScanFilter::default() };
        self.view.cut(self.tenant, Signal::Logs, (start, end.saturating_sub(1).max(start)), filter)
    }
}

/// Hands the entries of one stored record that `selector` picks with `start <= at < end` to `visit`;
/// false once `visit` asks to stop.
fn entries_of(
    record: &[u8],
    selector: &[Matcher],
    (start, end): (u64, u64),
    visit: &mut dyn FnMut(StoredEntry) -> bool,
) -> bool {
    let Ok(OtlpRequest::Logs(request)) = OtlpRequest::decode_protobuf(Signal::Logs, record) else {
        return true;
    };
    for (stream, entries) in streams(&request, &StreamLabels::default(), 0) {
        if !selector.iter().all(|matcher| matcher.matches(stream_value(&stream, &matcher.name))) {
            continue;
        }
        for entry in entries {
            if entry.at < start || entry.at >= end {
                continue;
            }
            let stored =
                StoredEntry { at: entry.at, stream: stream.clone(), line: entry.line, metadata: entry.metadata };
            if !visit(stored) {
                return false;
            }
        }
    }
    true
}

impl LogSource for Stored<'_> {
    fn read(
        &self,
        selector: &[Matcher],
        terms: &[Vec<u128>],
        range: (u64, u64),
        visit: &mut dyn FnMut(StoredEntry) -> bool,
    ) -> Result<(), StoreError> {
        let cut = self.cut(selector, terms, range)?;
        cut.visit(self.view.store(), &mut |record| entries_of(record, selector, range, visit))
    }

    fn read_newest_first(
        &self,
        selector: &[Matcher],
        terms: &[Vec<u128>],
        range: (u64, u64),
        visit: &mut dyn FnMut(Newest) -> bool,
    ) -> Result<(), StoreError> {
        // Records are decoded into entries on a thread of their own, ahead of the query's own work.
        let decode = |record: &[u8]| {
            let mut entries = Vec::new();
            entries_of(record, selector, range, &mut |entry| {
                entries.push(entry);
                true
            });
            entries
        };
        self.cut(selector, terms, range)?.visit_newest_first_decoded(
            self.view.store(),
            decode,
            &mut |step| match step {
                Decoded::Bound(bound) => visit(Newest::Bound(bound)),
                Decoded::Record(entries) => entries.into_iter().all(|entry| visit(Newest::Entry(entry))),
            },
        )
    }

    fn volumes(
        &self,
        selector: &[Matcher],
        range: (u64, u64),
        visit: &mut dyn FnMut(&LogVolume) -> bool,
    ) -> Result<bool, StoreError> {
        self.cut(selector, &[], range)?.visit_volumes(self.view.store(), visit)?;
        Ok(true)
    }
}

/// A stream's labels: sorted (name, value) pairs.
type StreamPairs = Vec<(String, String)>;

/// Hands each stream `selector` picks in the volumes of `range` to `visit` (a stream once per volume
/// holding it); `visit` returns false to stop. `Ok(false)` when `source` keeps no volumes.
fn stream_volumes(
    source: &dyn LogSource,
    selector: &[Matcher],
    range: (u64, u64),
    visit: &mut dyn FnMut(&StreamPairs, &StreamVolume) -> bool,
) -> Result<bool, StoreError> {
    source.volumes(selector, range, &mut |volume| {
        for (stream, counted) in &volume.streams {
            let picked = selector.iter().all(|matcher| matcher.matches(stream_value(stream, &matcher.name)));
            if picked && !visit(stream, counted) {
                return false;
            }
        }
        true
    })
}

/// Clauses of trigram [`Term`] hashes every line that `stages` keep carries, for the chunks' term filters:
/// a `|= "text"` before any `line_format` needs every trigram of its text (a clause each), `|= "a" or
/// "b"` the first trigram of one of them (one clause). Texts shorter than three bytes, regular
/// expressions and dropping filters need nothing.
pub fn line_terms(stages: &[Stage]) -> Vec<Vec<u128>> {
    let mut clauses = Vec::new();
    for stage in stages {
        match stage {
            Stage::LineFormat(_) => break,
            Stage::Line { keep: true, regex: false, patterns, .. }
                if !patterns.is_empty() && patterns.iter().all(|pattern| pattern.len() >= 3) =>
            {
                if let [pattern] = patterns.as_slice() {
                    clauses.extend(trigram_terms(pattern.as_bytes()).map(|term| vec![term.hash()]));
                } else {
                    let first = |pattern: &String| trigram_terms(pattern.as_bytes()).next().map(|term| term.hash());
                    clauses.push(patterns.iter().filter_map(first).collect());
                }
            }
            _ => {}
        }
    }
    clauses.sort_unstable();
    clauses.dedup();
    clauses
}

/// A line a log query gives.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundLine {
    /// Unix nanoseconds.
    pub at: u64,
    /// The line and its labels after the pipeline.
    pub labelled: Labelled,
}

/// The lines of a log query in the range, newest first (`forward`: oldest first), at most `limit`.
pub fn lines(
    source: &dyn LogSource,
    query: &LogQuery,
    range: (u64, u64),
    limit: usize,
    forward: bool,
) -> Result<Vec<FoundLine>, StoreError> {
    let limit = limit.max(1);
    let terms = line_terms(&query.stages);
    // Keyed by (time, order found); at most `limit` held, the oldest dropped first (backward) or the
    // newest (forward).
    let mut held: BTreeMap<(u64, u64), FoundLine> = BTreeMap::new();
    let mut found = 0u64;
    let mut hold = |held: &mut BTreeMap<(u64, u64), FoundLine>, entry: StoredEntry| {
        if let Some(labelled) = pipeline::run(&query.stages, Labelled::new(entry.line, &entry.stream, &entry.metadata))
        {
            held.insert((entry.at, found), FoundLine { at: entry.at, labelled });
            found += 1;
            if held.len() > limit {
                if forward {
                    held.pop_last()
                } else {
                    held.pop_first()
                };
            }
        }
    };
    if forward {
        source.read(&query.selector, &terms, range, &mut |entry| {
            hold(&mut held, entry);
            true
        })?;
        return Ok(held.into_values().collect());
    }
    source.read_newest_first(&query.selector, &terms, range, &mut |step| match step {
        // Done once `limit` lines are held and none still to come can be newer than the oldest of them.
        Newest::Bound(bound) => {
            !(held.len() >= limit && held.first_key_value().is_some_and(|((at, _), _)| *at > bound))
        }
        Newest::Entry(entry) => {
            hold(&mut held, entry);
            true
        }
    })?;
    Ok(held.into_values().rev().collect())
}

/// The series of one range aggregation at each step `start, start + step, ... <= end` (unix
/// milliseconds): only the steps with data, named `name`, with only the labels in `keep` when given.
fn aggregate(
    source: &dyn LogSource,
    aggregation: &RangeAggregation,
    name: &str,
    keep: Option<&[String]>,
    (start, end, step): (i64, i64, i64),
    max_lines: usize,
) -> Result<Vec<Series>, LogqlError> {
    let millis = 1_000_000u64;
    let first =
        u64::try_from(start).unwrap_or(0).saturating_mul(millis).saturating_sub(aggregation.range + aggregation.offset);
    let last =
        u64::try_from(end).unwrap_or(0).saturating_mul(millis).saturating_sub(aggregation.offset).saturating_add(1);
    if let Some(series) =
        aggregate_volumes(source, aggregation, name, keep, (start, end, step), (first, last), max_lines)?
    {
        return Ok(series);
    }
    let mut by_labels: HashMap<LabelSet, Vec<(u64, f64)>> = HashMap::new();
    let (mut read_lines, mut failure) = (0usize, None);
    let terms = line_terms(&aggregation.query.stages);
    source.read(&aggregation.query.selector, &terms, (first, last), &mut |entry| {
        read_lines += 1;
        if read_lines > max_lines {
            failure = Some(LogqlError::BadQuery(format!(
                "the query reads more than {max_lines} lines (api.limits.max_lines); narrow the selector or the time range"
            )));
            return false;
        }
        let bytes = entry.line.len() as f64;
        let Some(mut labelled) =
            pipeline::run(&aggregation.query.stages, Labelled::new(entry.line, &entry.stream, &entry.metadata))
        else {
            return true;
        };
        let value = match &aggregation.unwrap {
            None if aggregation.function.starts_with("bytes") => bytes,
            None => 1.0,
            Some((label, conversion)) => {
                let text = labelled.get(label).to_string();
                labelled.labels.remove(label);
                match pipeline::convert(&text, *conversion) {
                    Some(value) => value,
                    None => {
                        labelled.labels.insert(
                            "__error__".into(),
                            ("SampleExtractionErr".into(), pipeline::Category::Parsed),
                        );
                        0.0
                    }
                }
            }
        };
        let labels: LabelSet = labelled.labels.into_iter().map(|(name, (value, _))| (name, value)).collect();
        if let Some((_, kind)) = labels.iter().find(|(name, _)| name == "__error__") {
            let shown: Vec<String> = labels.iter().map(|(name, value)| format!("{name}={value:?}")).collect();
            failure = Some(LogqlError::BadQuery(format!(
                "pipeline error: '{kind}' for series: '{{{}}}'. Use a label filter to intentionally skip this error. (e.g | __error__!=\"{kind}\"). To skip all potential errors you can match empty errors.(e.g __error__=\"\")",
                shown.join(", ")
            )));
            return false;
        }
        let labels = match keep {
            Some(keep) => labels.into_iter().filter(|(name, _)| keep.contains(name)).collect(),
            None => labels,
        };
        by_labels.entry(labels).or_default().push((entry.at, value));
        true
    })?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    let mut series = Vec::new();
    let absent = aggregation.function == "absent_over_time";
    let mut present_at: BTreeSet<i64> = BTreeSet::new();
    for (labels, mut samples) in by_labels {
        samples.sort_by_key(|(at, _)| *at);
        let mut points = Vec::new();
        let mut time = start;
        while time <= end {
            let to = u64::try_from(time).unwrap_or(0).saturating_mul(millis).saturating_sub(aggregation.offset);
            let from = to.saturating_sub(aggregation.range);
            let low = samples.partition_point(|(at, _)| *at <= from);
            let high = samples.partition_point(|(at, _)| *at <= to);
            let window: Vec<f64> = samples[low..high].iter().map(|(_, value)| *value).collect();
            if !window.is_empty() {
                present_at.insert(time);
                if let Some(value) = over_time(aggregation, &window) {
                    points.push((time, value));
                }
            }
            time += step;
        }
        if !points.is_empty() && !absent {
            series.push(named(labels, name, points));
        }
    }
    if absent {
        let mut labels: LabelSet = aggregation
            .query
            .selector
            .iter()
            .filter(|matcher| matcher.op == MatchOp::Eq)
            .map(|matcher| (matcher.name.clone(), matcher.value.clone()))
            .collect();
        labels.push(("__name__".into(), name.to_string()));
        labels.sort();
        labels.dedup_by(|later, earlier| later.0 == earlier.0);
        let mut points = Vec::new();
        let mut time = start;
        while time <= end {
            if !present_at.contains(&time) {
                points.push((time, 1.0));
            }
            time += step;
        }
        if !points.is_empty() {
            series.push(Series { labels, samples: points });
        }
    }
    Ok(series)
}

/// A series of `points` with `labels` and the name `name`.
fn named(mut labels: LabelSet, name: &str, points: Vec<(i64, f64)>) -> Series {
    labels.push(("__name__".into(), name.to_string()));
    labels.sort();
    Series { labels, samples: points }
}

/// [`aggregate`] from the log volumes alone, when that gives the same answer as the lines: a count or a
/// byte count (`count_over_time`, `rate`, `bytes_over_time`, `bytes_rate`) of a stream selector with no
/// stages but `| drop`, summed by labels (`keep`) that no stream's structured metadata gives, with a
/// range and an offset in whole milliseconds. `None` when it cannot (the caller reads the lines); `read` is the range of line
/// times the windows cover. At most `max_lines` (stream, slot) counts are held.
fn aggregate_volumes(
    source: &dyn LogSource,
    aggregation: &RangeAggregation,
    name: &str,
    keep: Option<&[String]>,
    (start, end, step): (i64, i64, i64),
    read: (u64, u64),
    max_lines: usize,
) -> Result<Option<Vec<Series>>, LogqlError> {
    const MILLI: u64 = 1_000_000;
    let counted =
        matches!(aggregation.function.as_str(), "count_over_time" | "rate" | "bytes_over_time" | "bytes_rate");
    let Some(keep) = keep else { return Ok(None) };
    if !counted
        || aggregation.unwrap.is_some()
        || !aggregation.range.is_multiple_of(MILLI)
        || !aggregation.offset.is_multiple_of(MILLI)
    {
        return Ok(None);
    }
    // `| drop name` (Grafana's `| drop __error__`) only takes a label out of the sum.
    let mut keep = keep.to_vec();
    for stage in &aggregation.query.stages {
        let Stage::Drop(names) = stage else { return Ok(None) };
        for (dropped, matcher) in names {
            if keep.contains(dropped) {
                if matcher.is_some() {
                    return Ok(None);
                }
                keep.retain(|kept| kept != dropped);
            }
        }
    }
    let mut by_labels: HashMap<LabelSet, BTreeMap<u64, Tally>> = HashMap::new();
    let (mut held, mut usable, mut failure) = (0usize, true, None);
    let kept = stream_volumes(source, &aggregation.query.selector, read, &mut |stream, volume| {
        if keep.iter().any(|label| volume.metadata.contains(label)) {
            usable = false;
            return false;
        }
        let labels: LabelSet = stream.iter().filter(|(label, _)| keep.contains(label)).cloned().collect();
        let slots = by_labels.entry(labels).or_default();
        for (slot, tally) in &volume.slots {
            let into = slots.entry(*slot).or_default();
            if *into == Tally::default() {
                held += 1;
            }
            into.add(*tally);
        }
        if held > max_lines {
            failure = Some(LogqlError::BadQuery(format!(
                "the query reads more than {max_lines} lines (api.limits.max_lines); narrow the selector or the time range"
            )));
            return false;
        }
        true
    })?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    if !kept || !usable {
        return Ok(None);
    }
    let bytes = aggregation.function.starts_with("bytes");
    let per_second = aggregation.function.ends_with("rate");
    let seconds = aggregation.range as f64 / 1e9;
    let range_ms = aggregation.range / MILLI;
    let mut series = Vec::new();
    for (labels, slots) in by_labels {
        // Running totals after each slot, so that a window is two lookups however long it is.
        let mut running = Vec::with_capacity(slots.len());
        let mut total = Tally::default();
        for (slot, tally) in slots {
            total.add(tally);
            running.push((slot, total));
        }
        let before = |slot: u64| match running.partition_point(|(at, _)| *at < slot) {
            0 => Tally::default(),
            at => running[at - 1].1,
        };
        let mut points = Vec::new();
        let mut time = start;
        while time <= end {
            let to = u64::try_from(time).unwrap_or(0).saturating_mul(MILLI).saturating_sub(aggregation.offset) / MILLI;
            let from = to.saturating_sub(range_ms);
            // The window (from, to] in slots: 2 * from + 1 ..= 2 * to.
            let (high, low) = (before(2 * to + 1), before(2 * from + 1));
            let lines = high.lines - low.lines;
            if lines > 0 {
                let value = if bytes { (high.bytes - low.bytes) as f64 } else { lines as f64 };
                points.push((time, if per_second { value / seconds } else { value }));
            }
            time += step;
        }
        if !points.is_empty() {
            series.push(named(labels, name, points));
        }
    }
    Ok(Some(series))
}

/// A range function over the values of one window (never empty).
fn over_time(aggregation: &RangeAggregation, window: &[f64]) -> Option<f64> {
    let count = window.len() as f64;
    let sum: f64 = window.iter().sum();
    let seconds = aggregation.range as f64 / 1e9;
    let mean = sum / count;
    let variance = window.iter().map(|value| (value - mean).powi(2)).sum::<f64>() / count;
    Some(match aggregation.function.as_str() {
        "count_over_time" => count,
        "bytes_over_time" | "sum_over_time" => sum,
        "rate" if aggregation.unwrap.is_none() => count / seconds,
        "rate" | "bytes_rate" => sum / seconds,
        "avg_over_time" => mean,
        "min_over_time" => window.iter().copied().fold(f64::INFINITY, f64::min),
        "max_over_time" => window.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "first_over_time" => window[0],
        "last_over_time" => window[window.len() - 1],
        "stdvar_over_time" => variance,
        "stddev_over_time" => variance.sqrt(),
        "quantile_over_time" => {
            let mut sorted = window.to_vec();
            sorted.sort_by(f64::total_cmp);
            let phi = aggregation.parameter.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&phi) {
                return Some(if phi < 0.0 { f64::NEG_INFINITY } else { f64::INFINITY });
            }
            let rank = phi * (count - 1.0);
            let (lower, upper) = (rank.floor() as usize, rank.ceil() as usize);
            let weight = rank - rank.floor();
            sorted[lower] * (1.0 - weight) + sorted[upper.min(sorted.len() - 1)] * weight
        }
        _ => return None,
    })
}

/// Counts the uses of selector `name` in `expr`, and notes the labels of a `sum` (`by` them, or none)
/// directly around one.
fn uses(expr: &promql_parser::parser::Expr, name: &str, count: &mut usize, summed: &mut Option<Vec<String>>) {
    use promql_parser::parser::{Expr, LabelModifier};
    let named = |expr: &Expr| {
        let mut inner = expr;
        while let Expr::Paren(paren) = inner {
            inner = &paren.expr;
        }
        matches!(inner, Expr::VectorSelector(selector)
            if selector.name.as_deref() == Some(name) && selector.offset.is_none() && selector.at.is_none())
    };
    match expr {
        Expr::Aggregate(aggregate) => {
            if aggregate.op.to_string() == "sum" && named(&aggregate.expr) {
                *summed = match &aggregate.modifier {
                    None => Some(Vec::new()),
                    Some(LabelModifier::Include(by)) => Some(by.labels.clone()),
                    Some(LabelModifier::Exclude(_)) => None,
                };
            }
            uses(&aggregate.expr, name, count, summed);
            if let Some(param) = &aggregate.param {
                uses(param, name, count, summed);
            }
        }
        Expr::Unary(unary) => uses(&unary.expr, name, count, summed),
        Expr::Binary(binary) => {
            uses(&binary.lhs, name, count, summed);
            uses(&binary.rhs, name, count, summed);
        }
        Expr::Paren(paren) => uses(&paren.expr, name, count, summed),
        Expr::Subquery(subquery) => uses(&subquery.expr, name, count, summed),
        Expr::MatrixSelector(matrix) => *count += usize::from(matrix.vs.name.as_deref() == Some(name)),
        Expr::VectorSelector(selector) => *count += usize::from(selector.name.as_deref() == Some(name)),
        Expr::Call(call) => call.args.args.iter().for_each(|arg| uses(arg, name, count, summed)),
        _ => {}
    }
}

/// The labels an aggregation's series can be reduced to while they are counted: when its one use is
/// directly under `sum` or `sum by (...)` and its function adds up (counts, bytes, rates, sums), summing
/// per fewer labels first gives the same answer and spares a series per line (structured metadata such
/// as `trace_id` differs on every line).
fn summed_labels(
    expr: &promql_parser::parser::Expr,
    aggregation: &RangeAggregation,
    name: &str,
) -> Option<Vec<String>> {
    let additive = match aggregation.unwrap {
        None => matches!(aggregation.function.as_str(), "count_over_time" | "rate" | "bytes_over_time" | "bytes_rate"),
        Some(_) => matches!(aggregation.function.as_str(), "sum_over_time" | "rate"),
    };
    let (mut count, mut summed) = (0, None);
    uses(expr, name, &mut count, &mut summed);
    (additive && count == 1).then_some(summed).flatten()
}

/// Evaluates a metric query at the steps `start..=end` (unix milliseconds; `start == end` and
/// `instant` for an instant query), each of its range aggregations reading at most `max_lines` lines.
pub fn metric(
    source: &dyn LogSource,
    query: &MetricQuery,
    (start, end, step): (i64, i64, i64),
    instant: bool,
    options: Options,
    max_lines: usize,
) -> Result<promql::Value, LogqlError> {
    let expr = promql::parse(&query.promql)?;
    let mut computed: Vec<Series> = Vec::new();
    for (index, aggregation) in query.aggregations.iter().enumerate() {
        let name = placeholder(index);
        let keep = summed_labels(&expr, aggregation, &name);
        computed.extend(aggregate(source, aggregation, &name, keep.as_deref(), (start, end, step.max(1)), max_lines)?);
    }
    let source = |selectors: &[Selector], _range: (i64, i64)| -> Result<Vec<Series>, SelectError> {
        Ok(computed
            .iter()
            .filter(|series| selectors.iter().any(|selector| selector.matches(&series.labels)))
            .cloned()
            .collect())
    };
    // Each aggregation has a point exactly at each step where it has data: no lookback.
    let options = Options { lookback_ms: 0, ..options };
    let unnamed = |mut labels: LabelSet| {
        labels.retain(|(name, value)| !(name == "__name__" && value.starts_with("__logql_")));
        labels
    };
    if instant {
        return Ok(match promql::instant(&source, &expr, end, options)? {
            promql::Value::Vector(samples) => promql::Value::Vector(
                samples.into_iter().map(|sample| promql::Sample { labels: unnamed(sample.labels), ..sample }).collect(),
            ),
            promql::Value::Scalar(value) => promql::Value::Scalar(value),
            _ => return Err(LogqlError::BadQuery("an instant query must give a vector or a scalar".into())),
        });
    }
    let series = promql::range(&source, &expr, (start, end), step, options)?;
    Ok(promql::Value::Matrix(
        series.into_iter().map(|series| RangeSeries { labels: unnamed(series.labels), ..series }).collect(),
    ))
}

/// The lines and bytes of each stream `selector` picks with lines in `range`, from the log volumes;
/// `None` when the source keeps none or a bound of the range is not a whole millisecond (the caller
/// reads the lines).
fn stream_tallies(
    source: &dyn LogSource,
    selector: &[Matcher],
    range: (u64, u64),
) -> Result<Option<BTreeMap<StreamPairs, Tally>>, StoreError> {
    let Some(slots) = slots_from_to(range.0, range.1) else { return Ok(None) };
    let mut tallies: BTreeMap<StreamPairs, Tally> = BTreeMap::new();
    let kept = stream_volumes(source, selector, range, &mut |stream, volume| {
        let tally = volume.tally(slots.clone());
        if tally.lines > 0 {
            match tallies.get_mut(stream) {
                Some(held) => held.add(tally),
                None => {
                    tallies.insert(stream.to_vec(), tally);
                }
            }
        }
        true
    })?;
    Ok(kept.then_some(tallies))
}

/// The stream label names of `tenant` in the range (of the streams `selector` picks), sorted.
pub fn label_names(
    source: &dyn LogSource,
    selector: &[Matcher],
    range: (u64, u64),
) -> Result<BTreeSet<String>, StoreError> {
    if let Some(tallies) = stream_tallies(source, selector, range)? {
        return Ok(tallies.into_keys().flatten().map(|(name, _)| name).collect());
    }
    let mut names = BTreeSet::new();
    source.read(selector, &[], range, &mut |entry| {
        names.extend(entry.stream.into_iter().map(|(name, _)| name));
        true
    })?;
    Ok(names)
}

/// The values of stream label `name` in the range (of the streams `selector` picks), sorted.
pub fn label_values(
    source: &dyn LogSource,
    name: &str,
    selector: &[Matcher],
    range: (u64, u64),
) -> Result<BTreeSet<String>, StoreError> {
    if let Some(tallies) = stream_tallies(source, selector, range)? {
        let values = tallies.into_keys().flatten().filter(|(label, _)| label == name).map(|(_, value)| value);
        return Ok(values.collect());
    }
    let mut values = BTreeSet::new();
    source.read(selector, &[], range, &mut |entry| {
        if let Some((_, value)) = entry.stream.into_iter().find(|(label, _)| label == name) {
            values.insert(value);
        }
        true
    })?;
    Ok(values)
}

/// What `/index/stats` tells of the streams a selector picks: streams, chunks (records read), bytes of
/// lines and entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Distinct streams.
    pub streams: u64,
    /// Entries.
    pub entries: u64,
    /// Bytes of the lines.
    pub bytes: u64,
}

/// Stream label sets, each with its number of entries.
pub type StreamCounts = BTreeMap<Vec<(String, String)>, u64>;

/// The streams (label sets) the selectors pick in the range, and the index statistics.
pub fn series(
    source: &dyn LogSource,
    selector: &[Matcher],
    range: (u64, u64),
) -> Result<(StreamCounts, IndexStats), StoreError> {
    let mut streams = StreamCounts::new();
    let mut stats = IndexStats::default();
    if let Some(tallies) = stream_tallies(source, selector, range)? {
        for (stream, tally) in tallies {
            stats.entries += tally.lines;
            stats.bytes += tally.bytes;
            streams.insert(stream, tally.lines);
        }
        stats.streams = streams.len() as u64;
        return Ok((streams, stats));
    }
    source.read(selector, &[], range, &mut |entry| {
        stats.entries += 1;
        stats.bytes += entry.line.len() as u64;
        *streams.entry(entry.stream).or_default() += 1;
        true
    })?;
    stats.streams = streams.len() as u64;
    Ok((streams, stats))
}

#[cfg(test)]
mod tests;
