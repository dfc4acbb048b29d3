//! TraceQL over the store, for Tempo's search API: the traces of a time range are assembled from their
//! stored spans, each trace is evaluated ([`parse`] for what the language covers), and the matching
//! ones come back newest first with their root, duration and matching spans; plus the tag names and
//! values Tempo's tag discovery answers.
mod parse;

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use stella_otlp::proto::common::v1::{KeyValue, any_value};
use stella_otlp::proto::trace::v1::Span;
use stella_otlp::{OtlpRequest, Signal};

pub use parse::{
    Attribute, Comparison, Condition, Intrinsic, Operand, ParseError, Query, SpansetExpr, SpansetOp, Static, attribute,
    duration_nanos, parse,
};

use crate::{ScanFilter, StoreError, StoreView, scan};
use rustc_hash::{FxHashMap, FxHashSet};
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_store::chunks::Decoded;
use stella_store::chunks::Term;

/// A typed value, as TraceQL compares and Tempo's JSON writes them.
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A duration, nanoseconds.
    Duration(u64),
    /// A status (`ok`, `error`, `unset`) or kind keyword.
    Keyword(String),
}

impl TagValue {
    /// Tempo's type name: `string`, `int`, `float`, `bool`, `duration`, `keyword`.
    pub fn type_name(&self) -> &'static str {
        match self {
            TagValue::Str(_) => "string",
            TagValue::Int(_) => "int",
            TagValue::Float(_) => "float",
            TagValue::Bool(_) => "bool",
            TagValue::Duration(_) => "duration",
            TagValue::Keyword(_) => "keyword",
        }
    }

    /// The value as text (durations as Go prints them: `1.5s`, `250ms`).
    pub fn text(&self) -> String {
        match self {
            TagValue::Str(text) | TagValue::Keyword(text) => text.clone(),
            TagValue::Int(value) => value.to_string(),
            TagValue::Float(value) => value.to_string(),
            TagValue::Bool(value) => value.to_string(),
            TagValue::Duration(nanos) => go_duration(*nanos),
        }
    }
}

/// A duration as Go's `time.Duration.String` writes it.
fn go_duration(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim(nanos as f64 / 1e6));
    }
    let seconds = nanos as f64 / 1e9;
    let (hours, minutes) = ((seconds / 3600.0).floor(), ((seconds % 3600.0) / 60.0).floor());
    let rest = seconds - hours * 3600.0 - minutes * 60.0;
    let mut out = String::new();
    if hours > 0.0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0.0 || minutes > 0.0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", trim(rest)));
    out
}

