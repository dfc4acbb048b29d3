//! Tail sampling: a consumer of the traces ingest log that keeps whole traces by policy.
//!
//! Spans are buffered by trace id (encoded, within a byte budget); a trace is decided `decision_wait`
//! after its first span, or `decision_wait_after_root_received` after its root span, or early when the
//! buffer reaches `max_buffered_bytes` (oldest first) or the trace reaches `max_trace_bytes`. If the
//! buffer cannot keep up, "stress relief" decides new traces statelessly by trace id until it has drained
//! to half its budget. Decided trace ids go to a keep cache and a drop cache (8 bytes each) so late spans
//! follow the first decision. Incident mode keeps every trace of the services it names.
//!
//! Decisions: any `drop` policy -> dropped; else the first policy that samples -> kept, with its name in
//! `sampling.policy` and the policy set's version in `sampling.policy_version`; else dropped as
//! `not_sampled`. Incident mode wins over all of them.
mod arena;
mod cache;
mod checkpoint;
mod config;
mod context;
mod engine;
mod policy;
mod table;

pub use cache::{DecisionCache, trace_hash};
pub use checkpoint::CheckpointError;
pub use config::{
    AndConfig, CompositeConfig, DecisionCacheConfig, DropConfig, LatencyConfig, NumericAttributeConfig, PolicyConfig,
    ProbabilisticConfig, RateAllocation, RateLimitingConfig, SpanCountConfig, StatusCodeConfig, StatusName,
    StringAttributeConfig, TailSamplingConfig,
};
pub use engine::{
    Checkpoint, INCIDENT_POLICY, IncidentScope, Outcome, POLICY_ATTRIBUTE, POLICY_VERSION_ATTRIBUTE, STRESS_POLICY,
    TailSampler,
};
pub use policy::{Decision, Policies, PolicyError, TraceSummary, percent_threshold, sampled_by_hash};

#[cfg(test)]
mod tests;
