//! [`TailSampler`]: buffers spans by trace id, decides traces when they are due, remembers decisions.
//!
//! The engine is pure: the caller feeds it log records with their sequence numbers and the time, and
//! gets back what to emit and what was dropped, so the same inputs give the same decisions.
//!
//! It works on the encoded records: spans are read through borrowed views (`stella_otlp::wire::view`),
//! buffered as the bytes they were logged as, and passed on by copying those bytes with the two
//! `sampling.*` attributes appended, so a span is never decoded into an owned struct or encoded again.
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::any_value;
use stella_otlp::wire::WireError;
use stella_otlp::wire::view::{
    AnyValueView, RESOURCE_ATTRIBUTES, SPAN_ATTRIBUTES, SpanView, WireValue, attribute, delimited_len, fields,
    put_delimited, put_delimited_header, put_string_attribute, string_attribute_len,
};

use super::arena::{RunRef, SpanArena};
use super::cache::DecisionCache;
use super::config::TailSamplingConfig;
use super::context::{Context, Contexts};
use super::policy::{Decision, Policies, PolicyError, RateState, TraceSummary, percent_threshold, sampled_by_hash};
use super::table::TraceTable;

/// The span attribute naming the policy that kept a trace.
pub const POLICY_ATTRIBUTE: &str = "sampling.policy";
/// The span attribute carrying the policy set's version.
pub const POLICY_VERSION_ATTRIBUTE: &str = "sampling.policy_version";
/// `sampling.policy` of traces kept because their service was in incident mode.
pub const INCIDENT_POLICY: &str = "incident_mode";
/// `sampling.policy` of traces kept by stateless trace-id sampling under stress relief.
pub const STRESS_POLICY: &str = "stress_relief";

/// Cache payloads beyond the policy indices.
const INCIDENT_PAYLOAD: u8 = 250;
const STRESS_PAYLOAD: u8 = 251;
const UNKNOWN_PAYLOAD: u8 = 252;

/// Bytes counted per buffered trace on top of its spans: the table value, its id, the hash slot and a
/// queue entry, plus a quarter for the slack of growing tables.
const TRACE_OVERHEAD: u64 = (size_of::<Buffered>() + 16 + 24 + size_of::<QueueEntry>()) as u64 * 5 / 4;

/// Which services incident mode covers for this sampler's tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IncidentScope {
    /// Incident mode is off.
    #[default]
    Off,
    /// Every service.
    All,
    /// These services.
    Services(BTreeSet<String>),
}

impl IncidentScope {
    fn covers<'a>(&self, mut services: impl Iterator<Item = &'a str>) -> bool {
        match self {
            IncidentScope::Off => false,
            IncidentScope::All => true,
            IncidentScope::Services(named) => services.any(|service| named.contains(service)),
        }
    }
}

/// One undecided trace.
#[derive(Debug)]
struct Buffered {
    first_seen_ms: u64,
    first_seq: u64,
    summary: TraceSummary,
    /// The trace's first and last run of spans in the arena.
    head: RunRef,
    tail: RunRef,
    /// Bytes of its runs.
    bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct QueueEntry {
    trace_id: [u8; 16],
    since_ms: u64,
}

/// What one step of the sampler produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Spans to pass on (kept traces and late spans of kept traces), with their `sampling.*` attributes:
    /// an encoded `ExportTraceServiceRequest`.
    pub kept: Vec<u8>,
    /// Spans in `kept`.
    pub kept_spans: u64,
    /// Traces kept, by policy name.
    pub kept_traces: BTreeMap<String, u64>,
    /// Spans dropped, by reason (`not_sampled`, `drop_policy`, `stress_relief`, `late_span_of_dropped_trace`).
    pub dropped_spans: BTreeMap<&'static str, u64>,
    /// Traces decided before their time because the buffer was at its budget or a trace at its cap.
    pub early_decisions: u64,
    /// Set when stress relief started (`true`) or ended (`false`) in this step.
    pub stress_changed: Option<bool>,
}

impl Outcome {
    fn drop_spans(&mut self, reason: &'static str, spans: u64) {
        *self.dropped_spans.entry(reason).or_insert(0) += spans;
    }
}

