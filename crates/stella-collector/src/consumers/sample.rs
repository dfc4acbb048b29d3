//! The tail sampler at run time: one consumer per traces pipeline with `tail_sampling` and tenant, driven
//! like every other consumer. It reads the pipeline's ingest log, feeds the [`TailSampler`] engine, and
//! appends kept traces to a second log (`<pipeline>.sampled`) that the pipeline's exporters read.
//!
//! ```text
//!  ingest log <pipeline> ─▶ sampler task ─▶ ingest log <pipeline>.sampled ─▶ consumers ─▶ exporters
//!                              │
//!                              └─ <log dir>/tail_sampling.ckpt: where to replay from, decision caches,
//!                                 the output log's head at the checkpoint
//! ```
//! Restart: the checkpoint restores the decision caches; the output log after the checkpoint's head
//! says which spans were passed on since; the input log is replayed from the oldest record holding a
//! span of a then-undecided trace. Spans are passed on exactly once and decided traces stay decided.
//! The input log keeps its records until the checkpoint says they are no longer needed.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use stella_metrics::{CounterVec, GaugeVec, Registry, names};
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_pipeline::incident::IncidentBoard;
use stella_pipeline::tail_sampling::{Checkpoint, Outcome, TailSampler, TailSamplingConfig};
use stella_store::log::{LogError, LogFs, Record};
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use super::driver::{Sink, Step, read_blocking};
use super::progress::LogProgress;
use crate::logs::Log;

/// How often the sampler writes its checkpoint while it has work.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
/// How often a waiting sampler wakes to decide traces that became due.
const TICK: Duration = Duration::from_millis(100);
/// The wait before kept spans are appended again after the output log refused them.
const APPEND_RETRY: Duration = Duration::from_millis(200);
/// Bytes read from the input log per step.
const READ_BYTES: usize = 1024 * 1024;
/// The checkpoint's file name in the input log's directory.
pub const CHECKPOINT_FILE: &str = "tail_sampling.ckpt";

/// Where one sampler's engine lives; empty until its first task recovers it.
type EngineSlot = Arc<tokio::sync::Mutex<Option<TailSampler>>>;

/// The engines of every sampler, kept across reloads so buffered traces survive a policy change.
#[derive(Default)]
pub struct SamplerRegistry {
    engines: Mutex<HashMap<(String, String), EngineSlot>>,
}

impl SamplerRegistry {
    fn slot(&self, pipeline: &str, tenant: &str) -> EngineSlot {
        let mut engines = self.engines.lock().unwrap_or_else(|poison| poison.into_inner());
        Arc::clone(engines.entry((pipeline.to_string(), tenant.to_string())).or_default())
    }
}

/// The sampler's meta-metrics.
#[derive(Clone)]
pub struct SamplerMetrics {
    decisions: CounterVec,
    early: CounterVec,
    dropped: CounterVec,
    buffered_bytes: GaugeVec,
    buffered_traces: GaugeVec,
    stress: GaugeVec,
}

impl SamplerMetrics {
    /// Registers (or finds) the families in `registry`.
    pub fn new(registry: &Registry) -> Self {
        SamplerMetrics {
            decisions: registry.counter(
                names::SAMPLING_DECISIONS,
                "Traces kept by tail sampling, by pipeline and policy.",
                &["pipeline", "decision", "policy"],
            ),
            early: registry.counter(
                names::SAMPLING_EARLY_DECISIONS,
                "Traces decided before decision_wait (byte budget or per-trace cap), by pipeline.",
                &["pipeline"],
            ),
            dropped: registry.counter(
                names::PROCESSOR_DROPPED_ITEMS,
                "Items a processor removed on purpose, by reason.",
                &["pipeline", "stage", "reason"],
            ),
            buffered_bytes: registry.gauge(
                names::SAMPLING_BUFFERED_BYTES,
                "Bytes of spans buffered by tail sampling, by pipeline and tenant.",
                &["pipeline", "tenant"],
            ),
            buffered_traces: registry.gauge(
                names::SAMPLING_BUFFERED_TRACES,
                "Undecided traces buffered by tail sampling, by pipeline and tenant.",
                &["pipeline", "tenant"],
            ),
            stress: registry.gauge(
                names::SAMPLING_STRESS_RELIEF,
                "1 while tail sampling decides statelessly by trace id (stress relief), by pipeline and tenant.",
                &["pipeline", "tenant"],
            ),
        }
    }
}