fn trim(value: f64) -> String {
    let text = format!("{value:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One span of a trace being evaluated.
struct Row {
    span: Span,
    resource: Arc<Vec<KeyValue>>,
    service: String,
    parent: Option<usize>,
}

/// The spans of one trace, with their parents resolved.
struct Trace {
    id: Vec<u8>,
    rows: Vec<Row>,
    root: Option<usize>,
    start: u64,
    end: u64,
}

impl Trace {
    fn new(id: Vec<u8>, mut rows: Vec<Row>) -> Trace {
        rows.sort_by(|a, b| {
            (a.span.start_time_unix_nano, &a.span.span_id).cmp(&(b.span.start_time_unix_nano, &b.span.span_id))
        });
        let index: FxHashMap<&[u8], usize> =
            rows.iter().enumerate().map(|(at, row)| (row.span.span_id.as_slice(), at)).collect();
        let parents: Vec<Option<usize>> = rows
            .iter()
            .map(|row| {
                let parent = row.span.parent_span_id.as_slice();
                (!parent.is_empty()).then(|| index.get(parent).copied()).flatten()
            })
            .collect();
        for (row, parent) in rows.iter_mut().zip(parents) {
            row.parent = parent;
        }
        let root = rows.iter().position(|row| row.span.parent_span_id.is_empty());
        let start = rows.iter().map(|row| row.span.start_time_unix_nano).min().unwrap_or(0);
        let end = rows.iter().map(|row| row.span.end_time_unix_nano).max().unwrap_or(0);
        Trace { id, rows, root, start, end }
    }

    fn is_ancestor(&self, ancestor: usize, mut of: usize) -> bool {
        let mut hops = 0;
        while let Some(parent) = self.rows[of].parent {
            if parent == ancestor {
                return true;
            }
            of = parent;
            hops += 1;
            if hops > self.rows.len() {
                return false;
            }
        }
        false
    }
}

fn any_value(value: &any_value::Value) -> Option<TagValue> {
    Some(match value {
        any_value::Value::StringValue(text) => TagValue::Str(text.clone()),
        any_value::Value::IntValue(number) => TagValue::Int(*number),
        any_value::Value::DoubleValue(number) => TagValue::Float(*number),
        any_value::Value::BoolValue(flag) => TagValue::Bool(*flag),
        _ => return None,
    })
}

fn status_word(code: i32) -> &'static str {
    match code {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

fn kind_word(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

/// Evaluates queries on traces, compiling each regex once.
#[derive(Default)]
struct Evaluator {
    regexes: std::cell::RefCell<HashMap<String, Option<regex::Regex>>>,
}

impl Evaluator {
    fn value(&self, attribute: &Attribute, trace: &Trace, at: usize) -> Option<TagValue> {
        let row = &trace.rows[at];
        let span = &row.span;
        let of =
            |attributes: &[KeyValue], name: &str| stella_otlp::attributes::get(attributes, name).and_then(any_value);
        match attribute {
            Attribute::Span(name) => of(&span.attributes, name),
            Attribute::Resource(name) => of(&row.resource, name),
            Attribute::Any(name) => of(&span.attributes, name).or_else(|| of(&row.resource, name)),
            Attribute::Intrinsic(intrinsic) => Some(match intrinsic {
                Intrinsic::Name => TagValue::Str(span.name.clone()),
                Intrinsic::Status => {
                    TagValue::Keyword(status_word(span.status.as_ref().map_or(0, |status| status.code)).into())
                }
                Intrinsic::StatusMessage => {
                    TagValue::Str(span.status.as_ref().map(|status| status.message.clone()).unwrap_or_default())
                }
                Intrinsic::Duration => {
                    TagValue::Duration(span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano))
                }
                Intrinsic::Kind => TagValue::Keyword(kind_word(span.kind).into()),
                Intrinsic::RootName => TagValue::Str(trace.rows[trace.root?].span.name.clone()),
                Intrinsic::RootServiceName => TagValue::Str(trace.rows[trace.root?].service.clone()),
                Intrinsic::TraceDuration => TagValue::Duration(trace.end.saturating_sub(trace.start)),
                Intrinsic::SpanId => TagValue::Str(hex::encode(&span.span_id)),
                Intrinsic::TraceId => TagValue::Str(hex::encode(&trace.id)),
                Intrinsic::ParentId => {
                    if span.parent_span_id.is_empty() {
                        return None;
                    }
                    TagValue::Str(hex::encode(&span.parent_span_id))
                }
            }),
        }
    }

    fn operand(&self, operand: &Operand, trace: &Trace, at: usize) -> Option<TagValue> {
        match operand {
            Operand::Attribute(attribute) => self.value(attribute, trace, at),
            Operand::Static(value) => match value {
                Static::Str(text) => Some(TagValue::Str(text.clone())),
                Static::Int(number) => Some(TagValue::Int(*number)),
                Static::Float(number) => Some(TagValue::Float(*number)),
                Static::Bool(flag) => Some(TagValue::Bool(*flag)),
                Static::Duration(nanos) => Some(TagValue::Duration(*nanos)),
                Static::Status(code) => Some(TagValue::Keyword(status_word(*code).into())),
                Static::Kind(kind) => Some(TagValue::Keyword(kind_word(*kind).into())),
                Static::Nil => None,
            },
        }
    }

    fn regex_match(&self, pattern: &str, text: &str) -> bool {
        let mut cache = self.regexes.borrow_mut();
        let compiled =
            cache.entry(pattern.to_string()).or_insert_with(|| regex::Regex::new(&format!("^(?:{pattern})$")).ok());
        compiled.as_ref().is_some_and(|regex| regex.is_match(text))
    }

    fn holds(&self, condition: &Condition, trace: &Trace, at: usize) -> bool {
        match condition {
            Condition::True => true,
            Condition::And(left, right) => self.holds(left, trace, at) && self.holds(right, trace, at),
            Condition::Or(left, right) => self.holds(left, trace, at) || self.holds(right, trace, at),
            Condition::Not(inner) => !self.holds(inner, trace, at),
            Condition::Truthy(operand) => self.operand(operand, trace, at) == Some(TagValue::Bool(true)),
            Condition::TextEquals(attribute, text) => {
                self.value(attribute, trace, at).is_some_and(|value| value.text() == *text)
            }
            Condition::Compare(left, op, right) => {
                let nil = matches!(right, Operand::Static(Static::Nil)) || matches!(left, Operand::Static(Static::Nil));
                let (a, b) = (self.operand(left, trace, at), self.operand(right, trace, at));
                if nil {
                    let present = a.is_some() || b.is_some();
                    return match op {
                        Comparison::Eq => !present,
                        Comparison::Ne => present,
                        _ => false,
                    };
                }
                let (Some(a), Some(b)) = (a, b) else { return false };
                self.compare(&a, *op, &b)
            }
        }
    }

    fn compare(&self, a: &TagValue, op: Comparison, b: &TagValue) -> bool {
        use std::cmp::Ordering;
        let ordered = |order: Option<Ordering>| {
            let Some(order) = order else { return false };
            match op {
                Comparison::Eq => order == Ordering::Equal,
                Comparison::Ne => order != Ordering::Equal,
                Comparison::Lt => order == Ordering::Less,
                Comparison::Le => order != Ordering::Greater,
                Comparison::Gt => order == Ordering::Greater,
                Comparison::Ge => order != Ordering::Less,
                Comparison::Match | Comparison::NotMatch => false,
            }
        };
        let number = |value: &TagValue| match value {
            TagValue::Int(number) => Some(*number as f64),
            TagValue::Float(number) => Some(*number),
            _ => None,
        };
        match (a, b) {
            (TagValue::Str(x) | TagValue::Keyword(x), TagValue::Str(y))
                if matches!(op, Comparison::Match | Comparison::NotMatch) =>
            {
                self.regex_match(y, x) == (op == Comparison::Match)
            }
            (TagValue::Str(x), TagValue::Str(y)) => ordered(Some(x.cmp(y))),
            (TagValue::Keyword(x), TagValue::Keyword(y)) if matches!(op, Comparison::Eq | Comparison::Ne) => {
                ordered(Some(x.cmp(y)))
            }
            (TagValue::Bool(x), TagValue::Bool(y)) if matches!(op, Comparison::Eq | Comparison::Ne) => {
                ordered(Some(x.cmp(y)))
            }
            (TagValue::Duration(x), TagValue::Duration(y)) => ordered(Some(x.cmp(y))),
            _ => match (number(a), number(b)) {
                (Some(x), Some(y)) => ordered(x.partial_cmp(&y)),
                _ => false,
            },
        }
    }

    fn spansets(&self, expr: &SpansetExpr, trace: &Trace) -> Vec<bool> {
        match expr {
            SpansetExpr::Filter(condition) => {
                (0..trace.rows.len()).map(|at| self.holds(condition, trace, at)).collect()
            }
            SpansetExpr::Binary(left, op, right) => {
                let (l, r) = (self.spansets(left, trace), self.spansets(right, trace));
                let n = trace.rows.len();
                match op {
                    SpansetOp::Or => l.iter().zip(&r).map(|(a, b)| *a || *b).collect(),
                    SpansetOp::And => {
                        if l.contains(&true) && r.contains(&true) {
                            l.iter().zip(&r).map(|(a, b)| *a || *b).collect()
                        } else {
                            vec![false; n]
                        }
                    }
                    SpansetOp::Child => (0..n).map(|i| r[i] && trace.rows[i].parent.is_some_and(|p| l[p])).collect(),
                    SpansetOp::Parent => {
                        (0..n).map(|i| r[i] && (0..n).any(|j| l[j] && trace.rows[j].parent == Some(i))).collect()
                    }
                    SpansetOp::Descendant => {
                        (0..n).map(|i| r[i] && (0..n).any(|j| l[j] && trace.is_ancestor(j, i))).collect()
                    }
                    SpansetOp::Ancestor => {
                        (0..n).map(|i| r[i] && (0..n).any(|j| l[j] && trace.is_ancestor(i, j))).collect()
                    }
                    SpansetOp::Sibling => (0..n)
                        .map(|i| {
                            r[i] && trace.rows[i].parent.is_some()
                                && (0..n).any(|j| j != i && l[j] && trace.rows[j].parent == trace.rows[i].parent)
                        })
                        .collect(),
                }
            }
        }
    }
}

/// What a search asks.
#[derive(Debug, Clone)]
pub struct Search {
    /// The query.
    pub query: Query,
    /// The time range, unix nanoseconds.
    pub range: (u64, u64),
    /// Traces at most.
    pub limit: usize,
    /// Spans per spanset at most.
    pub spans_per_spanset: usize,
    /// The trace lasts at least this long (nanoseconds).
    pub min_duration: Option<u64>,
    /// The trace lasts at most this long.
    pub max_duration: Option<u64>,
    /// Spans the search may hold in memory at once ([`SearchError::TooManySpans`] past it).
    pub max_spans: usize,
}

/// A matching span.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundSpan {
    /// Hex span id.
    pub span_id: String,
    /// Its name.
    pub name: String,
    /// Its start, unix nanoseconds.
    pub start: u64,
    /// Its duration, nanoseconds.
    pub duration: u64,
    /// The attributes the query looked at and `select()`ed, with their values.
    pub attributes: Vec<(String, TagValue)>,
}

/// A matching trace.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundTrace {
    /// Hex trace id, leading zeros trimmed (as Tempo writes it).
    pub trace_id: String,
    /// The root span's service, `<root span not yet received>` without one.
    pub root_service_name: String,
    /// The root span's name.
    pub root_trace_name: String,
    /// The earliest span start, unix nanoseconds.
    pub start: u64,
    /// From the earliest start to the latest end, milliseconds.
    pub duration_ms: u64,
    /// The first `spans_per_spanset` matching spans, by start.
    pub spans: Vec<FoundSpan>,
    /// How many spans matched.
    pub matched: usize,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The search would hold more spans at once than it may.
    #[error(
        "the search would hold more than {limit} spans at once (api.limits.max_spans); narrow the time range (start, end)"
    )]
    TooManySpans {
        /// The limit.
        limit: usize,
    },
}

