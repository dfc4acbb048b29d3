//! `processors.tail_sampling`: the OpenTelemetry Collector's tail-sampling keys where they exist
//! (<https://github.com/open-telemetry/opentelemetry-collector-contrib/tree/main/processor/tailsamplingprocessor>),
//! a byte budget instead of `num_traces`, and `service_rates`.
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The tail sampler's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailSamplingConfig {
    /// How long after a trace's first span it is decided (default 10s).
    #[serde(default = "default_decision_wait", with = "crate::duration::text")]
    pub decision_wait: Duration,
    /// Decide earlier: this long after the root span arrived (default: off).
    #[serde(default, with = "crate::duration::optional_text", skip_serializing_if = "Option::is_none")]
    pub decision_wait_after_root_received: Option<Duration>,
    /// Bytes of buffered spans, all traces together (default 256 MiB). At the budget the oldest
    /// undecided traces are decided early.
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: u64,
    /// Bytes of one trace (default 4 MiB); a trace reaching it is decided at once.
    #[serde(default = "default_max_trace_bytes")]
    pub max_trace_bytes: u64,
    /// The stateless trace-id sampling rate used while under stress relief (default 10).
    #[serde(default = "default_stress_relief_percentage")]
    pub stress_relief_percentage: f64,
    /// How many decided trace ids are remembered so late spans follow the decision.
    #[serde(default)]
    pub decision_cache: DecisionCacheConfig,
    /// The policies: any `drop` -> dropped; else any sample -> kept; else not sampled.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
}

/// `decision_cache`: sizes of the keep and drop caches (entries; 8 bytes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionCacheConfig {
    /// Kept trace ids remembered (default 100 000).
    #[serde(default = "default_sampled_cache_size")]
    pub sampled_cache_size: usize,
    /// Dropped trace ids remembered (default 1 000 000).
    #[serde(default = "default_non_sampled_cache_size")]
    pub non_sampled_cache_size: usize,
}

impl Default for DecisionCacheConfig {
    fn default() -> Self {
        DecisionCacheConfig {
            sampled_cache_size: default_sampled_cache_size(),
            non_sampled_cache_size: default_non_sampled_cache_size(),
        }
    }
}

/// One policy: its name (recorded in `sampling.policy`) and what it checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// Samples every trace.
    AlwaysSample {
        /// The policy name.
        name: String,
    },
    /// Samples traces with a span whose status is one of `status_codes`.
    StatusCode {
        /// The policy name.
        name: String,
        /// The codes.
        status_code: StatusCodeConfig,
    },
    /// Samples traces lasting at least `threshold_ms` (first start to last end).
    Latency {
        /// The policy name.
        name: String,
        /// The thresholds.
        latency: LatencyConfig,
    },
    /// Samples a fixed share of traces, by a hash of the trace id (every instance decides alike).
    Probabilistic {
        /// The policy name.
        name: String,
        /// The share.
        probabilistic: ProbabilisticConfig,
    },
    /// Samples while the spans sampled this second stay under `spans_per_second`.
    RateLimiting {
        /// The policy name.
        name: String,
        /// The rate.
        rate_limiting: RateLimitingConfig,
    },
    /// Samples traces with a span (or resource) attribute `key` equal to (or matching) one of `values`.
    StringAttribute {
        /// The policy name.
        name: String,
        /// The attribute and values.
        string_attribute: StringAttributeConfig,
    },
    /// Samples traces with a span (or resource) attribute `key` within `[min_value, max_value]`.
    NumericAttribute {
        /// The policy name.
        name: String,
        /// The attribute and bounds.
        numeric_attribute: NumericAttributeConfig,
    },
    /// Samples traces with `min_spans..=max_spans` spans.
    SpanCount {
        /// The policy name.
        name: String,
        /// The bounds.
        span_count: SpanCountConfig,
    },
    /// Drops traces every sub-policy samples (drop wins over every sample).
    Drop {
        /// The policy name.
        name: String,
        /// The sub-policies.
        drop: DropConfig,
    },
    /// Samples traces every sub-policy samples.
    And {
        /// The policy name.
        name: String,
        /// The sub-policies.
        and: AndConfig,
    },
    /// Sub-policies in order, each within its share of `max_total_spans_per_second`.
    Composite {
        /// The policy name.
        name: String,
        /// The sub-policies and shares.
        composite: CompositeConfig,
    },
    /// Per-service sampling percentages (by the root span's service), as a hash of the trace id.
    ServiceRates {
        /// The policy name.
        name: String,
        /// Percent by `service.name`.
        service_rates: BTreeMap<String, f64>,
    },
}

