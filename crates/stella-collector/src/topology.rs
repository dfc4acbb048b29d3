//! The running shape of a config. Receivers hand each request to every [`PipelineRuntime`] that takes its
//! signal; the pipeline runs its stateless stages and appends the result to its ingest log, and the client
//! is answered once the record is there (per `storage.sync`). Consumers, one per exporter, read the log
//! behind their own cursors. A reload builds a new [`Topology`] (reusing unchanged exporters and the same
//! logs), swaps it in, stops the old consumers and starts the new ones from the saved cursors.
//!
//! ```text
//!  receiver ─▶ stages (before `batch`) ─▶ ingest log (pipeline, tenant) ─▶ ack
//!                                            │
//!                                            ├─ consumer ─▶ stages after `batch` ─▶ exporter A
//!                                            └─ consumer ─▶ ...                  ─▶ exporter B
//! ```
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use stella_export::egress::EgressPolicy;
use stella_export::loadbalancing::{LoadBalancingConfig, Ring, RoutedExporter};
use stella_export::{ExportError, ExportMetrics, Exporter};
use stella_metrics::{CounterVec, Registry, names};
use stella_otlp::{AckError, Batch, OtlpRequest, Signal};
use stella_pipeline::Stage;
use stella_pipeline::incident::IncidentBoard;
use stella_pipeline::redaction::Redaction;
use stella_pipeline::resource_detection::{self, HostFacts, ResourceDetection};
use stella_pipeline::spanmetrics::SpanMetrics;
use stella_pipeline::tail_sampling::TailSamplingConfig;
use stella_store::chunks::HoldBook;

use crate::config::StoreSettings;
use tokio::task::JoinHandle;

use crate::config::{Config, ExporterConfig, ProcessorConfig};
use crate::consumers::{
    ConsumerBoard, ConsumerControl, ConsumerHealth, CursorFile, DriverSpec, ExportSink, LogProgress, SamplerMetrics,
    SamplerRegistry, SamplerSink, SamplerSpec, SealSink, StoreMetrics, drive,
};
use crate::logs::LogRegistry;
use crate::store::StoreRegistry;

/// How often an exporter's consumer saves its cursor while it works.
const EXPORT_CURSOR_INTERVAL: Duration = Duration::from_millis(200);
/// How often the store's sealing consumer saves its cursor while it works.
const STORE_CURSOR_INTERVAL: Duration = Duration::from_millis(500);
/// How often a tail sampler writes its checkpoint while it has work.
const CHECKPOINT_INTERVAL: Duration = crate::consumers::CHECKPOINT_INTERVAL;

/// Append failures repeat at request rate (a full disk): one line per interval, with the count held back.
static APPEND_FAILURES: crate::throttle::Throttle = crate::throttle::Throttle::new(crate::throttle::LOG_INTERVAL);

/// A consumer planned by [`Topology::start_consumers`], started once all are planned.
enum Planned {
    Seal(SealSink, DriverSpec),
    Export(ExportSink, DriverSpec),
    Sample(SamplerSpec),
}

/// What the process gives the collector: where its data lives, its metrics registry, host facts.
#[derive(Clone)]
pub struct Environment {
    /// The data directory: ingest logs under `log/`, relative export paths resolved here.
    pub data_dir: PathBuf,
    /// Where components register their meta-metrics.
    pub registry: Registry,
    /// Facts for resource detection (read once at start).
    pub host_facts: Arc<HostFacts>,
    /// `--insecure`: allow non-loopback listeners without TLS and without auth.
    pub allow_insecure: bool,
    /// Signs the manifest of every file a file exporter rotates (the server's evidence key).
    pub rotation_signer: Option<Arc<dyn stella_export::file::RotationSigner>>,
    /// The `events` exporter (DORA events and federation observations from log records), provided by the
    /// API that owns their tables.
    pub event_exporter: Option<Arc<dyn Exporter>>,
}