/// What one sampler needs: the pipeline, its settings and logs, and where its engine lives.
pub struct SamplerSpec {
    /// The pipeline id.
    pub pipeline_id: String,
    /// The processor id (`tail_sampling`), the `stage` label of its drops.
    pub stage_id: String,
    /// The tenant.
    pub tenant: Arc<str>,
    /// The settings and policies.
    pub config: TailSamplingConfig,
    /// The pipeline's ingest log.
    pub input: Arc<Log>,
    /// The log of kept traces the exporters read.
    pub output: Arc<Log>,
    /// Positions of the output log's consumers: the sampler holds the output log's segments back to its
    /// checkpoint, so a restart can read what it passed on since.
    pub output_progress: Arc<LogProgress>,
    /// Where the engine lives across reloads.
    pub registry: Arc<SamplerRegistry>,
    /// Incident mode of every tenant.
    pub incidents: Arc<IncidentBoard>,
    /// Counters and gauges.
    pub metrics: SamplerMetrics,
}

/// The tail sampler as a sink of its input log: it feeds the [`TailSampler`] engine and appends kept
/// traces to the output log. It keeps its own position (the checkpoint) instead of a cursor file.
pub struct SamplerSink {
    spec: SamplerSpec,
    engine: OwnedMutexGuard<Option<TailSampler>>,
    /// Kept spans not yet in the output log: nothing more is read until they are.
    kept: Option<(Vec<u8>, Outcome)>,
    incident_version: u64,
    /// Bumped by every change a checkpoint should capture.
    changes: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl SamplerSink {
    /// The sink of `spec`: its engine as a reload left it, or recovered from the checkpoint and the output
    /// log's tail. `None` when the policies do not compile (logged).
    pub async fn start(spec: SamplerSpec) -> Option<SamplerSink> {
        let slot = spec.registry.slot(&spec.pipeline_id, &spec.tenant);
        let mut engine = slot.lock_owned().await;
        match engine.as_mut() {
            Some(engine) => {
                if let Err(error) = engine.reconfigure(spec.config.clone()) {
                    tracing::error!(pipeline = %spec.pipeline_id, %error, "tail sampling: cannot apply the new policies; keeping the old ones");
                }
            }
            None => *engine = Some(recover(&spec).await?),
        }
        Some(SamplerSink { spec, engine, kept: None, incident_version: 0, changes: 0 })
    }

    /// Where the input log is read from.
    pub fn read_seq(&self) -> u64 {
        self.engine.as_ref().map_or(0, TailSampler::read_seq)
    }

    fn engine(&mut self) -> Option<&mut TailSampler> {
        self.engine.as_mut()
    }

    /// Applies a change of incident mode, if any.
    fn follow_incidents(&mut self, now: u64, outcome: &mut Outcome) {
        let version = self.spec.incidents.version();
        if version == self.incident_version {
            return;
        }
        self.incident_version = version;
        let scope = self.spec.incidents.scope(&self.spec.tenant, jiff::Timestamp::now());
        if let Some(engine) = self.engine() {
            engine.set_incident(scope, now, outcome);
        }
    }

    /// Appends kept spans (if any) to the output log, then counts the outcome.
    async fn pass_on(&mut self) -> Step {
        let Some((bytes, outcome)) = self.kept.take() else { return Step::Done };
        match self.spec.output.append(bytes.clone()).await {
            Ok(_) => {
                self.record(&outcome);
                Step::Done
            }
            Err(error) => {
                if !matches!(error, LogError::Full { .. }) {
                    tracing::error!(pipeline = %self.spec.pipeline_id, code = error.code(), %error, "tail sampling: cannot append kept traces; retrying");
                }
                self.kept = Some((bytes, outcome));
                Step::RetryAt { at: Instant::now() + APPEND_RETRY, error: format!("{}: {error}", error.code()) }
            }
        }
    }

    /// Counts `outcome` (or holds its kept spans for [`SamplerSink::pass_on`]).
    async fn settle(&mut self, mut outcome: Outcome) -> Step {
        if !outcome.kept_traces.is_empty() || !outcome.dropped_spans.is_empty() {
            self.changes += 1;
        }
        if outcome.kept_spans > 0 {
            let bytes = std::mem::take(&mut outcome.kept);
            self.kept = Some((bytes, outcome));
            return self.pass_on().await;
        }
        self.record(&outcome);
        Step::Done
    }

    fn ingest(&mut self, record: Record, now: u64, outcome: &mut Outcome) {
        let pipeline = self.spec.pipeline_id.clone();
        let Some(engine) = self.engine() else { return };
        if let Err(error) = engine.ingest(record.seq, &record.payload, now, outcome) {
            tracing::error!(pipeline = %pipeline, seq = record.seq, %error, "tail sampling: skipping the rest of an undecodable record");
        }
    }

    fn record(&self, outcome: &Outcome) {
        let Some(engine) = self.engine.as_ref() else { return };
        let spec = &self.spec;
        let metrics = &spec.metrics;
        for (policy, traces) in &outcome.kept_traces {
            metrics.decisions.with(&[&spec.pipeline_id, "kept", policy]).add(*traces);
        }
        for (reason, spans) in &outcome.dropped_spans {
            metrics.dropped.with(&[&spec.pipeline_id, &spec.stage_id, reason]).add(*spans);
        }
        if outcome.early_decisions > 0 {
            metrics.early.with(&[&spec.pipeline_id]).add(outcome.early_decisions);
        }
        if let Some(stressed) = outcome.stress_changed {
            if stressed {
                tracing::warn!(pipeline = %spec.pipeline_id, tenant = %spec.tenant, buffered_bytes = engine.buffered_bytes(), "tail sampling: stress relief on: the buffer is at max_buffered_bytes and traces are decided by trace id until it drains to half");
            } else {
                tracing::info!(pipeline = %spec.pipeline_id, tenant = %spec.tenant, "tail sampling: stress relief off");
            }
        }
        let labels = [spec.pipeline_id.as_str(), &spec.tenant];
        metrics.stress.with(&labels).set(i64::from(engine.stressed()));
        metrics.buffered_bytes.with(&labels).set(i64::try_from(engine.buffered_bytes()).unwrap_or(i64::MAX));
        metrics.buffered_traces.with(&labels).set(i64::try_from(engine.buffered_traces()).unwrap_or(i64::MAX));
    }
}

impl Sink for SamplerSink {
    async fn pending(&mut self, _now: Instant, _draining: bool) -> Step {
        self.pass_on().await
    }

