//! The read side of the embedded store: everything that answers a question about stored telemetry, over
//! the store's one read interface, [`StoreView`] (sealed chunks plus what is not sealed yet, taken as one
//! consistent cut). The HTTP API and the CLI call it; neither decodes or filters records itself.
//!
//! - [`traces`]: a trace by id (spans deduplicated) and trace search by span filters;
//! - [`logs`]: log search, newest first, streaming and stopping at its limit;
//! - [`metrics`]: the series of a metric, raw and step-aligned;
//! - [`prometheus`]: stored metrics as the Prometheus series the remote-write exporter sends, by selector;
//! - [`promql`]: a PromQL engine (Prometheus 2.x semantics) over those series;
//! - [`rules`]: recording and alerting rules (Prometheus rule files) evaluated with it;
//! - [`traceql`]: TraceQL search and tag discovery for Tempo's API.
//!
//! Every read is tenant-scoped by its caller and runs on the calling (blocking) thread.
#![deny(missing_docs)]

pub mod logql;
pub mod logs;
pub mod metrics;
pub mod prometheus;
pub mod promql;
mod quoted;
pub mod rules;
pub mod traceql;
pub mod traces;

pub use stella_store::chunks::{ScanFilter, StoreError, StoreView};

/// The most one query may load, read or take, so that a query's memory and time stay bounded whatever the
/// store holds (`api.limits` in the config). A query past a limit is refused with a message that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Samples a PromQL query or a series request may load (Prometheus's `--query.max-samples`).
    pub max_samples: usize,
    /// Spans a trace search may hold at once, or tag discovery may read.
    pub max_spans: usize,
    /// Log lines a LogQL metric query may read.
    pub max_lines: usize,
    /// How long a PromQL or LogQL query may run; a request's own `timeout` may only shorten it
    /// (Prometheus's `--query.timeout`).
    pub timeout: std::time::Duration,
}

impl Limits {
    /// The defaults: Prometheus's 50,000,000 samples and two minutes; 2,000,000 spans; 5,000,000 lines.
    pub const DEFAULT: Limits = Limits {
        max_samples: 50_000_000,
        max_spans: 2_000_000,
        max_lines: 5_000_000,
        timeout: std::time::Duration::from_secs(120),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Visits the records of `tenant`'s `signal` overlapping `range` (unix nanos) that `filter` may match: the
/// unsealed records first (newest), then sealed chunks, newest day first. `visit` returns false to stop.
pub fn scan(
    view: &dyn StoreView,
    tenant: &str,
    signal: stella_otlp::Signal,
    range: (u64, u64),
    filter: ScanFilter<'_>,
    visit: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<(), StoreError> {
    view.cut(tenant, signal, range, filter)?.visit(view.store(), visit)
}