/// What building a topology needs besides the config.
#[derive(Clone)]
pub struct BuildContext {
    /// Where relative export paths are resolved.
    pub data_dir: PathBuf,
    /// Where components register their meta-metrics.
    pub registry: Registry,
    /// Facts for resource detection (read once at start).
    pub host_facts: Arc<HostFacts>,
    /// The ingest logs, shared by every topology of the process.
    pub logs: Arc<LogRegistry>,
    /// Tail-sampling engines, kept across reloads.
    pub samplers: Arc<SamplerRegistry>,
    /// Incident mode of every tenant.
    pub incidents: Arc<IncidentBoard>,
    /// The embedded store and the open chunks of its sealing tasks.
    pub stores: Arc<StoreRegistry>,
    /// Holds retention must respect.
    pub holds: Arc<HoldBook>,
    /// Signs rotated files of file exporters.
    pub rotation_signer: Option<Arc<dyn stella_export::file::RotationSigner>>,
    /// The `events` exporter, when the process has one.
    pub event_exporter: Option<Arc<dyn Exporter>>,
    /// Every running consumer's health, for `/readyz` and the gauges read at scrape time.
    pub consumers: Arc<ConsumerBoard>,
}

impl BuildContext {
    /// The context of a process: `environment` plus ingest logs under `<data-dir>/log` run as `storage` says,
    /// and the incident board samplers read.
    pub fn new(
        environment: Environment,
        storage: &crate::config::StorageConfig,
        incidents: Arc<IncidentBoard>,
        holds: Arc<HoldBook>,
    ) -> Self {
        let options = stella_store::log::LogOptions {
            segment_bytes: storage.segment_bytes,
            sync: storage.sync,
            max_bytes: storage.log_max_bytes,
        };
        let logs = Arc::new(LogRegistry::new(environment.data_dir.join("log"), options));
        let stores =
            Arc::new(StoreRegistry::new(&environment.data_dir, storage.backend.as_ref(), &environment.registry));
        BuildContext {
            data_dir: environment.data_dir,
            registry: environment.registry,
            host_facts: environment.host_facts,
            logs,
            samplers: Arc::new(SamplerRegistry::default()),
            incidents,
            stores,
            holds,
            rotation_signer: environment.rotation_signer,
            event_exporter: environment.event_exporter,
            consumers: Arc::default(),
        }
    }
}

/// Exporters in use, by id, with the config each was built from (to reuse unchanged ones on reload). A
/// `loadbalancing` exporter is there as one exporter per backend, `<id>/<backend>`.
type Exporters = BTreeMap<String, (ExporterConfig, Arc<dyn Exporter>)>;

/// An exporter and its id.
type NamedExporter = (String, Arc<dyn Exporter>);

/// The `loadbalancing` exporters in use, by id: their settings and the ids of their backends' exporters.
type Balancers = BTreeMap<String, (LoadBalancingConfig, Vec<String>)>;

/// Building a topology failed (an exporter could not open its file, a stage lost its key, ...).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An exporter could not start.
    #[error("cannot start exporter {id}: {source}")]
    Exporter {
        /// The exporter id.
        id: String,
        /// Why.
        #[source]
        source: ExportError,
    },
    /// A processor could not be built from its settings.
    #[error("cannot build processor {id}: {message}")]
    Processor {
        /// The processor id.
        id: String,
        /// Why, and how to fix it.
        message: String,
    },
}

/// How consumers are stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Deliver everything in the logs first (shutdown).
    Drain,
    /// Stop after the batch in flight (reload: the new consumers continue from the saved cursors).
    Abort,
}