/// The spans of one trace read so far.
struct Assembling {
    rows: Vec<Row>,
    /// The span ids taken (a span sent twice is kept once).
    span_ids: FxHashSet<Vec<u8>>,
    /// The earliest start of its spans, unix nanoseconds.
    earliest: u64,
}

impl Default for Assembling {
    fn default() -> Self {
        Assembling { rows: Vec::new(), span_ids: FxHashSet::default(), earliest: u64::MAX }
    }
}

/// Spans by trace id.
type SpansByTrace = FxHashMap<Vec<u8>, Assembling>;

/// Traces assembled from `by_id`.
fn assembled(by_id: SpansByTrace) -> Vec<Trace> {
    by_id.into_iter().map(|(id, assembling)| Trace::new(id, assembling.rows)).collect()
}

/// Adds the spans of one stored record to `by_id` (only those of `wanted` traces when given), and to
/// `earliest` (when given) each trace whose earliest start it lowers, with that start; false once more
/// than `max_spans` are held.
fn collect(
    record: &[u8],
    by_id: &mut SpansByTrace,
    held: (&mut usize, usize),
    wanted: Option<&HashSet<Vec<u8>>>,
    earliest: Option<&mut BinaryHeap<(u64, Vec<u8>)>>,
) -> bool {
    match OtlpRequest::decode_protobuf(Signal::Traces, record) {
        Ok(OtlpRequest::Traces(request)) => collect_request(request, by_id, held, wanted, earliest),
        _ => true,
    }
}