impl PolicyConfig {
    /// The policy name.
    pub fn name(&self) -> &str {
        match self {
            PolicyConfig::AlwaysSample { name }
            | PolicyConfig::StatusCode { name, .. }
            | PolicyConfig::Latency { name, .. }
            | PolicyConfig::Probabilistic { name, .. }
            | PolicyConfig::RateLimiting { name, .. }
            | PolicyConfig::StringAttribute { name, .. }
            | PolicyConfig::NumericAttribute { name, .. }
            | PolicyConfig::SpanCount { name, .. }
            | PolicyConfig::Drop { name, .. }
            | PolicyConfig::And { name, .. }
            | PolicyConfig::Composite { name, .. }
            | PolicyConfig::ServiceRates { name, .. } => name,
        }
    }
}

/// `status_code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusCodeConfig {
    /// `ERROR`, `OK`, `UNSET`.
    pub status_codes: Vec<StatusName>,
}

/// A span status code by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StatusName {
    /// `UNSET`.
    Unset,
    /// `OK`.
    Ok,
    /// `ERROR`.
    Error,
}

/// `latency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    /// Lower bound, milliseconds.
    pub threshold_ms: u64,
    /// Upper bound, milliseconds (0 or absent: none).
    #[serde(default)]
    pub upper_threshold_ms: u64,
}

/// `probabilistic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticConfig {
    /// Percent of traces, 0 to 100.
    pub sampling_percentage: f64,
    /// Mixed into the hash; instances that must decide alike share it.
    #[serde(default)]
    pub hash_salt: String,
}

/// `rate_limiting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingConfig {
    /// Spans per second.
    pub spans_per_second: u64,
}

/// `string_attribute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringAttributeConfig {
    /// The attribute key.
    pub key: String,
    /// The values (regular expressions with `enabled_regex_matching`).
    pub values: Vec<String>,
    /// Treat `values` as regular expressions (whole-value match).
    #[serde(default)]
    pub enabled_regex_matching: bool,
    /// Sample traces where no span matches instead.
    #[serde(default)]
    pub invert_match: bool,
}

/// `numeric_attribute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericAttributeConfig {
    /// The attribute key.
    pub key: String,
    /// Lower bound (inclusive).
    #[serde(default)]
    pub min_value: Option<i64>,
    /// Upper bound (inclusive).
    #[serde(default)]
    pub max_value: Option<i64>,
    /// Sample traces where no span matches instead.
    #[serde(default)]
    pub invert_match: bool,
}

/// `span_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanCountConfig {
    /// Fewest spans.
    pub min_spans: u32,
    /// Most spans (0 or absent: no bound).
    #[serde(default)]
    pub max_spans: u32,
}

/// `drop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    /// All must sample for the trace to be dropped.
    pub drop_sub_policy: Vec<PolicyConfig>,
}

/// `and`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndConfig {
    /// All must sample.
    pub and_sub_policy: Vec<PolicyConfig>,
}

/// `composite`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositeConfig {
    /// The spans per second all sub-policies share.
    pub max_total_spans_per_second: u64,
    /// Sub-policy names in the order they are tried.
    pub policy_order: Vec<String>,
    /// The sub-policies.
    pub composite_sub_policy: Vec<PolicyConfig>,
    /// Percent of `max_total_spans_per_second` per sub-policy (absent: an equal share each).
    #[serde(default)]
    pub rate_allocation: Vec<RateAllocation>,
}

/// One `rate_allocation` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateAllocation {
    /// The sub-policy name.
    pub policy: String,
    /// Its percent.
    pub percent: f64,
}

fn default_decision_wait() -> Duration {
    Duration::from_secs(10)
}

fn default_max_buffered_bytes() -> u64 {
    256 * 1024 * 1024
}

fn default_max_trace_bytes() -> u64 {
    4 * 1024 * 1024
}

fn default_stress_relief_percentage() -> f64 {
    10.0
}

fn default_sampled_cache_size() -> usize {
    100_000
}

fn default_non_sampled_cache_size() -> usize {
    1_000_000
}