/// The pipelines of one config, ready to take requests.
pub struct Topology {
    routes: HashMap<(String, Signal), Vec<Arc<PipelineRuntime>>>,
    pipelines: Vec<Arc<PipelineRuntime>>,
    exporters: Exporters,
    balancers: Balancers,
    egress: EgressPolicy,
    tenants: Vec<String>,
    control: ConsumerControl,
    consumers: Mutex<Vec<JoinHandle<()>>>,
    /// Tail samplers stop before the consumers, so a drain delivers what they decide last.
    sampler_control: ConsumerControl,
    samplers: Mutex<Vec<JoinHandle<()>>>,
    /// The `spanmetrics` processors, one per id whatever the pipelines sharing it.
    span_metrics: Vec<Arc<SpanMetrics>>,
}

/// One pipeline at run time: its stages before the log, and what its consumers need.
pub struct PipelineRuntime {
    id: String,
    signal: Signal,
    before_log: Vec<Arc<dyn Stage>>,
    after_batch: Vec<Arc<dyn Stage>>,
    batch: Option<stella_pipeline::batch::BatchConfig>,
    /// `tail_sampling` (its id and settings): exporters then read `<pipeline>.sampled`.
    sampling: Option<(String, TailSamplingConfig)>,
    /// `store` exporters (id and settings): sealing tasks, not exporters.
    stores: Vec<(String, StoreSettings)>,
    exporters: Vec<(Arc<dyn Exporter>, Option<u64>)>,
    logs: Arc<LogRegistry>,
    stage_drops: CounterVec,
}

impl Topology {
    /// The pipeline `id`, if this topology has it.
    pub fn pipeline(&self, id: &str) -> Option<Arc<PipelineRuntime>> {
        self.pipelines.iter().find(|pipeline| pipeline.id == id).cloned()
    }

    /// Builds the topology of `config`, reusing `previous`'s exporters whose config did not change.
    /// No consumer runs until [`Topology::start_consumers`].
    pub fn build(config: &Config, context: &BuildContext, previous: Option<&Topology>) -> Result<Topology, BuildError> {
        let (exporters, balancers) = build_exporters(config, context, previous)?;
        let stage_drops = context.registry.counter(
            names::PROCESSOR_DROPPED_ITEMS,
            "Items a processor removed on purpose, by reason.",
            &["pipeline", "stage", "reason"],
        );
        let start = unix_nanos();
        let span_metrics: BTreeMap<String, Arc<SpanMetrics>> = config
            .processors
            .iter()
            .filter_map(|(id, processor)| match processor {
                ProcessorConfig::SpanMetrics(settings) => {
                    let overflowed = context
                        .registry
                        .counter(
                            names::SPANMETRICS_OVERFLOW,
                            "Spans counted in an overflow series because their processor reached aggregation_cardinality_limit.",
                            &["processor"],
                        )
                        .with(&[id]);
                    Some((id.clone(), Arc::new(SpanMetrics::new(id.clone(), (**settings).clone(), start, overflowed))))
                }
                _ => None,
            })
            .collect();
        let mut routes: HashMap<(String, Signal), Vec<Arc<PipelineRuntime>>> = HashMap::new();
        let mut pipelines = Vec::new();
        for (pipeline_id, pipeline) in &config.pipelines {
            let batch_position = pipeline
                .processors
                .iter()
                .position(|id| matches!(config.processors.get(id), Some(ProcessorConfig::Batch(_))));
            let batch =
                batch_position.and_then(|position| match config.processors.get(&pipeline.processors[position]) {
                    Some(ProcessorConfig::Batch(batch)) => Some(batch.clone()),
                    _ => None,
                });
            let sampler_position = pipeline
                .processors
                .iter()
                .position(|id| matches!(config.processors.get(id), Some(ProcessorConfig::TailSampling(_))));
            let sampling = sampler_position.and_then(|position| {
                let id = &pipeline.processors[position];
                match config.processors.get(id) {
                    Some(ProcessorConfig::TailSampling(sampling)) => Some((id.clone(), (**sampling).clone())),
                    _ => None,
                }
            });
            let split = match (batch_position, sampler_position) {
                (Some(batch), Some(sampler)) => batch.min(sampler),
                (batch, sampler) => batch.or(sampler).unwrap_or(pipeline.processors.len()),
            };
            let stages = |ids: &[String]| -> Result<Vec<Arc<dyn Stage>>, BuildError> {
                let mut built = Vec::new();
                for id in ids {
                    if let Some(processor) = config.processors.get(id) {
                        built.extend(build_stage(id, processor, config, context, &span_metrics)?);
                    }
                }
                Ok(built)
            };
            let runtime = Arc::new(PipelineRuntime {
                id: pipeline_id.clone(),
                signal: pipeline.signal,
                before_log: stages(&pipeline.processors[..split])?,
                after_batch: stages(&pipeline.processors[split..])?,
                batch,
                sampling,
                stores: pipeline
                    .exporters
                    .iter()
                    .filter_map(|id| match config.exporters.get(id) {
                        Some(ExporterConfig::Store(settings)) => Some((id.clone(), *settings)),
                        _ => None,
                    })
                    .collect(),
                exporters: pipeline
                    .exporters
                    .iter()
                    .flat_map(|id| {
                        let backlog = config.max_backlog.get(id).copied();
                        let ids = balancers.get(id).map_or_else(|| vec![id.clone()], |(_, members)| members.clone());
                        let exporters = &exporters;
                        ids.into_iter().filter_map(move |id| {
                            exporters.get(&id).map(|(_, exporter)| (Arc::clone(exporter), backlog))
                        })
                    })
                    .collect(),
                logs: Arc::clone(&context.logs),
                stage_drops: stage_drops.clone(),
            });
            for receiver in &pipeline.receivers {
                routes.entry((receiver.clone(), pipeline.signal)).or_default().push(Arc::clone(&runtime));
            }
            pipelines.push(runtime);
        }
        Ok(Topology {
            routes,
            pipelines,
            exporters,
            balancers,
            egress: config.egress.clone(),
            tenants: config.tenants.iter().map(|tenant| tenant.id.clone()).collect(),
            control: ConsumerControl::default(),
            consumers: Mutex::new(Vec::new()),
            sampler_control: ConsumerControl::default(),
            samplers: Mutex::new(Vec::new()),
            span_metrics: span_metrics.into_values().collect(),
        })
    }

