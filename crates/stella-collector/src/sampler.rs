//! The tail sampler at run time: one task per traces pipeline with `tail_sampling` and tenant. It reads the
//! pipeline's ingest log, feeds the [`TailSampler`] engine, and appends kept traces to a second log
//! (`<pipeline>.sampled`) that the pipeline's exporters read.
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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use stella_metrics::{CounterVec, GaugeVec, Registry, names};
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_pipeline::incident::IncidentBoard;
use stella_pipeline::tail_sampling::{Checkpoint, Outcome, TailSampler, TailSamplingConfig};
use stella_store::log::{LogError, LogFs, Record};

use crate::consumer::{ConsumerControl, LogProgress, read_blocking};
use crate::logs::Log;

/// How often the sampler writes its checkpoint while it has work.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
/// How often a waiting sampler wakes to decide traces that became due.
const TICK: Duration = Duration::from_millis(100);
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

/// One sampler task.
pub struct SamplerTask {
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

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl SamplerTask {
    fn checkpoint_path(&self) -> PathBuf {
        self.input.dir().join(CHECKPOINT_FILE)
    }

    fn progress_key(&self) -> String {
        format!("tail_sampling|{}|{}", self.pipeline_id, self.tenant)
    }

    /// Runs until `control` says stop. Draining (shutdown) reads the input log to its head, decides every
    /// buffered trace at once and writes the checkpoint; aborting (reload) keeps the engine as it is.
    pub async fn run(self, control: ConsumerControl) {
        let slot = self.registry.slot(&self.pipeline_id, &self.tenant);
        let mut engine_slot = slot.lock().await;
        let engine = match engine_slot.take() {
            Some(mut engine) => match engine.reconfigure(self.config.clone()) {
                Ok(()) => engine,
                Err(error) => {
                    tracing::error!(pipeline = %self.pipeline_id, %error, "tail sampling: cannot apply the new policies; keeping the old ones");
                    engine
                }
            },
            None => match self.recover().await {
                Some(engine) => engine,
                None => return,
            },
        };
        let engine = engine_slot.insert(engine);
        let mut reader = Some(self.input.reader(engine.read_seq()));
        let mut head = self.input.subscribe();
        let mut incident_version = 0;
        let mut pending: Option<(Vec<u8>, Outcome)> = None;
        let mut checkpointed_at = Instant::now();
        let mut dirty = false;
        loop {
            if control.abort.is_cancelled() {
                break;
            }
            // Kept spans not yet in the output log go first: nothing more is read until they are.
            if let Some((bytes, outcome)) = pending.take() {
                match self.output.append(bytes.clone()).await {
                    Ok(_) => self.record(&outcome, engine),
                    Err(error) => {
                        if !matches!(error, LogError::Full { .. }) {
                            tracing::error!(pipeline = %self.pipeline_id, code = error.code(), %error, "tail sampling: cannot append kept traces; retrying");
                        }
                        pending = Some((bytes, outcome));
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                            _ = control.abort.cancelled() => break,
                        }
                        continue;
                    }
                }
            }
            let now = now_ms();
            let mut outcome = Outcome::default();
            let version = self.incidents.version();
            if version != incident_version {
                incident_version = version;
                let scope = self.incidents.scope(&self.tenant, jiff::Timestamp::now());
                engine.set_incident(scope, now, &mut outcome);
            }
            let Some(current) = reader.take() else { break };
            let (back, records) = read_blocking(current, READ_BYTES).await;
            reader = Some(back);
            let records = records.unwrap_or_else(|error| {
                tracing::error!(pipeline = %self.pipeline_id, %error, "tail sampling: cannot read the ingest log");
                Vec::new()
            });
            let got_records = !records.is_empty();
            for record in records {
                self.ingest(engine, record, now, &mut outcome);
            }
            engine.decide_due(now, &mut outcome);
            dirty |= got_records || !outcome.kept_traces.is_empty() || !outcome.dropped_spans.is_empty();
            if outcome.kept_spans > 0 {
                let bytes = std::mem::take(&mut outcome.kept).encode_to_vec();
                pending = Some((bytes, outcome));
                continue;
            }
            self.record(&outcome, engine);
            if dirty && checkpointed_at.elapsed() >= CHECKPOINT_INTERVAL {
                self.checkpoint(engine);
                checkpointed_at = Instant::now();
                dirty = false;
            }
            if got_records {
                continue;
            }
            if control.drain.is_cancelled() {
                let caught_up = reader.as_ref().is_none_or(|reader| reader.next_seq() >= self.input.head());
                if !caught_up {
                    continue;
                }
                // Stopping: decide what is still buffered now, so a stop leaves no trace pending.
                let mut last = Outcome::default();
                engine.decide_all(now_ms(), &mut last);
                if last.kept_spans > 0 {
                    let bytes = std::mem::take(&mut last.kept).encode_to_vec();
                    pending = Some((bytes, last));
                } else {
                    self.record(&last, engine);
                }
                break;
            }
            tokio::select! {
                _ = head.changed() => {}
                _ = tokio::time::sleep(TICK) => {}
                _ = control.drain.cancelled() => {}
                _ = control.abort.cancelled() => break,
            }
        }
        if let Some((bytes, outcome)) = pending.take() {
            // Stopping with kept spans not yet appended: one last try, else they are decided again after the
            // restart (the checkpoint below still points before their records).
            if self.output.append(bytes).await.is_ok() {
                self.record(&outcome, engine);
            } else {
                return;
            }
        }
        self.checkpoint(engine);
    }