/// The spans of a decoded record as rows, each with its resource and service.
fn rows(request: ExportTraceServiceRequest) -> impl Iterator<Item = Row> {
    request.resource_spans.into_iter().flat_map(|group| {
        let resource = Arc::new(group.resource.map(|resource| resource.attributes).unwrap_or_default());
        let service =
            stella_otlp::attributes::get_str(&resource, "service.name").unwrap_or("unknown_service").to_string();
        group.scope_spans.into_iter().flat_map(|scope| scope.spans).map(move |span| Row {
            span,
            resource: Arc::clone(&resource),
            service: service.clone(),
            parent: None,
        })
    })
}

/// [`collect`] of a decoded record.
fn collect_request(
    request: ExportTraceServiceRequest,
    by_id: &mut SpansByTrace,
    (spans, max_spans): (&mut usize, usize),
    wanted: Option<&HashSet<Vec<u8>>>,
    mut earliest: Option<&mut BinaryHeap<(u64, Vec<u8>)>>,
) -> bool {
    for row in rows(request) {
        let span = &row.span;
        if wanted.is_some_and(|wanted| !wanted.contains(&span.trace_id)) {
            continue;
        }
        let entry = match by_id.get_mut(&span.trace_id) {
            Some(entry) => entry,
            None => by_id.entry(span.trace_id.clone()).or_default(),
        };
        if !entry.span_ids.insert(span.span_id.clone()) {
            continue;
        }
        *spans += 1;
        if *spans > max_spans {
            return false;
        }
        if span.start_time_unix_nano < entry.earliest {
            entry.earliest = span.start_time_unix_nano;
            if let Some(heap) = earliest.as_deref_mut() {
                heap.push((entry.earliest, span.trace_id.clone()));
            }
        }
        entry.rows.push(row);
    }
    true
}

/// The traces of `tenant` overlapping the range, assembled from their spans (at most `max_spans`).
fn traces(
    view: &dyn StoreView,
    tenant: &str,
    range: (u64, u64),
    max_spans: usize,
) -> Result<(Vec<Trace>, u64), SearchError> {
    let mut by_id = SpansByTrace::default();
    let (mut spans, mut bytes) = (0usize, 0u64);
    let mut complete = true;
    scan(view, tenant, Signal::Traces, range, ScanFilter::default(), &mut |record| {
        bytes += record.len() as u64;
        complete = collect(record, &mut by_id, (&mut spans, max_spans), None, None);
        complete
    })?;
    if !complete {
        return Err(SearchError::TooManySpans { limit: max_spans });
    }
    Ok((assembled(by_id), bytes))
}

/// How far past a trace's earliest span start the sources still to read must lie before the trace is
/// taken as whole: a span whose clock runs this far behind its trace's others is still found with it.
/// Dropped (traces finish as soon as nothing still to read can start before them) while the search
/// holds more than a quarter of its spans limit.
const FINISH_GRACE: u64 = 2 * 1_000_000_000;

/// Runs `search` over every trace of the range, reading sources by descending latest span time: a
/// trace is evaluated, and its spans let go, once no source still to read can hold a span starting
/// within [`FINISH_GRACE`] of its earliest start (every span still to come starts before), and the
/// search stops once it holds `limit` traces: each trace finished later starts before them. So `{}`
/// over a busy hour reads its newest seconds, and a search holds the spans of the traces in flight,
/// not of the range. The answer is the one a search of every trace gives, but for a trace with a span
/// that ends more than the grace before every span read of it starts (a clock running behind): that
/// span may be found as a trace of its own. A root starts first and ends last, so its record is read
/// before any of its trace finishes.
fn search_newest_first(
    view: &dyn StoreView,
    tenant: &str,
    search: &Search,
) -> Result<(Vec<FoundTrace>, usize, u64), SearchError> {
    let mut state = NewestFirst::default();
    let mut overflow = false;
    let cut = view.cut(tenant, Signal::Traces, search.range, ScanFilter::default())?;
    // Records are decoded on a thread of their own, ahead of the traces being assembled here.
    let decode = |record: &[u8]| (record.len(), OtlpRequest::decode_protobuf(Signal::Traces, record));
    cut.visit_newest_first_decoded(view.store(), decode, &mut |step| match step {
        Decoded::Bound(bound) => {
            let grace = if state.spans > search.max_spans / 4 { 0 } else { FINISH_GRACE };
            !state.finish(bound.saturating_add(grace), search)
        }
        Decoded::Record((length, decoded)) => {
            state.bytes += length as u64;
            let Ok(OtlpRequest::Traces(request)) = decoded else { return true };
            let held = (&mut state.spans, search.max_spans);
            overflow = !collect_request(request, &mut state.by_id, held, None, Some(&mut state.earliest));
            !overflow
        }
    })?;
    if overflow {
        return Err(SearchError::TooManySpans { limit: search.max_spans });
    }
    let rest = assembled(std::mem::take(&mut state.by_id));
    state.evaluate(rest, search);
    Ok((state.found, state.inspected, state.bytes))
}

