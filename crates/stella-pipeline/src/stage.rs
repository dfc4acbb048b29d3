use stella_otlp::Batch;

/// Items a stage removed from a batch on purpose, and why (`reason` becomes a metric label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// How many items.
    pub count: u64,
    /// A short stable reason, e.g. `sampled_out`.
    pub reason: &'static str,
}

/// A stateless pipeline stage. The pipeline calls [`Stage::process`] once per batch, in the order of the
/// pipeline's `processors` list; the stage mutates the batch in place. Items it removes are not lost but
/// decided: the stage returns them as [`Dropped`] so they are counted by reason, and the batch's
/// acknowledgements still complete.
pub trait Stage: Send + Sync {
    /// The component id from the config (`resourcedetection`, `resourcedetection/k8s`, ...).
    fn id(&self) -> &str;

    /// Processes one batch in place; returns what it dropped (empty when nothing was dropped).
    fn process(&self, batch: &mut Batch) -> Vec<Dropped>;
}
