use std::collections::HashMap;
use std::sync::Arc;

use stella_metrics::{CounterVec, HistogramVec, ITEM_BUCKETS, Registry, names};
use stella_otlp::Batch;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::BatchConfig;

/// The batch processor's meta-metrics.
#[derive(Clone)]
pub struct BatchMetrics {
    sizes: HistogramVec,
    flushes: CounterVec,
}

impl BatchMetrics {
    /// Registers (or finds) the batch processor's families in `registry`.
    pub fn new(registry: &Registry) -> Self {
        BatchMetrics {
            sizes: registry.histogram(
                names::BATCH_SIZE,
                "Items per batch sent by a batch processor.",
                &["pipeline"],
                ITEM_BUCKETS,
            ),
            flushes: registry.counter(
                names::BATCH_FLUSHES,
                "Batches sent by a batch processor, by what triggered them.",
                &["pipeline", "trigger"],
            ),
        }
    }
}

/// Starts the batch processor of pipeline `pipeline_id`: it reads `input` until every sender is gone,
/// sends batches to `output`, then flushes what it holds and ends.
pub fn spawn(
    config: BatchConfig,
    pipeline_id: String,
    metrics: BatchMetrics,
    input: mpsc::Receiver<Batch>,
    output: mpsc::Sender<Batch>,
) -> JoinHandle<()> {
    let processor = Processor { config, pipeline_id, metrics, output, pending: HashMap::new() };
    tokio::spawn(processor.run(input))
}

struct Pending {
    batch: Batch,
    deadline: Instant,
}

struct Processor {
    config: BatchConfig,
    pipeline_id: String,
    metrics: BatchMetrics,
    output: mpsc::Sender<Batch>,
    /// One pending batch per tenant: batches never mix tenants.
    pending: HashMap<Arc<str>, Pending>,
}

impl Processor {
    async fn run(mut self, mut input: mpsc::Receiver<Batch>) {
        loop {
            let next_deadline = self.pending.values().map(|pending| pending.deadline).min();
            tokio::select! {
                biased;
                _ = sleep_until(next_deadline.unwrap_or_else(Instant::now)), if next_deadline.is_some() => {
                    self.flush_expired().await;
                }
                received = input.recv() => match received {
                    Some(batch) => self.add(batch).await,
                    None => break,
                },
            }
        }
        let tenants: Vec<Arc<str>> = self.pending.keys().cloned().collect();
        for tenant in tenants {
            if let Some(pending) = self.pending.remove(&tenant) {
                self.send(pending.batch, "shutdown").await;
            }
        }
    }

    async fn add(&mut self, batch: Batch) {
        let tenant = Arc::clone(&batch.tenant);
        let merged = match self.pending.remove(&tenant) {
            Some(mut pending) => match pending.batch.absorb(batch) {
                Ok(()) => pending,
                Err(other) => {
                    // Same tenant and pipeline always share the signal; keep both rather than lose one.
                    self.send(pending.batch, "size").await;
                    Pending { batch: other, deadline: Instant::now() + self.config.timeout }
                }
            },
            None => Pending { batch, deadline: Instant::now() + self.config.timeout },
        };
        let mut pending = merged;
        let threshold = self.config.send_batch_size;
        while threshold > 0 && pending.batch.item_count() >= threshold {
            let max_items = self.config.max_items();
            let rest =
                if pending.batch.item_count() > max_items { Some(pending.batch.split_off(max_items)) } else { None };
            let deadline = pending.deadline;
            self.send(pending.batch, "size").await;
            match rest {
                Some(rest) if rest.item_count() > 0 => pending = Pending { batch: rest, deadline },
                Some(rest) => {
                    rest.settle(Ok(()));
                    return;
                }
                None => return,
            }
        }
        self.pending.insert(tenant, pending);
    }

    async fn flush_expired(&mut self) {
        let now = Instant::now();
        let expired: Vec<Arc<str>> = self
            .pending
            .iter()
            .filter(|(_, pending)| pending.deadline <= now)
            .map(|(tenant, _)| Arc::clone(tenant))
            .collect();
        for tenant in expired {
            if let Some(pending) = self.pending.remove(&tenant) {
                self.send_split(pending.batch, "timeout").await;
            }
        }
    }

    /// Sends a batch in pieces of at most `send_batch_max_size` items.
    async fn send_split(&mut self, mut batch: Batch, trigger: &'static str) {
        let max_items = self.config.max_items();
        while batch.item_count() > max_items {
            let rest = batch.split_off(max_items);
            self.send(batch, trigger).await;
            batch = rest;
        }
        self.send(batch, trigger).await;
    }

    async fn send(&self, batch: Batch, trigger: &'static str) {
        let items = batch.item_count();
        self.metrics.sizes.with(&[&self.pipeline_id]).observe(items as f64);
        self.metrics.flushes.with(&[&self.pipeline_id, trigger]).inc();
        // If the consumer is gone the batch is dropped unsettled: its clients hear "not delivered".
        let _ = self.output.send(batch).await;
    }
}