    /// Starts one consumer per pipeline, tenant (every declared one and any with a log on disk) and exporter,
    /// plus a sealing consumer per `store` exporter and a tail sampler per sampled pipeline. Every consumer
    /// of a log takes its place in the log's progress before any of them runs, so none lets the log drop
    /// records another still needs.
    pub fn start_consumers(&self, context: &BuildContext) -> Result<(), stella_store::log::LogError> {
        let declared = self.tenants.clone();
        let export_metrics = ExportMetrics::new(&context.registry);
        let replayed = context.registry.counter(
            names::INGEST_LOG_REPLAYED_RECORDS,
            "Records offered again to a consumer whose cursor was unreadable (at most that many duplicates), by log, tenant and consumer.",
            &["log", "tenant", "consumer"],
        );
        let mut planned: Vec<(Arc<ConsumerHealth>, Planned)> = Vec::new();
        for pipeline in &self.pipelines {
            let mut tenants = context.logs.tenants_on_disk(&pipeline.id);
            for tenant in &declared {
                if !tenants.contains(tenant) {
                    tenants.push(tenant.clone());
                }
            }
            for tenant in tenants {
                let input = context.logs.get(&pipeline.id, &tenant)?;
                let log_name = match pipeline.sampling {
                    Some(_) => format!("{}.sampled", pipeline.id),
                    None => pipeline.id.clone(),
                };
                let log = context.logs.get(&log_name, &tenant)?;
                let progress = Arc::new(LogProgress::default());
                let key = format!("{log_name}|{tenant}");
                let tenant_id: Arc<str> = Arc::from(tenant.as_str());
                let health = |component: String, exporter: Option<&str>, of: &Arc<crate::logs::Log>, name: &str| {
                    Arc::new(ConsumerHealth::new(
                        component,
                        name.to_string(),
                        tenant.clone(),
                        exporter.map(str::to_string),
                        Arc::clone(of),
                    ))
                };
                for (id, settings) in &pipeline.stores {
                    let cursor = CursorFile::new(&log, id, Arc::clone(&progress), format!("{key}|{id}"));
                    let start = cursor.start(&log, None, &replayed, &[&log_name, &tenant, id]);
                    let sink = SealSink::new(
                        (Arc::clone(&tenant_id), pipeline.signal),
                        &log,
                        start,
                        (*settings, Arc::clone(&context.holds)),
                        Arc::clone(&context.stores),
                        StoreMetrics::new(&context.registry),
                    );
                    let spec = DriverSpec {
                        log: Arc::clone(&log),
                        start,
                        cursor: Some(cursor),
                        health: health(format!("exporters.{id}"), Some(id), &log, &log_name),
                        persist_every: STORE_CURSOR_INTERVAL,
                    };
                    planned.push((Arc::clone(&spec.health), Planned::Seal(sink, spec)));
                }
                if let Some((stage_id, sampling)) = &pipeline.sampling {
                    // Hold the output log until the sampler has read back what it passed on.
                    progress.update(&format!("tail_sampling|{}|{tenant}", pipeline.id), log.first_seq());
                    let spec = SamplerSpec {
                        pipeline_id: pipeline.id.clone(),
                        stage_id: stage_id.clone(),
                        tenant: Arc::clone(&tenant_id),
                        config: sampling.clone(),
                        input: Arc::clone(&input),
                        output: Arc::clone(&log),
                        output_progress: Arc::clone(&progress),
                        registry: Arc::clone(&context.samplers),
                        incidents: Arc::clone(&context.incidents),
                        metrics: SamplerMetrics::new(&context.registry),
                    };
                    let health = health(format!("processors.{stage_id}"), None, &input, &pipeline.id);
                    planned.push((health, Planned::Sample(spec)));
                }
                for (exporter, max_backlog) in &pipeline.exporters {
                    let id = exporter.id().to_string();
                    let cursor = CursorFile::new(&log, &id, Arc::clone(&progress), format!("{key}|{id}"));
                    let known = exporter.resume_point(pipeline.signal, &key);
                    let start = cursor.start(&log, known, &replayed, &[&log_name, &tenant, &id]);
                    let sink = ExportSink::new(
                        pipeline.id.clone(),
                        log_name.clone(),
                        pipeline.signal,
                        Arc::clone(&tenant_id),
                        Arc::clone(exporter),
                        Arc::clone(&log),
                        (pipeline.batch.clone(), pipeline.after_batch.clone()),
                        *max_backlog,
                        (export_metrics.clone(), pipeline.stage_drops.clone()),
                        start,
                    );
                    let spec = DriverSpec {
                        log: Arc::clone(&log),
                        start,
                        cursor: Some(cursor),
                        health: health(format!("exporters.{id}"), Some(&id), &log, &log_name),
                        persist_every: EXPORT_CURSOR_INTERVAL,
                    };
                    planned.push((Arc::clone(&spec.health), Planned::Export(sink, spec)));
                }
            }
        }
        let components: Vec<String> = planned.iter().map(|(health, _)| health.component.clone()).collect();
        context.consumers.retain(&components);
        let mut handles = Vec::new();
        let mut samplers = Vec::new();
        for (health, consumer) in planned {
            context.consumers.register(Arc::clone(&health));
            match consumer {
                Planned::Seal(sink, spec) => handles.push(tokio::spawn(drive(sink, spec, self.control.clone()))),
                Planned::Export(sink, spec) => handles.push(tokio::spawn(drive(sink, spec, self.control.clone()))),
                Planned::Sample(spec) => {
                    let control = self.sampler_control.clone();
                    samplers.push(tokio::spawn(async move {
                        let log = Arc::clone(&spec.input);
                        let Some(sink) = SamplerSink::start(spec).await else { return };
                        let start = sink.read_seq();
                        let spec = DriverSpec { log, start, cursor: None, health, persist_every: CHECKPOINT_INTERVAL };
                        drive(sink, spec, control).await;
                    }));
                }
            }
        }
        for stage in &self.span_metrics {
            let targets: Vec<Arc<PipelineRuntime>> = self
                .pipelines
                .iter()
                .filter(|pipeline| stage.config().metrics_pipelines.contains(&pipeline.id))
                .cloned()
                .collect();
            samplers.push(tokio::spawn(flush_span_metrics(Arc::clone(stage), targets, self.sampler_control.clone())));
        }
        self.consumers.lock().unwrap_or_else(|poison| poison.into_inner()).extend(handles);
        self.samplers.lock().unwrap_or_else(|poison| poison.into_inner()).extend(samplers);
        Ok(())
    }