/// What [`search_newest_first`] holds: the traces in flight and the traces found.
#[derive(Default)]
struct NewestFirst {
    by_id: SpansByTrace,
    /// (earliest start, trace id) whenever a trace's earliest start was lowered; an entry whose start
    /// is no longer its trace's is stale.
    earliest: BinaryHeap<(u64, Vec<u8>)>,
    /// Spans held in `by_id`.
    spans: usize,
    /// Traces evaluated.
    inspected: usize,
    /// Bytes of the records read.
    bytes: u64,
    /// The `limit` newest traces found so far.
    found: Vec<FoundTrace>,
}

impl NewestFirst {
    /// Evaluates the traces whose earliest start is past `after`; true once it holds `limit` traces
    /// found (each trace finished later starts before every one finished so far: bounds only fall).
    fn finish(&mut self, after: u64, search: &Search) -> bool {
        let mut finished = Vec::new();
        while let Some((start, id)) = self.earliest.peek().filter(|(start, _)| *start > after).cloned() {
            self.earliest.pop();
            if self.by_id.get(&id).is_some_and(|assembling| assembling.earliest == start)
                && let Some(assembling) = self.by_id.remove(&id)
            {
                self.spans -= assembling.rows.len();
                finished.push(Trace::new(id, assembling.rows));
            }
        }
        self.evaluate(finished, search);
        self.found.len() >= search.limit
    }

    /// Adds what `search` finds in `traces` to the `limit` newest found.
    fn evaluate(&mut self, traces: Vec<Trace>, search: &Search) {
        self.inspected += traces.len();
        if !traces.is_empty() {
            self.found.extend(matching(&traces, search));
            self.found.sort_by(newest_first);
            self.found.truncate(search.limit);
        }
    }
}

/// Newest trace first; among equal starts, by trace id.
fn newest_first(a: &FoundTrace, b: &FoundTrace) -> std::cmp::Ordering {
    b.start.cmp(&a.start).then_with(|| a.trace_id.cmp(&b.trace_id))
}

/// Traces read whole by id for a narrowed search: at most this many candidates.
const MAX_CANDIDATES: usize = 1000;

/// How a search is narrowed before traces are read whole: a spanset filter every trace it finds must
/// have a matching span for, and what that filter lets the store rule out.
struct Narrowing<'q> {
    /// A service the matching span must be of (`resource.service.name = "..."`, `rootServiceName = "..."`).
    service: Option<String>,
    /// Clauses of terms the matching span must carry, each satisfied by any one of its terms.
    clauses: Vec<Vec<Term<'q>>>,
    /// The filter itself, when it can be decided span by span: candidates are the traces with a span
    /// that passes it.
    prefilter: Option<&'q Condition>,
}

/// Whether `span` (of a resource with `resource` attributes) carries a term of every clause.
fn carries(span: &Span, resource: &[KeyValue], clauses: &[Vec<Term<'_>>]) -> bool {
    clauses.iter().all(|clause| clause.iter().any(|term| term.carried_by(span, resource)))
}

/// The narrowing of the filter that narrows most among those every found trace must match: the
/// query's own filter, and under `&&` and the structural operators both sides (never under `||`).
fn narrowing(expr: &SpansetExpr) -> Option<Narrowing<'_>> {
    let mut required = Vec::new();
    required_filters(expr, &mut required);
    let narrowings = required.into_iter().map(|condition| {
        let mut clauses = Vec::new();
        term_clauses(condition, &mut clauses);
        // The matching span itself is of a `resource.service.name`; `rootServiceName` only says that
        // some span is (the root), so it narrows alone, never together with terms of the matching span.
        let service = if clauses.is_empty() { required_in(condition, true) } else { required_in(condition, false) };
        Narrowing { service, clauses, prefilter: span_level(condition).then_some(condition) }
    });
    narrowings
        .filter(|narrowing| narrowing.service.is_some() || !narrowing.clauses.is_empty())
        .max_by_key(|narrowing| (narrowing.clauses.len(), narrowing.service.is_some()))
}

fn required_filters<'q>(expr: &'q SpansetExpr, out: &mut Vec<&'q Condition>) {
    match expr {
        SpansetExpr::Filter(condition) => out.push(condition),
        SpansetExpr::Binary(_, SpansetOp::Or, _) => {}
        SpansetExpr::Binary(left, _, right) => {
            required_filters(left, out);
            required_filters(right, out);
        }
    }
}

