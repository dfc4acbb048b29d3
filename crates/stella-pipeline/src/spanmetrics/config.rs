//! `processors.spanmetrics`: the OpenTelemetry span-metrics connector's keys where they apply
//! (<https://github.com/open-telemetry/opentelemetry-collector-contrib/tree/main/connector/spanmetricsconnector>).
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The span-metrics stage's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanMetricsConfig {
    /// Prefix of the metric names (`<namespace>.calls`, `<namespace>.duration`); default `traces.span.metrics`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Extra dimensions: span attributes (else resource attributes) added to every series.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    /// Histogram bucket bounds.
    #[serde(default)]
    pub histogram: HistogramConfig,
    /// Most series per tenant; spans beyond it are folded into one overflow series per service and counted.
    #[serde(default = "default_cardinality_limit")]
    pub aggregation_cardinality_limit: usize,
    /// How often the metrics are sent into the metrics pipeline (default 15s).
    #[serde(default = "default_flush_interval", with = "crate::duration::text")]
    pub metrics_flush_interval: Duration,
    /// The metrics pipelines that receive the derived metrics (default: `[metrics]`).
    #[serde(default = "default_pipelines")]
    pub metrics_pipelines: Vec<String>,
}

/// One extra dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// The attribute key.
    pub name: String,
    /// The value when the span has no such attribute (absent: the dimension is left out of that series).
    #[serde(default)]
    pub default: Option<String>,
}

/// `histogram`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramConfig {
    /// Explicit bucket bounds.
    #[serde(default)]
    pub explicit: ExplicitBuckets,
}

/// `histogram.explicit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplicitBuckets {
    /// Upper bounds, as durations (`2ms`, `1s`), ascending.
    #[serde(default = "default_buckets", with = "crate::duration::text_list")]
    pub buckets: Vec<Duration>,
}

impl Default for ExplicitBuckets {
    fn default() -> Self {
        ExplicitBuckets { buckets: default_buckets() }
    }
}

fn default_namespace() -> String {
    "traces.span.metrics".into()
}

fn default_cardinality_limit() -> usize {
    1000
}

fn default_flush_interval() -> Duration {
    Duration::from_secs(15)
}

fn default_pipelines() -> Vec<String> {
    vec!["metrics".into()]
}

/// The upstream connector's default bounds.
fn default_buckets() -> Vec<Duration> {
    [2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000]
        .into_iter()
        .map(Duration::from_millis)
        .collect()
}

impl SpanMetricsConfig {
    /// Problems as (key, what is wrong and how to fix it).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let buckets = &self.histogram.explicit.buckets;
        if buckets.windows(2).any(|pair| pair[0] >= pair[1]) {
            problems.push(("histogram.explicit.buckets".into(), "bounds must be strictly ascending".into()));
        }
        if self.metrics_flush_interval.is_zero() {
            problems.push(("metrics_flush_interval".into(), "must be more than 0, e.g. 15s".into()));
        }
        if self.aggregation_cardinality_limit == 0 {
            problems.push(("aggregation_cardinality_limit".into(), "must be at least 1".into()));
        }
        problems
    }
}
