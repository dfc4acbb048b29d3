//! The running shape of a config: one [`PipelineRuntime`] per pipeline, the batch and delivery tasks, and
//! the exporters they share. A reload builds a new [`Topology`] (reusing unchanged exporters) and swaps it
//! in; the old one drains on its own.
//!
//! ```text
//!  receiver ─▶ stages before batch (inline, in the request's task)
//!                 ├─ no batch processor ─▶ Delivery (inline) ─▶ exporters ─▶ settle acks
//!                 └─ batch task ─▶ delivery task: stages after batch ─▶ exporters ─▶ settle acks
//! ```
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use stella_export::file::FileExporter;
use stella_export::{DebugExporter, ExportError, ExportMetrics, Exporter, NopExporter};
use stella_metrics::{CounterVec, Registry, names};
use stella_otlp::{AckError, Batch, Signal};
use stella_pipeline::Stage;
use stella_pipeline::batch::{self, BatchMetrics};
use stella_pipeline::resource_detection::{self, HostFacts, ResourceDetection};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{Config, ExporterConfig, ProcessorConfig};

/// What building a topology needs besides the config.
#[derive(Clone)]
pub struct BuildContext {
    /// Where relative export paths are resolved.
    pub data_dir: PathBuf,
    /// Where components register their meta-metrics.
    pub registry: Registry,
    /// Facts for resource detection (read once at start).
    pub host_facts: Arc<HostFacts>,
}

/// Exporters in use, by id, with the config each was built from (to reuse unchanged ones on reload).
type Exporters = BTreeMap<String, (ExporterConfig, Arc<dyn Exporter>)>;

/// Building a topology failed (an exporter could not open its file, ...).
#[derive(Debug, thiserror::Error)]
#[error("cannot start exporter {id}: {source}")]
pub struct BuildError {
    id: String,
    #[source]
    source: ExportError,
}

/// The pipelines of one config, ready to take batches.
pub struct Topology {
    routes: HashMap<(String, Signal), Vec<Arc<PipelineRuntime>>>,
    exporters: Exporters,
    tasks: Vec<JoinHandle<()>>,
}

/// One pipeline at run time.
pub struct PipelineRuntime {
    id: String,
    before_batch: Vec<Arc<dyn Stage>>,
    entry: Entry,
    stage_drops: CounterVec,
}

enum Entry {
    Direct(Arc<Delivery>),
    Batched(mpsc::Sender<Batch>),
}

/// The end of a pipeline: stages after the batch processor, then every exporter, then the acks.
struct Delivery {
    pipeline_id: String,
    after_batch: Vec<Arc<dyn Stage>>,
    exporters: Vec<Arc<dyn Exporter>>,
    export_metrics: ExportMetrics,
    stage_drops: CounterVec,
}

/// Queue depth between a batch processor and its delivery task.
const DELIVERY_QUEUE: usize = 64;