    /// Stops the consumers (waiting at most `patience`), then flushes the exporters `successor` does not keep.
    pub async fn stop_consumers(&self, mode: StopMode, successor: Option<&Topology>, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        for (control, tasks, what) in
            [(&self.sampler_control, &self.samplers, "tail samplers"), (&self.control, &self.consumers, "consumers")]
        {
            match mode {
                StopMode::Drain => control.drain.cancel(),
                StopMode::Abort => control.abort.cancel(),
            }
            let handles = std::mem::take(&mut *tasks.lock().unwrap_or_else(|poison| poison.into_inner()));
            let all_done = async {
                for handle in handles {
                    if let Err(error) = handle.await {
                        tracing::error!(%error, "a {what} task ended abnormally");
                    }
                }
            };
            if tokio::time::timeout_at(deadline, all_done).await.is_err() {
                tracing::warn!(?patience, "{what} did not stop in time; their data stays in the ingest log");
                control.abort.cancel();
            }
        }
        for (id, (_, exporter)) in &self.exporters {
            let kept = successor
                .is_some_and(|next| next.exporters.get(id).is_some_and(|(_, other)| Arc::ptr_eq(other, exporter)));
            if kept {
                continue;
            }
            if let Err(error) = exporter.flush().await {
                tracing::error!(exporter = %id, %error, "flushing an exporter failed");
            }
        }
    }