    async fn take(&mut self, records: Vec<Record>, _read_to: u64) -> Step {
        let now = now_ms();
        let mut outcome = Outcome::default();
        self.follow_incidents(now, &mut outcome);
        for record in records {
            self.ingest(record, now, &mut outcome);
        }
        if let Some(engine) = self.engine() {
            engine.decide_due(now, &mut outcome);
        }
        self.changes += 1;
        self.settle(outcome).await
    }

    async fn idle(&mut self, _now: Instant, _read_to: u64, draining: bool) -> (Step, Option<Instant>) {
        let now = now_ms();
        let mut outcome = Outcome::default();
        self.follow_incidents(now, &mut outcome);
        if let Some(engine) = self.engine() {
            if draining {
                // Stopping: decide what is still buffered now, so a stop leaves no trace pending.
                engine.decide_all(now, &mut outcome);
            } else {
                engine.decide_due(now, &mut outcome);
            }
        }
        (self.settle(outcome).await, Some(Instant::now() + TICK))
    }

    fn delivered(&self) -> u64 {
        self.read_seq()
    }

    /// The sampler keeps no cursor file: this changes whenever there is something new to checkpoint.
    fn resume_seq(&self) -> u64 {
        self.changes
    }

    /// Writes the checkpoint, then lets both logs drop what it no longer needs. Refused while kept spans
    /// wait for the output log: the checkpoint must not say they were passed on.
    async fn persist(&mut self) -> Result<(), String> {
        if self.kept.is_some() {
            return Err("kept spans are not in the output log yet".into());
        }
        let Some(engine) = self.engine.as_ref() else { return Ok(()) };
        let mut checkpoint = engine.checkpoint();
        checkpoint.output_seq = self.spec.output.head();
        let path = checkpoint_path(&self.spec);
        self.spec
            .input
            .fs()
            .write_atomic(&path, &checkpoint.encode())
            .map_err(|error| format!("cannot write the tail-sampling checkpoint {}: {error}", path.display()))?;
        self.spec.input.remove_before(checkpoint.replay_seq);
        let slowest = self.spec.output_progress.update(&progress_key(&self.spec), checkpoint.output_seq);
        self.spec.output.remove_before(slowest);
        Ok(())
    }
}

fn checkpoint_path(spec: &SamplerSpec) -> PathBuf {
    spec.input.dir().join(CHECKPOINT_FILE)
}

fn progress_key(spec: &SamplerSpec) -> String {
    format!("tail_sampling|{}|{}", spec.pipeline_id, spec.tenant)
}

/// A new engine from the checkpoint and the output log's tail; `None` if the config cannot compile.
async fn recover(spec: &SamplerSpec) -> Option<TailSampler> {
    let path = checkpoint_path(spec);
    let checkpoint = match spec.input.fs().read_file(&path) {
        Ok(Some(bytes)) => match Checkpoint::decode(&bytes) {
            Ok(checkpoint) => Some(checkpoint),
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "tail sampling: ignoring a damaged checkpoint; replaying the whole input log");
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "tail sampling: cannot read the checkpoint; replaying the whole input log");
            None
        }
    };
    let start = checkpoint.as_ref().map_or(spec.input.first_seq(), |checkpoint| checkpoint.read_seq);
    let mut engine = match TailSampler::new(spec.config.clone(), start) {
        Ok(engine) => engine,
        Err(error) => {
            tracing::error!(pipeline = %spec.pipeline_id, %error, "tail sampling: invalid policies");
            return None;
        }
    };
    let output_from = checkpoint.as_ref().map_or(spec.output.first_seq(), |checkpoint| checkpoint.output_seq);
    let emitted = read_output(&spec.output, output_from).await;
    let replay_from = engine.recover(checkpoint.as_ref(), &emitted, spec.input.head());
    let emitted_spans: usize =
        emitted.resource_spans.iter().flat_map(|group| &group.scope_spans).map(|scope| scope.spans.len()).sum();
    tracing::info!(
        pipeline = %spec.pipeline_id,
        tenant = %spec.tenant,
        replay_from,
        input_head = spec.input.head(),
        passed_on_since_checkpoint = emitted_spans,
        policy_version = engine.policy_version(),
        "tail sampling: started"
    );
    // Hold the output log's segments from the checkpoint's head on until the next checkpoint.
    spec.output_progress.update(&progress_key(spec), output_from);
    Some(engine)
}

/// Every span in `output` from `from` to its head.
async fn read_output(output: &Arc<Log>, from: u64) -> ExportTraceServiceRequest {
    let mut all = ExportTraceServiceRequest::default();
    let mut reader = output.reader(from);
    loop {
        let Some((back, records)) = read_blocking(reader, READ_BYTES).await else { break };
        reader = back;
        let records = match records {
            Ok(records) if !records.is_empty() => records,
            Ok(_) => break,
            Err(error) => {
                tracing::error!(%error, "tail sampling: cannot read the output log back; spans passed on just before the stop may be passed on again");
                break;
            }
        };
        for record in records {
            if let Ok(request) = ExportTraceServiceRequest::decode(record.payload.as_slice()) {
                all.resource_spans.extend(request.resource_spans);
            }
        }
    }
    all
}