impl Topology {
    /// Builds the topology of `config`, reusing `previous`'s exporters whose config did not change.
    pub fn build(config: &Config, context: &BuildContext, previous: Option<&Topology>) -> Result<Topology, BuildError> {
        let exporters = build_exporters(config, context, previous)?;
        let export_metrics = ExportMetrics::new(&context.registry);
        let batch_metrics = BatchMetrics::new(&context.registry);
        let stage_drops = context.registry.counter(
            names::PROCESSOR_DROPPED_ITEMS,
            "Items a processor removed on purpose, by reason.",
            &["pipeline", "stage", "reason"],
        );
        let mut routes: HashMap<(String, Signal), Vec<Arc<PipelineRuntime>>> = HashMap::new();
        let mut tasks = Vec::new();
        for (pipeline_id, pipeline) in &config.pipelines {
            let batch_position = pipeline
                .processors
                .iter()
                .position(|id| matches!(config.processors.get(id), Some(ProcessorConfig::Batch(_))));
            let stages: Vec<Arc<dyn Stage>> = pipeline
                .processors
                .iter()
                .filter_map(|id| build_stage(id, config.processors.get(id)?, config, context))
                .collect();
            let split = batch_position.unwrap_or(stages.len());
            let (before, after) = stages.split_at(split.min(stages.len()));
            let delivery = Arc::new(Delivery {
                pipeline_id: pipeline_id.clone(),
                after_batch: after.to_vec(),
                exporters: pipeline
                    .exporters
                    .iter()
                    .filter_map(|id| exporters.get(id))
                    .map(|(_, exporter)| Arc::clone(exporter))
                    .collect(),
                export_metrics: export_metrics.clone(),
                stage_drops: stage_drops.clone(),
            });
            let batch_config = batch_position
                .and_then(|position| config.processors.get(&pipeline.processors[position]))
                .and_then(|processor| match processor {
                    ProcessorConfig::Batch(batch) => Some(batch.clone()),
                    ProcessorConfig::ResourceDetection(_) => None,
                });
            let entry = match batch_config {
                None => Entry::Direct(delivery),
                Some(batch_config) => {
                    let (input, input_rx) = mpsc::channel(DELIVERY_QUEUE);
                    let (output, mut output_rx) = mpsc::channel::<Batch>(DELIVERY_QUEUE);
                    tasks.push(batch::spawn(
                        batch_config,
                        pipeline_id.clone(),
                        batch_metrics.clone(),
                        input_rx,
                        output,
                    ));
                    tasks.push(tokio::spawn(async move {
                        while let Some(batch) = output_rx.recv().await {
                            delivery.deliver(batch).await;
                        }
                    }));
                    Entry::Batched(input)
                }
            };
            let runtime = Arc::new(PipelineRuntime {
                id: pipeline_id.clone(),
                before_batch: before.to_vec(),
                entry,
                stage_drops: stage_drops.clone(),
            });
            for receiver in &pipeline.receivers {
                routes.entry((receiver.clone(), pipeline.signal)).or_default().push(Arc::clone(&runtime));
            }
        }
        Ok(Topology { routes, exporters, tasks })
    }

    /// The pipelines that take `signal` from `receiver`.
    pub fn pipelines_for(&self, receiver: &str, signal: Signal) -> &[Arc<PipelineRuntime>] {
        self.routes.get(&(receiver.to_string(), signal)).map_or(&[], Vec::as_slice)
    }

    /// Every exporter in use, by id.
    pub fn exporters(&self) -> impl Iterator<Item = (&str, &Arc<dyn Exporter>)> {
        self.exporters.iter().map(|(id, (_, exporter))| (id.as_str(), exporter))
    }

    /// Drains the topology: closes the batch processors' inputs, waits until every queued batch is
    /// delivered, then makes the exporters not kept by `successor` durable (`flush`).
    /// Call it once no receiver can submit to it any more.
    pub async fn drain(self, successor: Option<&Topology>) {
        let Topology { routes, exporters, tasks } = self;
        drop(routes);
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a pipeline task ended abnormally");
            }
        }
        for (id, (_, exporter)) in exporters {
            let kept = successor
                .is_some_and(|next| next.exporters.get(&id).is_some_and(|(_, other)| Arc::ptr_eq(other, &exporter)));
            if kept {
                continue;
            }
            if let Err(error) = exporter.flush().await {
                tracing::error!(exporter = %id, %error, "flushing an exporter failed");
            }
        }
    }
}