/// Where a replay after a restart stands: decisions made before the crash are honoured.
#[derive(Debug, Default)]
struct ReplayGuard {
    /// Records before this were read before the checkpoint: their decided spans were handled then.
    read_seq: u64,
    /// Spans already passed on after the checkpoint (found in the output log).
    emitted: HashSet<([u8; 16], [u8; 8])>,
    /// The guard ends once the replay reaches this record.
    until_seq: u64,
}

/// What a checkpoint holds: enough to replay the input log after a restart and reach the same decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The first input record not yet read.
    pub read_seq: u64,
    /// The first input record holding a span of an undecided trace (replay starts here).
    pub replay_seq: u64,
    /// The output log's head when the checkpoint was taken (set by the caller): spans passed on from
    /// here were passed on after the checkpoint.
    pub output_seq: u64,
    /// Keep cache: its capacity and occupied slots.
    pub keep: (u64, Vec<(u64, u64)>),
    /// Drop cache: its capacity and occupied slots.
    pub drop: (u64, Vec<(u64, u64)>),
}

/// The tail sampler of one pipeline and tenant.
#[derive(Debug)]
pub struct TailSampler {
    config: TailSamplingConfig,
    policies: Arc<Policies>,
    traces: TraceTable<Buffered>,
    arena: SpanArena,
    contexts: Contexts,
    queue: VecDeque<QueueEntry>,
    root_queue: VecDeque<QueueEntry>,
    keep: DecisionCache,
    drop: DecisionCache,
    rates: RateState,
    stress: bool,
    incident: IncidentScope,
    read_seq: u64,
    replay: Option<ReplayGuard>,
}

impl TailSampler {
    /// A sampler with `config`, starting at input record `read_seq`.
    pub fn new(config: TailSamplingConfig, read_seq: u64) -> Result<Self, PolicyError> {
        let policies = Arc::new(Policies::compile(&config)?);
        Ok(TailSampler {
            keep: DecisionCache::new(config.decision_cache.sampled_cache_size),
            drop: DecisionCache::new(config.decision_cache.non_sampled_cache_size),
            arena: SpanArena::new(block_size(&config)),
            config,
            policies,
            traces: TraceTable::default(),
            contexts: Contexts::default(),
            queue: VecDeque::new(),
            root_queue: VecDeque::new(),
            rates: RateState::default(),
            stress: false,
            incident: IncidentScope::Off,
            read_seq,
            replay: None,
        })
    }

    /// Applies new settings and policies (a reload) without losing buffered traces or decisions.
    pub fn reconfigure(&mut self, config: TailSamplingConfig) -> Result<(), PolicyError> {
        self.policies = Arc::new(Policies::compile(&config)?);
        if config.decision_cache != self.config.decision_cache {
            self.keep = DecisionCache::new(config.decision_cache.sampled_cache_size);
            self.drop = DecisionCache::new(config.decision_cache.non_sampled_cache_size);
        }
        self.arena.set_block_size(block_size(&config));
        self.config = config;
        Ok(())
    }

    /// The policy set's version.
    pub fn policy_version(&self) -> &str {
        self.policies.version()
    }

    /// Bytes of buffered traces, as counted against `max_buffered_bytes`.
    pub fn buffered_bytes(&self) -> u64 {
        self.arena.allocated() + self.contexts.memory() + self.traces.len() as u64 * TRACE_OVERHEAD
    }

    /// Undecided traces.
    pub fn buffered_traces(&self) -> usize {
        self.traces.len()
    }

    /// Whether stress relief is on.
    pub fn stressed(&self) -> bool {
        self.stress
    }

    /// Bytes held by the two decision caches.
    pub fn cache_bytes(&self) -> usize {
        self.keep.memory_bytes() + self.drop.memory_bytes()
    }

    /// The first input record not yet read.
    pub fn read_seq(&self) -> u64 {
        self.read_seq
    }

    /// The first input record a restart must replay: the oldest holding a span of an undecided trace.
    pub fn replay_seq(&self) -> u64 {
        self.traces.values().map(|trace| trace.first_seq).min().unwrap_or(self.read_seq).min(self.read_seq)
    }