    /// Whether `tenant` is declared (`default` always is).
    pub fn declares(&self, tenant: &str) -> bool {
        tenant == "default" || self.tenants.iter().any(|declared| declared == tenant)
    }

    /// The pipelines that take `signal` from `receiver`.
    pub fn pipelines_for(&self, receiver: &str, signal: Signal) -> &[Arc<PipelineRuntime>] {
        self.routes.get(&(receiver.to_string(), signal)).map_or(&[], Vec::as_slice)
    }

    /// The backends of `loadbalancing` exporters resolved through DNS: (exporter id, settings, the
    /// backends this topology routes to).
    pub fn dns_balancers(&self) -> impl Iterator<Item = (&str, &LoadBalancingConfig, Vec<String>)> {
        self.balancers.iter().filter(|(_, (balancing, _))| balancing.resolver.dns.is_some()).map(
            |(id, (balancing, members))| {
                let backends = members.iter().map(|member| member[id.len() + 1..].to_string()).collect();
                (id.as_str(), balancing, backends)
            },
        )
    }

    /// Every exporter in use, by id.
    pub fn exporters(&self) -> impl Iterator<Item = (&str, &Arc<dyn Exporter>)> {
        self.exporters.iter().map(|(id, (_, exporter))| (id.as_str(), exporter))
    }
}