/// A service every span passing `condition` is of (`resource.service.name = "..."`), or with `roots`
/// also the one `rootServiceName = "..."` names (a service some span of the trace is of).
fn required_in(condition: &Condition, roots: bool) -> Option<String> {
    let service = |attribute: &Attribute| {
        matches!(attribute, Attribute::Resource(name) if name == "service.name")
            || (roots && matches!(attribute, Attribute::Intrinsic(Intrinsic::RootServiceName)))
    };
    match condition {
        Condition::And(left, right) => required_in(left, roots).or_else(|| required_in(right, roots)),
        Condition::Compare(Operand::Attribute(attribute), Comparison::Eq, Operand::Static(Static::Str(value)))
        | Condition::Compare(Operand::Static(Static::Str(value)), Comparison::Eq, Operand::Attribute(attribute))
            if service(attribute) =>
        {
            Some(value.clone())
        }
        _ => None,
    }
}

/// The term clauses a span passing `condition` satisfies: equalities of string attributes, the name and
/// the status, joined by `&&` (each one a clause) or `||` (one clause of both sides' first ones).
fn term_clauses<'q>(condition: &'q Condition, out: &mut Vec<Vec<Term<'q>>>) {
    match condition {
        Condition::And(left, right) => {
            term_clauses(left, out);
            term_clauses(right, out);
        }
        Condition::Or(left, right) => {
            let (mut either, mut or) = (Vec::new(), Vec::new());
            term_clauses(left, &mut either);
            term_clauses(right, &mut or);
            if let (Some(either), Some(or)) = (either.first(), or.first()) {
                out.push(either.iter().chain(or).copied().collect());
            }
        }
        Condition::Compare(a, Comparison::Eq, b) => out.extend(equality_terms(a, b).or_else(|| equality_terms(b, a))),
        _ => {}
    }
}

/// The terms one of which a span has when `attribute = value` holds for it.
fn equality_terms<'q>(attribute: &'q Operand, value: &'q Operand) -> Option<Vec<Term<'q>>> {
    let (Operand::Attribute(attribute), Operand::Static(value)) = (attribute, value) else { return None };
    Some(match (attribute, value) {
        (Attribute::Span(key), Static::Str(text)) => vec![Term::Span(key, text)],
        (Attribute::Resource(key), Static::Str(text)) => vec![Term::Resource(key, text)],
        (Attribute::Any(key), Static::Str(text)) => vec![Term::Span(key, text), Term::Resource(key, text)],
        (Attribute::Intrinsic(Intrinsic::Name), Static::Str(text)) => vec![Term::Name(text)],
        (Attribute::Intrinsic(Intrinsic::Status), Static::Status(code)) => vec![Term::Status(*code)],
        _ => return None,
    })
}

/// Whether a condition can be decided from one span and its resource alone (no trace-level intrinsic).
fn span_level(condition: &Condition) -> bool {
    let operand = |operand: &Operand| {
        !matches!(
            operand,
            Operand::Attribute(Attribute::Intrinsic(
                Intrinsic::RootName | Intrinsic::RootServiceName | Intrinsic::TraceDuration
            ))
        )
    };
    match condition {
        Condition::True => true,
        Condition::And(a, b) | Condition::Or(a, b) => span_level(a) && span_level(b),
        Condition::Not(inner) => span_level(inner),
        Condition::Truthy(value) => operand(value),
        Condition::TextEquals(attribute, _) => operand(&Operand::Attribute(attribute.clone())),
        Condition::Compare(a, _, b) => operand(a) && operand(b),
    }
}

/// The traces with a span in the range that passes `narrowing`, read whole by id: the service's index
/// shards and the chunks' term filters name the chunks to read for the candidates. `None` when there
/// are more than [`MAX_CANDIDATES`].
fn traces_of_candidates(
    view: &dyn StoreView,
    tenant: &str,
    range: (u64, u64),
    narrowing: &Narrowing<'_>,
    max_spans: usize,
) -> Result<Option<(Vec<Trace>, u64)>, SearchError> {
    // Candidates: traces with a span in the range of the service carrying the terms (and, when the
    // filter is decided span by span, passing it). Only their ids are held.
    let hashes: Vec<Vec<u128>> =
        narrowing.clauses.iter().map(|clause| clause.iter().map(Term::hash).collect()).collect();
    let filter = ScanFilter { service: narrowing.service.as_deref(), terms: &hashes, ..ScanFilter::default() };
    let prefilter = narrowing.prefilter.map(|condition| SpansetExpr::Filter(condition.clone()));
    let evaluator = Evaluator::default();
    let mut candidates: HashSet<Vec<u8>> = HashSet::new();
    let mut bytes = 0u64;
    scan(view, tenant, Signal::Traces, range, filter, &mut |record| {
        bytes += record.len() as u64;
        let Ok(OtlpRequest::Traces(request)) = OtlpRequest::decode_protobuf(Signal::Traces, record) else {
            return true;
        };
        for group in request.resource_spans {
            let resource = Arc::new(group.resource.map(|resource| resource.attributes).unwrap_or_default());
            let service = stella_otlp::attributes::get_str(&resource, "service.name").unwrap_or("unknown_service");
            if narrowing.service.as_deref().is_some_and(|wanted| wanted != service) {
                continue;
            }
            for span in group.scope_spans.into_iter().flat_map(|scope| scope.spans) {
                let ends = span.end_time_unix_nano.max(span.start_time_unix_nano);
                if candidates.contains(&span.trace_id)
                    || span.start_time_unix_nano > range.1
                    || ends < range.0
                    || !carries(&span, &resource, &narrowing.clauses)
                {
                    continue;
                }
                if let Some(prefilter) = &prefilter {
                    let row = Row { span, resource: Arc::clone(&resource), service: service.to_string(), parent: None };
                    let trace = Trace::new(row.span.trace_id.clone(), vec![row]);
                    if !evaluator.spansets(prefilter, &trace).contains(&true) {
                        continue;
                    }
                    candidates.insert(trace.id);
                } else {
                    candidates.insert(span.trace_id);
                }
                if candidates.len() > MAX_CANDIDATES {
                    return false;
                }
            }
        }
        true
    })?;
    if candidates.len() > MAX_CANDIDATES {
        return Ok(None);
    }
    let mut spans = 0usize;
    let mut by_id = SpansByTrace::default();
    for id in &candidates {
        let Ok(trace_id) = <[u8; 16]>::try_from(id.as_slice()) else { continue };
        for record in view.trace_records(tenant, &trace_id)? {
            bytes += record.len() as u64;
            if !collect(&record, &mut by_id, (&mut spans, max_spans), Some(&candidates), None) {
                return Err(SearchError::TooManySpans { limit: max_spans });
            }
        }
    }
    Ok(Some((assembled(by_id), bytes)))
}