    fn ingest(&self, engine: &mut TailSampler, record: Record, now: u64, outcome: &mut Outcome) {
        match ExportTraceServiceRequest::decode(record.payload.as_slice()) {
            Ok(request) => engine.ingest(record.seq, request, now, outcome),
            Err(error) => {
                tracing::error!(pipeline = %self.pipeline_id, seq = record.seq, %error, "tail sampling: skipping an undecodable record");
            }
        }
    }

    fn record(&self, outcome: &Outcome, engine: &TailSampler) {
        let metrics = &self.metrics;
        for (policy, traces) in &outcome.kept_traces {
            metrics.decisions.with(&[&self.pipeline_id, "kept", policy]).add(*traces);
        }
        for (reason, spans) in &outcome.dropped_spans {
            metrics.dropped.with(&[&self.pipeline_id, &self.stage_id, reason]).add(*spans);
        }
        if outcome.early_decisions > 0 {
            metrics.early.with(&[&self.pipeline_id]).add(outcome.early_decisions);
        }
        if let Some(stressed) = outcome.stress_changed {
            if stressed {
                tracing::warn!(pipeline = %self.pipeline_id, tenant = %self.tenant, buffered_bytes = engine.buffered_bytes(), "tail sampling: stress relief on: the buffer is at max_buffered_bytes and traces are decided by trace id until it drains to half");
            } else {
                tracing::info!(pipeline = %self.pipeline_id, tenant = %self.tenant, "tail sampling: stress relief off");
            }
        }
        let labels = [self.pipeline_id.as_str(), &self.tenant];
        metrics.stress.with(&labels).set(i64::from(engine.stressed()));
        metrics.buffered_bytes.with(&labels).set(i64::try_from(engine.buffered_bytes()).unwrap_or(i64::MAX));
        metrics.buffered_traces.with(&labels).set(i64::try_from(engine.buffered_traces()).unwrap_or(i64::MAX));
    }

    /// Writes the checkpoint, then lets both logs drop what it no longer needs.
    fn checkpoint(&self, engine: &TailSampler) {
        let mut checkpoint = engine.checkpoint();
        checkpoint.output_seq = self.output.head();
        let path = self.checkpoint_path();
        if let Err(error) = self.input.fs().write_atomic(&path, &checkpoint.encode()) {
            tracing::error!(pipeline = %self.pipeline_id, path = %path.display(), %error, "tail sampling: cannot write the checkpoint");
            return;
        }
        self.input.remove_before(checkpoint.replay_seq);
        let slowest = self.output_progress.update(&self.progress_key(), checkpoint.output_seq);
        self.output.remove_before(slowest);
    }

    /// A new engine from the checkpoint and the output log's tail; `None` if the config cannot compile.
    async fn recover(&self) -> Option<TailSampler> {
        let path = self.checkpoint_path();
        let checkpoint = match self.input.fs().read_file(&path) {
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
        let start = checkpoint.as_ref().map_or(self.input.first_seq(), |checkpoint| checkpoint.read_seq);
        let mut engine = match TailSampler::new(self.config.clone(), start) {
            Ok(engine) => engine,
            Err(error) => {
                tracing::error!(pipeline = %self.pipeline_id, %error, "tail sampling: invalid policies");
                return None;
            }
        };
        let output_from = checkpoint.as_ref().map_or(self.output.first_seq(), |checkpoint| checkpoint.output_seq);
        let emitted = self.read_output(output_from).await;
        let replay_from = engine.recover(checkpoint.as_ref(), &emitted, self.input.head());
        let emitted_spans: usize =
            emitted.resource_spans.iter().flat_map(|group| &group.scope_spans).map(|scope| scope.spans.len()).sum();
        tracing::info!(
            pipeline = %self.pipeline_id,
            tenant = %self.tenant,
            replay_from,
            input_head = self.input.head(),
            passed_on_since_checkpoint = emitted_spans,
            policy_version = engine.policy_version(),
            "tail sampling: started"
        );
        // Hold the output log's segments from the checkpoint's head on until the next checkpoint.
        self.output_progress.update(&self.progress_key(), output_from);
        Some(engine)
    }

    /// Every span in the output log from `from` to its head.
    async fn read_output(&self, from: u64) -> ExportTraceServiceRequest {
        let mut all = ExportTraceServiceRequest::default();
        let mut reader = self.output.reader(from);
        loop {
            let (back, records) = read_blocking(reader, READ_BYTES).await;
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
}