fn build_exporters(
    config: &Config,
    context: &BuildContext,
    previous: Option<&Topology>,
) -> Result<(Exporters, Balancers), BuildError> {
    let used: std::collections::BTreeSet<&String> =
        config.pipelines.values().flat_map(|pipeline| &pipeline.exporters).collect();
    let mut built = BTreeMap::new();
    let mut balancers = BTreeMap::new();
    for id in used {
        let Some(exporter_config) = config.exporters.get(id) else { continue };
        if let ExporterConfig::LoadBalancing(balancing) = exporter_config {
            // Rebuilt on every reload: the backends (DNS) may have changed under the same settings.
            let members = balanced_exporters(id, balancing, config, context)?;
            let ids = members.iter().map(|(member_id, _)| member_id.clone()).collect();
            for (member_id, exporter) in members {
                built.insert(member_id, (exporter_config.clone(), exporter));
            }
            balancers.insert(id.clone(), (balancing.clone(), ids));
            continue;
        }
        // An exporter is kept across a reload only if neither its settings nor the egress policy changed.
        let same_egress = previous.is_some_and(|previous| previous.egress == config.egress);
        let reusable = previous
            .and_then(|previous| previous.exporters.get(id))
            .filter(|(old, _)| old == exporter_config && same_egress);
        let exporter: Arc<dyn Exporter> = match reusable {
            Some((_, existing)) => Arc::clone(existing),
            None => match exporter_config.build(id, &config.egress, context) {
                Ok(Some(exporter)) => exporter,
                // The store is not an exporter: a sealing consumer reads the log record by record.
                Ok(None) => continue,
                Err(source) => return Err(BuildError::Exporter { id: id.clone(), source }),
            },
        };
        built.insert(id.clone(), (exporter_config.clone(), exporter));
    }
    Ok((built, balancers))
}

/// One [`RoutedExporter`] per backend of `loadbalancing` exporter `id`, each an `otlp` exporter to its
/// backend (egress-checked like any other), by exporter id `<id>/<backend>`.
fn balanced_exporters(
    id: &str,
    balancing: &LoadBalancingConfig,
    config: &Config,
    context: &BuildContext,
) -> Result<Vec<NamedExporter>, BuildError> {
    let fail = |message: String| BuildError::Exporter {
        id: id.to_string(),
        source: ExportError::Rejected { reason: "resolver".into(), endpoint: id.to_string(), message },
    };
    let members = balancing.members().map_err(fail)?;
    let ring = Arc::new(Ring::new(members.clone()));
    tracing::info!(exporter = %id, backends = ?ring.members(), "load balancing ring");
    let mut built = Vec::new();
    for member in ring.members() {
        let member_id = format!("{id}/{member}");
        let otlp = balancing.backend(member).map_err(fail)?;
        let inner = match ExporterConfig::OtlpGrpc(otlp).build(&member_id, &config.egress, context) {
            Ok(Some(exporter)) => exporter,
            Ok(None) => continue,
            Err(source) => return Err(BuildError::Exporter { id: member_id, source }),
        };
        let routed =
            RoutedExporter::new(member_id.clone(), member.clone(), Arc::clone(&ring), balancing.routing_key, inner);
        built.push((member_id, Arc::new(routed) as Arc<dyn Exporter>));
    }
    Ok(built)
}