/// The attributes a query looks at (intrinsics only `status`, `kind`, `statusMessage`, as Tempo shows).
fn touched(expr: &SpansetExpr, out: &mut BTreeSet<Attribute>) {
    match expr {
        SpansetExpr::Filter(condition) => touched_condition(condition, out),
        SpansetExpr::Binary(left, _, right) => {
            touched(left, out);
            touched(right, out);
        }
    }
}

fn touched_condition(condition: &Condition, out: &mut BTreeSet<Attribute>) {
    match condition {
        Condition::True => {}
        Condition::And(a, b) | Condition::Or(a, b) => {
            touched_condition(a, out);
            touched_condition(b, out);
        }
        Condition::Not(inner) => touched_condition(inner, out),
        Condition::Truthy(value) => touched_operand(value, out),
        Condition::TextEquals(attribute, _) => touched_operand(&Operand::Attribute(attribute.clone()), out),
        Condition::Compare(a, _, b) => {
            touched_operand(a, out);
            touched_operand(b, out);
        }
    }
}

fn touched_operand(operand: &Operand, out: &mut BTreeSet<Attribute>) {
    if let Operand::Attribute(attribute) = operand {
        let shown = match attribute {
            Attribute::Intrinsic(intrinsic) => {
                matches!(intrinsic, Intrinsic::Status | Intrinsic::Kind | Intrinsic::StatusMessage)
            }
            _ => true,
        };
        if shown {
            out.insert(attribute.clone());
        }
    }
}

fn attribute_key(attribute: &Attribute) -> String {
    match attribute {
        Attribute::Intrinsic(intrinsic) => intrinsic.name().to_string(),
        Attribute::Span(name) | Attribute::Resource(name) | Attribute::Any(name) => name.clone(),
    }
}

/// Runs `search` over `tenant`'s traces: matching traces newest first, and the bytes inspected.
pub fn search(
    view: &dyn StoreView,
    tenant: &str,
    search: &Search,
) -> Result<(Vec<FoundTrace>, usize, u64), SearchError> {
    let narrowed = match narrowing(&search.query.spansets) {
        Some(narrowing) => traces_of_candidates(view, tenant, search.range, &narrowing, search.max_spans)?,
        None => None,
    };
    match narrowed {
        Some((traces, bytes)) => Ok((matching(&traces, search), traces.len(), bytes)),
        None => search_newest_first(view, tenant, search),
    }
}

/// The traces of `traces` that `search` finds, newest first.
fn matching(traces: &[Trace], search: &Search) -> Vec<FoundTrace> {
    let evaluator = Evaluator::default();
    let mut shown = BTreeSet::new();
    touched(&search.query.spansets, &mut shown);
    shown.extend(search.query.select.iter().cloned());
    let mut found = Vec::new();
    for trace in traces {
        let duration = trace.end.saturating_sub(trace.start);
        if search.min_duration.is_some_and(|least| duration < least)
            || search.max_duration.is_some_and(|most| duration > most)
        {
            continue;
        }
        let mask = evaluator.spansets(&search.query.spansets, trace);
        let matched: Vec<usize> = mask.iter().enumerate().filter(|(_, hit)| **hit).map(|(at, _)| at).collect();
        if matched.is_empty() {
            continue;
        }
        if let Some((op, value)) = search.query.count
            && !evaluator.compare(&TagValue::Float(matched.len() as f64), op, &TagValue::Float(value))
        {
            continue;
        }
        let spans = matched
            .iter()
            .take(search.spans_per_spanset)
            .map(|at| {
                let span = &trace.rows[*at].span;
                let attributes = shown
                    .iter()
                    .filter_map(|attribute| {
                        evaluator.value(attribute, trace, *at).map(|value| (attribute_key(attribute), value))
                    })
                    .collect();
                FoundSpan {
                    span_id: hex::encode(&span.span_id),
                    name: span.name.clone(),
                    start: span.start_time_unix_nano,
                    duration: span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano),
                    attributes,
                }
            })
            .collect();
        let root = trace.root.map(|at| &trace.rows[at]);
        let id = hex::encode(&trace.id);
        found.push(FoundTrace {
            trace_id: id.trim_start_matches('0').to_string(),
            root_service_name: root
                .map_or_else(|| "<root span not yet received>".to_string(), |row| row.service.clone()),
            root_trace_name: root.map(|row| row.span.name.clone()).unwrap_or_default(),
            start: trace.start,
            duration_ms: duration / 1_000_000,
            spans,
            matched: matched.len(),
        });
    }
    found.sort_by(newest_first);
    found.truncate(search.limit);
    found
}