    /// Changes incident mode; buffered traces it now covers are kept at once.
    pub fn set_incident(&mut self, scope: IncidentScope, now_ms: u64, out: &mut Outcome) {
        self.incident = scope;
        if self.incident == IncidentScope::Off {
            return;
        }
        let covered: Vec<[u8; 16]> = self
            .traces
            .iter()
            .filter(|(_, trace)| self.incident.covers(self.services(trace)))
            .map(|(trace_id, _)| *trace_id)
            .collect();
        for trace_id in covered {
            self.decide(trace_id, now_ms, out);
        }
    }

    /// Reads one input record (`seq`, an encoded `ExportTraceServiceRequest`) at `now_ms`. A malformed
    /// record is an error; the spans before the damage have been read.
    pub fn ingest(&mut self, seq: u64, request: &[u8], now_ms: u64, out: &mut Outcome) -> Result<(), WireError> {
        let read = self.read_request(seq, request, now_ms, out);
        self.read_seq = self.read_seq.max(seq + 1);
        if self.replay.as_ref().is_some_and(|guard| self.read_seq >= guard.until_seq) {
            self.replay = None;
        }
        self.enforce_budget(now_ms, out);
        read
    }

    fn read_request(&mut self, seq: u64, request: &[u8], now_ms: u64, out: &mut Outcome) -> Result<(), WireError> {
        for group in fields(request) {
            let group = group?;
            let (1, WireValue::Bytes(group)) = (group.number, group.value) else { continue };
            let (mut resource, mut resource_schema_url, mut scopes) = (None, "", Vec::new());
            for field in fields(group) {
                let field = field?;
                match (field.number, field.value) {
                    (1, WireValue::Bytes(bytes)) => resource = Some(bytes),
                    (2, WireValue::Bytes(bytes)) => scopes.push(bytes),
                    (3, WireValue::Bytes(text)) => resource_schema_url = utf8(text, field.span.0)?,
                    _ => {}
                }
            }
            let service: Option<Arc<str>> = resource
                .and_then(|resource| match attribute(resource, RESOURCE_ATTRIBUTES, "service.name") {
                    Some(AnyValueView::String(name)) => Some(name),
                    _ => None,
                })
                .map(Arc::from);
            for scope_group in scopes {
                let (mut scope, mut scope_schema_url, mut spans) = (None, "", Vec::new());
                for field in fields(scope_group) {
                    let field = field?;
                    match (field.number, field.value) {
                        (1, WireValue::Bytes(bytes)) => scope = Some(bytes),
                        (2, WireValue::Bytes(bytes)) => spans.push(bytes),
                        (3, WireValue::Bytes(text)) => scope_schema_url = utf8(text, field.span.0)?,
                        _ => {}
                    }
                }
                let context = self.contexts.intern(Context {
                    resource: resource.map(<[u8]>::to_vec),
                    resource_schema_url: resource_schema_url.to_string(),
                    scope: scope.map(<[u8]>::to_vec),
                    scope_schema_url: scope_schema_url.to_string(),
                    service: service.clone(),
                });
                // Held while the group is read: a trace decided meanwhile must not take the context along.
                self.contexts.hold(context);
                let read = self.read_spans(seq, context, &spans, resource, &service, now_ms, out);
                self.contexts.release(context);
                read?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn read_spans(
        &mut self,
        seq: u64,
        context: u32,
        spans: &[&[u8]],
        resource: Option<&[u8]>,
        service: &Option<Arc<str>>,
        now_ms: u64,
        out: &mut Outcome,
    ) -> Result<(), WireError> {
        let before_checkpoint = self.replay.as_ref().is_some_and(|guard| seq < guard.read_seq);
        for bytes in spans {
            let span = SpanView::parse(bytes)?;
            let trace_id = id16(span.trace_id);
            let span_key = (trace_id, id8(span.span_id));
            if self.replay.as_ref().is_some_and(|guard| guard.emitted.contains(&span_key)) {
                continue;
            }
            if let Some(payload) = self.keep.get(&trace_id) {
                if !before_checkpoint {
                    let name = self.payload_name(payload);
                    self.emit(context, &[span.bytes], &name, out);
                }
                continue;
            }
            if self.drop.get(&trace_id).is_some() {
                if !before_checkpoint {
                    out.drop_spans("late_span_of_dropped_trace", 1);
                }
                continue;
            }
            if self.stress && !self.traces.contains_key(&trace_id) {
                self.decide_stateless(trace_id, context, span.bytes, service.as_deref(), out);
                continue;
            }
            self.buffer(trace_id, context, &span, resource, service.clone(), seq, now_ms, out);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn buffer(
        &mut self,
        trace_id: [u8; 16],
        context: u32,
        span: &SpanView<'_>,
        resource: Option<&[u8]>,
        service: Option<Arc<str>>,
        seq: u64,
        now_ms: u64,
        out: &mut Outcome,
    ) {
        let bits = self.policies.span_bits(span, resource);
        let is_root = span.parent_span_id.is_empty();
        let trace = self.traces.get_or_insert_with(trace_id, || {
            self.queue.push_back(QueueEntry { trace_id, since_ms: now_ms });
            Buffered {
                first_seen_ms: now_ms,
                first_seq: seq,
                summary: TraceSummary { min_start: u64::MAX, ..TraceSummary::default() },
                head: RunRef::NONE,
                tail: RunRef::NONE,
                bytes: 0,
            }
        });
        let summary = &mut trace.summary;
        summary.matched |= bits;
        summary.spans += 1;
        summary.min_start = summary.min_start.min(span.start_time_unix_nano);
        summary.max_end = summary.max_end.max(span.end_time_unix_nano);
        if summary.service.is_none() || is_root {
            summary.service = service.or_else(|| summary.service.clone());
        }
        let mut root_due = None;
        if is_root && !summary.has_root {
            summary.has_root = true;
            if let Some(after_root) = self.config.decision_wait_after_root_received {
                root_due = Some(now_ms + after_root.as_millis() as u64);
            }
        }
        let appended = self.arena.append(trace.tail, context, span.bytes);
        if appended.new_run {
            self.contexts.hold(context);
        }
        if trace.head == RunRef::NONE {
            trace.head = appended.tail;
        }
        trace.tail = appended.tail;
        trace.bytes += appended.bytes as u64;
        let over_cap = trace.bytes > self.config.max_trace_bytes;
        if let Some(due) = root_due {
            self.root_queue.push_back(QueueEntry { trace_id, since_ms: due });
        }
        if over_cap {
            out.early_decisions += 1;
            self.decide(trace_id, now_ms, out);
        }
    }

    /// Decides every trace that is due at `now_ms` (its wait passed, or its root's shorter wait).
    pub fn decide_due(&mut self, now_ms: u64, out: &mut Outcome) {
        let wait = self.config.decision_wait.as_millis() as u64;
        while let Some(entry) = self.queue.front().copied() {
            match self.traces.get(&entry.trace_id) {
                Some(trace) if trace.first_seen_ms == entry.since_ms => {
                    if entry.since_ms + wait > now_ms {
                        break;
                    }
                    self.queue.pop_front();
                    self.decide(entry.trace_id, now_ms, out);
                }
                _ => {
                    self.queue.pop_front();
                }
            }
        }
        while let Some(entry) = self.root_queue.front().copied() {
            if entry.since_ms > now_ms {
                break;
            }
            self.root_queue.pop_front();
            self.decide(entry.trace_id, now_ms, out);
        }
        self.end_stress_if_relieved(out);
    }

    /// Decides every buffered trace now, oldest first (at shutdown); each counts as an early decision.
    pub fn decide_all(&mut self, now_ms: u64, out: &mut Outcome) {
        let all: Vec<[u8; 16]> = self.queue.iter().map(|entry| entry.trace_id).collect();
        for trace_id in all {
            if self.traces.contains_key(&trace_id) {
                out.early_decisions += 1;
                self.decide(trace_id, now_ms, out);
            }
        }
        self.queue.clear();
        self.root_queue.clear();
    }

    fn enforce_budget(&mut self, now_ms: u64, out: &mut Outcome) {
        let wait = self.config.decision_wait.as_millis() as u64;
        let mut pressed = false;
        while self.buffered_bytes() > self.config.max_buffered_bytes {
            let Some(entry) = self.queue.pop_front() else { break };
            let Some(trace) = self.traces.get(&entry.trace_id) else { continue };
            if trace.first_seen_ms != entry.since_ms {
                continue;
            }
            // The oldest trace had less than half its wait: the buffer cannot hold the incoming rate.
            pressed |= now_ms.saturating_sub(trace.first_seen_ms) < wait / 2;
            out.early_decisions += 1;
            self.decide(entry.trace_id, now_ms, out);
        }
        if pressed && !self.stress {
            self.stress = true;
            out.stress_changed = Some(true);
        }
        self.end_stress_if_relieved(out);
    }

    fn end_stress_if_relieved(&mut self, out: &mut Outcome) {
        if self.stress && self.buffered_bytes() < self.config.max_buffered_bytes / 2 {
            self.stress = false;
            out.stress_changed = Some(false);
        }
    }

    fn decide_stateless(
        &mut self,
        trace_id: [u8; 16],
        context: u32,
        span: &[u8],
        service: Option<&str>,
        out: &mut Outcome,
    ) {
        let threshold = percent_threshold(self.config.stress_relief_percentage);
        let payload = if self.incident.covers(service.into_iter()) {
            Some(INCIDENT_PAYLOAD)
        } else if sampled_by_hash(&trace_id, "", threshold) {
            Some(STRESS_PAYLOAD)
        } else {
            None
        };
        match payload {
            Some(payload) => {
                self.keep.insert(&trace_id, payload);
                let name = self.payload_name(payload);
                *out.kept_traces.entry(name.clone()).or_insert(0) += 1;
                self.emit(context, &[span], &name, out);
            }
            None => {
                self.drop.insert(&trace_id, 0);
                out.drop_spans("stress_relief", 1);
            }
        }
    }

    fn decide(&mut self, trace_id: [u8; 16], now_ms: u64, out: &mut Outcome) {
        let Some(trace) = self.traces.remove(&trace_id) else { return };
        let decision = if self.incident.covers(self.services(&trace)) {
            Decision::Keep(usize::from(INCIDENT_PAYLOAD))
        } else {
            self.policies.decide(&trace_id, &trace.summary, now_ms, &mut self.rates)
        };
        let spans = u64::from(trace.summary.spans);
        match decision {
            Decision::Keep(index) => {
                let payload = u8::try_from(index).unwrap_or(UNKNOWN_PAYLOAD);
                self.keep.insert(&trace_id, payload);
                let name = self.payload_name(payload);
                *out.kept_traces.entry(name.clone()).or_insert(0) += 1;
                let mut group: Option<(u32, Vec<&[u8]>)> = None;
                for (context, mut bytes) in self.arena.runs(trace.head) {
                    if let Some((previous, spans)) = group.take_if(|(previous, _)| *previous != context) {
                        self.emit(previous, &spans, &name, out);
                    }
                    let (_, spans) = group.get_or_insert_with(|| (context, Vec::new()));
                    while let Some(span) = split_delimited(&mut bytes) {
                        spans.push(span);
                    }
                }
                if let Some((context, spans)) = group {
                    self.emit(context, &spans, &name, out);
                }
            }
            Decision::Drop => {
                self.drop.insert(&trace_id, 0);
                out.drop_spans("drop_policy", spans);
            }
            Decision::NotSampled => {
                self.drop.insert(&trace_id, 0);
                out.drop_spans("not_sampled", spans);
            }
        }
        let contexts: Vec<u32> = self.arena.runs(trace.head).map(|(context, _)| context).collect();
        for context in contexts {
            self.contexts.release(context);
        }
        self.arena.release(trace.head);
    }

    /// The services of a buffered trace's spans (repeated once per run).
    fn services<'a>(&'a self, trace: &Buffered) -> impl Iterator<Item = &'a str> {
        self.arena.runs(trace.head).filter_map(|(context, _)| self.contexts.get(context)?.service.as_deref())
    }

    fn payload_name(&self, payload: u8) -> String {
        match payload {
            INCIDENT_PAYLOAD => INCIDENT_POLICY.to_string(),
            STRESS_PAYLOAD => STRESS_POLICY.to_string(),
            index => self.policies.name(usize::from(index)).unwrap_or("unknown").to_string(),
        }
    }

    /// Appends to `out.kept` one `ResourceSpans` of `context` holding `spans` (encoded), each with the
    /// `sampling.policy` and `sampling.policy_version` attributes set (any it carried are replaced).
    fn emit(&self, context: u32, spans: &[&[u8]], policy: &str, out: &mut Outcome) {
        let Some(context) = self.contexts.get(context) else { return };
        let version = self.policies.version();
        let added = [(POLICY_ATTRIBUTE, policy), (POLICY_VERSION_ATTRIBUTE, version)];
        let added_len: usize =
            added.iter().map(|(key, value)| delimited_len(SPAN_ATTRIBUTES, string_attribute_len(key, value))).sum();
        let span_lens: Vec<usize> = spans.iter().map(|span| kept_span_len(span) + added_len).collect();
        let scope_len = context.scope.as_ref().map_or(0, |scope| delimited_len(1, scope.len()))
            + span_lens.iter().map(|len| delimited_len(2, *len)).sum::<usize>()
            + optional_text_len(3, &context.scope_schema_url);
        let group_len = context.resource.as_ref().map_or(0, |resource| delimited_len(1, resource.len()))
            + delimited_len(2, scope_len)
            + optional_text_len(3, &context.resource_schema_url);
        let kept = &mut out.kept;
        kept.reserve(delimited_len(1, group_len));
        put_delimited_header(kept, 1, group_len);
        if let Some(resource) = &context.resource {
            put_delimited(kept, 1, resource);
        }
        put_delimited_header(kept, 2, scope_len);
        if let Some(scope) = &context.scope {
            put_delimited(kept, 1, scope);
        }
        for (span, len) in spans.iter().zip(span_lens) {
            put_delimited_header(kept, 2, len);
            copy_kept_span(span, kept);
            for (key, value) in added {
                put_delimited_header(kept, SPAN_ATTRIBUTES, string_attribute_len(key, value));
                put_string_attribute(kept, key, value);
            }
        }
        if !context.scope_schema_url.is_empty() {
            put_delimited(kept, 3, context.scope_schema_url.as_bytes());
        }
        if !context.resource_schema_url.is_empty() {
            put_delimited(kept, 3, context.resource_schema_url.as_bytes());
        }
        out.kept_spans += spans.len() as u64;
    }

    /// The state a restart needs (see [`TailSampler::recover`]).
    pub fn checkpoint(&self) -> Checkpoint {
        let slots = |cache: &DecisionCache| {
            (cache.capacity() as u64, cache.entries().map(|(index, entry)| (index as u64, entry)).collect())
        };
        Checkpoint {
            read_seq: self.read_seq,
            replay_seq: self.replay_seq(),
            output_seq: 0,
            keep: slots(&self.keep),
            drop: slots(&self.drop),
        }
    }

    /// Restores a checkpoint and the spans passed on after it (read back from the output log, with their
    /// `sampling.policy`), and returns the input record to replay from. Spans already passed on are not
    /// passed on again; spans of traces decided before the checkpoint are not decided again.
    pub fn recover(
        &mut self,
        checkpoint: Option<&Checkpoint>,
        emitted_after: &ExportTraceServiceRequest,
        input_head: u64,
    ) -> u64 {
        let mut guard = ReplayGuard { until_seq: input_head, ..ReplayGuard::default() };
        let replay_from = match checkpoint {
            Some(checkpoint) => {
                for (cache, (capacity, slots)) in
                    [(&mut self.keep, &checkpoint.keep), (&mut self.drop, &checkpoint.drop)]
                {
                    if cache.capacity() as u64 == *capacity {
                        cache.restore(slots.iter().map(|(index, entry)| (*index as usize, *entry)));
                    }
                }
                guard.read_seq = checkpoint.read_seq;
                self.read_seq = checkpoint.replay_seq;
                checkpoint.replay_seq
            }
            None => self.read_seq,
        };
        for span in
            emitted_after.resource_spans.iter().flat_map(|group| &group.scope_spans).flat_map(|scope| &scope.spans)
        {
            let trace_id = id16(&span.trace_id);
            let policy =
                span.attributes.iter().find(|attribute| attribute.key == POLICY_ATTRIBUTE).and_then(|attribute| {
                    match attribute.value.as_ref()?.value.as_ref()? {
                        any_value::Value::StringValue(name) => Some(name.as_str()),
                        _ => None,
                    }
                });
            let payload = match policy {
                Some(INCIDENT_POLICY) => INCIDENT_PAYLOAD,
                Some(STRESS_POLICY) => STRESS_PAYLOAD,
                Some(name) => {
                    self.policies.index_of(name).and_then(|index| u8::try_from(index).ok()).unwrap_or(UNKNOWN_PAYLOAD)
                }
                None => UNKNOWN_PAYLOAD,
            };
            self.keep.insert(&trace_id, payload);
            guard.emitted.insert((trace_id, id8(&span.span_id)));
        }
        if guard.until_seq > replay_from {
            self.replay = Some(guard);
        }
        replay_from
    }
}

/// Whether an encoded span field is a `sampling.*` attribute the sampler sets itself.
fn is_sampling_attribute(number: u32, value: WireValue<'_>) -> bool {
    let WireValue::Bytes(pair) = value else { return false };
    number == SPAN_ATTRIBUTES
        && fields(pair).flatten().any(|part| {
            part.number == 1
                && matches!(part.value, WireValue::Bytes(key)
                    if key == POLICY_ATTRIBUTE.as_bytes() || key == POLICY_VERSION_ATTRIBUTE.as_bytes())
        })
}

/// Bytes of `span` without its `sampling.*` attributes.
fn kept_span_len(span: &[u8]) -> usize {
    let dropped: usize = fields(span)
        .flatten()
        .filter(|field| is_sampling_attribute(field.number, field.value))
        .map(|field| field.span.1 - field.span.0)
        .sum();
    span.len() - dropped
}

/// Appends `span` without its `sampling.*` attributes (the bytes [`kept_span_len`] counts).
fn copy_kept_span(span: &[u8], out: &mut Vec<u8>) {
    let mut copied = 0;
    for field in fields(span).flatten() {
        if is_sampling_attribute(field.number, field.value) {
            out.extend_from_slice(&span[copied..field.span.0]);
            copied = field.span.1;
        }
    }
    out.extend_from_slice(&span[copied..]);
}

/// Bytes of a string field that is left out when empty.
fn optional_text_len(field: u32, text: &str) -> usize {
    if text.is_empty() { 0 } else { delimited_len(field, text.len()) }
}

/// The next length-delimited span of an arena run, advancing `bytes` past it.
fn split_delimited<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut length = 0u64;
    for (index, byte) in bytes.iter().take(10).enumerate() {
        length |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            let start = index + 1;
            let end = start.checked_add(usize::try_from(length).ok()?).filter(|end| *end <= bytes.len())?;
            let span = &bytes[start..end];
            *bytes = &bytes[end..];
            return Some(span);
        }
    }
    None
}

fn utf8(bytes: &[u8], offset: usize) -> Result<&str, WireError> {
    std::str::from_utf8(bytes).map_err(|_| WireError { offset, reason: "a string is not UTF-8" })
}

/// The arena's block size: a sixty-fourth of the budget, between 4 KiB and 1 MiB.
fn block_size(config: &TailSamplingConfig) -> usize {
    (config.max_buffered_bytes / 64).clamp(4 << 10, 1 << 20) as usize
}

/// A trace id as 16 bytes (shorter or longer ids are padded or cut; the validator refuses them anyway).
fn id16(bytes: &[u8]) -> [u8; 16] {
    let mut id = [0u8; 16];
    let len = bytes.len().min(16);
    id[..len].copy_from_slice(&bytes[..len]);
    id
}

fn id8(bytes: &[u8]) -> [u8; 8] {
    let mut id = [0u8; 8];
    let len = bytes.len().min(8);
    id[..len].copy_from_slice(&bytes[..len]);
    id
}