fn build_stage(
    id: &str,
    processor: &ProcessorConfig,
    config: &Config,
    context: &BuildContext,
    span_metrics: &BTreeMap<String, Arc<SpanMetrics>>,
) -> Result<Option<Arc<dyn Stage>>, BuildError> {
    Ok(match processor {
        ProcessorConfig::Batch(_) | ProcessorConfig::TailSampling(_) => None,
        ProcessorConfig::SpanMetrics(_) => span_metrics.get(id).map(|stage| Arc::clone(stage) as Arc<dyn Stage>),
        ProcessorConfig::ResourceDetection(detection) => {
            let attributes =
                resource_detection::detect(&detection.detectors, &context.host_facts, config.environment.as_deref());
            Some(Arc::new(ResourceDetection::new(id.to_string(), attributes, detection.override_existing)))
        }
        ProcessorConfig::Redaction(settings) => {
            let key = settings.hash_key.as_ref().map(|key| key.expose().as_bytes());
            let redactions = context.registry.counter(
                names::REDACTIONS,
                "Values removed or masked by the redaction stage, by signal, field and rule.",
                &["signal", "field", "rule"],
            );
            let stage = Redaction::new(id.to_string(), &settings.profile, &settings.policy, key, redactions)
                .map_err(|error| BuildError::Processor { id: id.to_string(), message: error.to_string() })?;
            tracing::info!(processor = %id, profile = %stage.profile(), "redaction policy in force");
            Some(Arc::new(stage))
        }
    })
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |now| now.as_nanos() as u64)
}

/// Sends a span-metrics processor's cumulative metrics into its metrics pipelines every flush interval,
/// and once more when stopping by drain.
async fn flush_span_metrics(stage: Arc<SpanMetrics>, targets: Vec<Arc<PipelineRuntime>>, control: ConsumerControl) {
    let interval = stage.config().metrics_flush_interval;
    loop {
        let last = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = control.drain.cancelled() => true,
            _ = control.abort.cancelled() => return,
        };
        for (tenant, request) in stage.snapshot(unix_nanos()) {
            for target in &targets {
                let (ack, _receiver) = stella_otlp::Ack::new();
                let batch = Batch::new(Arc::from(tenant.as_str()), OtlpRequest::Metrics(request.clone()), ack);
                target.submit(batch).await;
            }
        }
        if last {
            return;
        }
    }
}

impl PipelineRuntime {
    /// The pipeline id (`traces`, `logs/audit`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs the stages before the log and appends the result to the tenant's log; settles the batch's
    /// acknowledgements once the record is there per the sync policy (or with the reason it is not).
    pub async fn submit(&self, mut batch: Batch) {
        for stage in &self.before_log {
            for dropped in stage.process(&mut batch) {
                self.stage_drops.with(&[&self.id, stage.id(), dropped.reason]).add(dropped.count);
            }
        }
        if batch.item_count() == 0 {
            batch.settle(Ok(()));
            return;
        }
        let appended = match self.logs.get(&self.id, &batch.tenant) {
            Ok(log) => log.append(batch.request.encode_protobuf()).await,
            Err(error) => Err(error),
        };
        let outcome = appended.map(|_| ()).map_err(|error| {
            if !matches!(error, stella_store::log::LogError::Full { .. })
                && let Some(suppressed) = APPEND_FAILURES.allow()
            {
                tracing::error!(pipeline = %self.id, code = error.code(), errno = error.os_error_name(), %error, suppressed, "cannot append to the ingest log; clients are told to retry");
            }
            AckError::SinkFailed { sink: "ingest log".into(), source: stella_otlp::SinkError::new(error) }
        });
        batch.settle(outcome);
    }
}

/// The current topology, swapped atomically on reload.
#[derive(Clone)]
pub struct TopologyHandle(Arc<RwLock<Option<Arc<Topology>>>>);

impl TopologyHandle {
    /// A handle holding `topology`.
    pub fn new(topology: Topology) -> Self {
        TopologyHandle(Arc::new(RwLock::new(Some(Arc::new(topology)))))
    }

    /// The current topology; `None` once the collector is stopping.
    pub fn current(&self) -> Option<Arc<Topology>> {
        self.0.read().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    /// Puts `next` in place (or nothing, at shutdown) and returns the previous topology.
    pub fn replace(&self, next: Option<Topology>) -> Option<Arc<Topology>> {
        let mut slot = self.0.write().unwrap_or_else(|poison| poison.into_inner());
        std::mem::replace(&mut *slot, next.map(Arc::new))
    }
}