/// Hands each span of `tenant`'s records overlapping the range to `visit` as a trace of that span
/// alone, newest source first, reading at most `max_spans` spans (a busy range answers from its newest
/// spans); `visit` returns false to stop. For what looks at spans one by one: tag discovery.
fn visit_spans(
    view: &dyn StoreView,
    tenant: &str,
    range: (u64, u64),
    max_spans: usize,
    visit: &mut dyn FnMut(&Trace) -> bool,
) -> Result<(), SearchError> {
    let mut read = 0usize;
    let decode = |record: &[u8]| OtlpRequest::decode_protobuf(Signal::Traces, record);
    let cut = view.cut(tenant, Signal::Traces, range, ScanFilter::default())?;
    cut.visit_newest_first_decoded(view.store(), decode, &mut |step| {
        let Decoded::Record(Ok(OtlpRequest::Traces(request))) = step else { return true };
        for row in rows(request) {
            read += 1;
            if read > max_spans || !visit(&Trace::new(row.span.trace_id.clone(), vec![row])) {
                return false;
            }
        }
        true
    })?;
    Ok(())
}

/// The attribute names of `tenant`'s spans in the range: (resource, span), at most `limit` of each,
/// from the newest `max_spans` spans.
pub fn tag_names(
    view: &dyn StoreView,
    tenant: &str,
    range: (u64, u64),
    limit: usize,
    max_spans: usize,
) -> Result<(BTreeSet<String>, BTreeSet<String>), SearchError> {
    let (mut resource, mut span) = (BTreeSet::new(), BTreeSet::new());
    visit_spans(view, tenant, range, max_spans, &mut |trace| {
        for row in &trace.rows {
            for attribute in row.resource.iter() {
                if resource.len() < limit {
                    resource.insert(attribute.key.clone());
                }
            }
            for attribute in &row.span.attributes {
                if span.len() < limit {
                    span.insert(attribute.key.clone());
                }
            }
        }
        resource.len() < limit || span.len() < limit
    })?;
    Ok((resource, span))
}

/// The intrinsics Tempo's tag discovery lists.
pub const INTRINSIC_TAGS: &[&str] = &[
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:id",
    "span:kind",
    "span:name",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:id",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

/// The distinct values `attribute` takes on `tenant`'s spans in the range that `filter` (a spanset's
/// condition) admits, at most `limit`, sorted. Looked for span by span in the newest `max_spans` spans;
/// when the attribute or the filter needs whole traces (`rootName`, `rootServiceName`,
/// `traceDuration`), in the traces of the range, refused past `max_spans` spans.
pub fn tag_values(
    view: &dyn StoreView,
    tenant: &str,
    range: (u64, u64),
    attribute: &Attribute,
    filter: Option<&Condition>,
    limit: usize,
    max_spans: usize,
) -> Result<Vec<TagValue>, SearchError> {
    match attribute {
        Attribute::Intrinsic(Intrinsic::Status) => {
            return Ok(["error", "ok", "unset"].iter().map(|word| TagValue::Keyword(word.to_string())).collect());
        }
        Attribute::Intrinsic(Intrinsic::Kind) => {
            return Ok(["client", "consumer", "internal", "producer", "server", "unspecified"]
                .iter()
                .map(|word| TagValue::Keyword(word.to_string()))
                .collect());
        }
        Attribute::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration) => return Ok(Vec::new()),
        _ => {}
    }
    let evaluator = Evaluator::default();
    let mut values: BTreeMap<String, TagValue> = BTreeMap::new();
    // Adds the values of `trace`'s spans; false once `limit` are found.
    let mut take = |trace: &Trace| {
        for at in 0..trace.rows.len() {
            if filter.is_some_and(|condition| !evaluator.holds(condition, trace, at)) {
                continue;
            }
            if let Some(value) = evaluator.value(attribute, trace, at) {
                values.insert(format!("{}\u{0}{}", value.type_name(), value.text()), value);
                if values.len() >= limit {
                    return false;
                }
            }
        }
        true
    };
    let whole_traces = !span_level(&Condition::Truthy(Operand::Attribute(attribute.clone())))
        || filter.is_some_and(|condition| !span_level(condition));
    if whole_traces {
        let (traces, _) = traces(view, tenant, range, max_spans)?;
        for trace in &traces {
            if !take(trace) {
                break;
            }
        }
    } else {
        visit_spans(view, tenant, range, max_spans, &mut take)?;
    }
    let mut out: Vec<TagValue> = values.into_values().collect();
    out.sort_by_key(TagValue::text);
    Ok(out)
}

#[cfg(test)]
mod tests;