fn build_exporters(
    config: &Config,
    context: &BuildContext,
    previous: Option<&Topology>,
) -> Result<Exporters, BuildError> {
    let used: std::collections::BTreeSet<&String> =
        config.pipelines.values().flat_map(|pipeline| &pipeline.exporters).collect();
    let mut built = BTreeMap::new();
    for id in used {
        let Some(exporter_config) = config.exporters.get(id) else {
            continue;
        };
        let reusable =
            previous.and_then(|previous| previous.exporters.get(id)).filter(|(old, _)| old == exporter_config);
        let exporter: Arc<dyn Exporter> = match (reusable, exporter_config) {
            (Some((_, existing)), _) => Arc::clone(existing),
            (None, ExporterConfig::File(file)) => Arc::new(
                FileExporter::open(id.clone(), file.clone(), &context.data_dir)
                    .map_err(|source| BuildError { id: id.clone(), source })?,
            ),
            (None, ExporterConfig::Debug(debug)) => Arc::new(DebugExporter::new(id.clone(), debug)),
            (None, ExporterConfig::Nop) => Arc::new(NopExporter::new(id.clone())),
        };
        built.insert(id.clone(), (exporter_config.clone(), exporter));
    }
    Ok(built)
}

fn build_stage(
    id: &str,
    processor: &ProcessorConfig,
    config: &Config,
    context: &BuildContext,
) -> Option<Arc<dyn Stage>> {
    match processor {
        ProcessorConfig::Batch(_) => None,
        ProcessorConfig::ResourceDetection(detection) => {
            let attributes =
                resource_detection::detect(&detection.detectors, &context.host_facts, config.environment.as_deref());
            Some(Arc::new(ResourceDetection::new(id.to_string(), attributes, detection.override_existing)))
        }
    }
}

fn run_stages(stages: &[Arc<dyn Stage>], batch: &mut Batch, pipeline_id: &str, drops: &CounterVec) {
    for stage in stages {
        for dropped in stage.process(batch) {
            drops.with(&[pipeline_id, stage.id(), dropped.reason]).add(dropped.count);
        }
    }
}

impl PipelineRuntime {
    /// The pipeline id (`traces`, `logs/audit`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs the stages before the batch processor and hands the batch on. Returns once the batch is
    /// delivered (no batch processor) or queued (batch processor); the acks tell when it is delivered.
    pub async fn submit(&self, mut batch: Batch) {
        run_stages(&self.before_batch, &mut batch, &self.id, &self.stage_drops);
        match &self.entry {
            Entry::Direct(delivery) => delivery.deliver(batch).await,
            // A closed queue (pipeline stopping) drops the batch unsettled: its clients hear "retry".
            Entry::Batched(queue) => {
                let _ = queue.send(batch).await;
            }
        }
    }
}

impl Delivery {
    async fn deliver(&self, mut batch: Batch) {
        run_stages(&self.after_batch, &mut batch, &self.pipeline_id, &self.stage_drops);
        if batch.item_count() == 0 {
            batch.settle(Ok(()));
            return;
        }
        let mut first_failure = None;
        for exporter in &self.exporters {
            let result = exporter.export(&batch).await;
            self.export_metrics.record(exporter.id(), &batch, &result);
            if let Err(error) = result {
                tracing::warn!(pipeline = %self.pipeline_id, exporter = exporter.id(), code = error.code(), %error, "export failed; the client will be told to retry");
                first_failure.get_or_insert(AckError::SinkFailed {
                    sink: exporter.id().to_string(),
                    message: error.to_string(),
                });
            }
        }
        batch.settle(first_failure.map_or(Ok(()), Err));
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

/// Waits (up to `patience`) until `topology` has no other holder, then drains it.
pub async fn drain_when_released(
    mut topology: Arc<Topology>,
    successor: Option<Arc<Topology>>,
    patience: std::time::Duration,
) {
    let started = tokio::time::Instant::now();
    loop {
        match Arc::try_unwrap(topology) {
            Ok(owned) => {
                owned.drain(successor.as_deref()).await;
                return;
            }
            Err(shared) if started.elapsed() < patience => {
                topology = shared;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(_) => {
                tracing::error!("pipelines still in use after {patience:?}; their queued batches were not drained");
                return;
            }
        }
    }
}
