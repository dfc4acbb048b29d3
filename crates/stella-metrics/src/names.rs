//! Every meta-metric name Stella exposes, in one place, spelled as the spec spells them.

/// Items (spans, data points, log records) a receiver accepted, by `receiver`, `signal`, `protocol`.
pub const RECEIVER_ACCEPTED_ITEMS: &str = "collector_receiver_accepted_items_total";
/// Items a receiver refused, by `receiver`, `signal`, `protocol`, `reason`.
pub const RECEIVER_REFUSED_ITEMS: &str = "collector_receiver_refused_items_total";
/// Requests answered, by `receiver`, `signal`, `protocol`, `status` (the HTTP status code).
pub const RECEIVER_REQUESTS: &str = "collector_receiver_requests_total";
/// Request body sizes on the wire, in bytes, by `signal`, `protocol`.
pub const RECEIVER_REQUEST_SIZE: &str = "collector_receiver_request_size_bytes";
/// Requests refused because their tenant was over its quota, by `tenant`, `kind` (`items`, `bytes`).
pub const TENANT_QUOTA_REFUSED: &str = "collector_tenant_quota_refused_total";
/// Bytes of request bodies currently held by receivers.
pub const RECEIVER_INFLIGHT_BYTES: &str = "collector_receiver_inflight_bytes";
/// Items a stage dropped on purpose, by `pipeline`, `stage`, `reason`.
pub const PROCESSOR_DROPPED_ITEMS: &str = "collector_processor_dropped_items_total";
/// Items an exporter has taken, by `exporter`, `signal`.
pub const EXPORT_SENT_ITEMS: &str = "collector_export_sent_items_total";
/// Export failures, by `exporter`, `reason` (seed §6).
pub const EXPORT_FAILURES: &str = "collector_export_failures_total";
/// Config reloads, by `result` (`applied`, `rejected`).
pub const CONFIG_RELOADS: &str = "collector_config_reloads_total";
/// Endpoints disabled by the egress policy (sealed mode), by `component` (seed §3).
pub const EGRESS_BLOCKED: &str = "telemetry_egress_blocked_total";
/// Always 1, with the `version` label.
pub const BUILD_INFO: &str = "stella_build_info";
/// Values removed or masked by the redaction stage, by `signal`, `field` (where), `rule` (which rule).
pub const REDACTIONS: &str = "telemetry_redactions_total";
/// Traces decided by tail sampling, by `pipeline`, `decision` (`kept`), `policy`.
pub const SAMPLING_DECISIONS: &str = "telemetry_sampling_decisions_total";
/// Traces decided before their `decision_wait` (byte budget or per-trace cap), by `pipeline`.
pub const SAMPLING_EARLY_DECISIONS: &str = "telemetry_sampling_early_decisions_total";
/// Bytes of spans buffered by tail sampling, by `pipeline`, `tenant`.
pub const SAMPLING_BUFFERED_BYTES: &str = "telemetry_sampling_buffered_bytes";
/// Undecided traces buffered by tail sampling, by `pipeline`, `tenant`.
pub const SAMPLING_BUFFERED_TRACES: &str = "telemetry_sampling_buffered_traces";
/// 1 while tail sampling is under stress relief (stateless trace-id sampling), by `pipeline`, `tenant`.
pub const SAMPLING_STRESS_RELIEF: &str = "telemetry_sampling_stress_relief";
/// Incident mode: `{state="on"}` 1 and `{state="off"}` 0 while any tenant's incident mode is on (seed §3).
pub const INCIDENT_MODE: &str = "telemetry_incident_mode";
/// Spans counted in a span-metrics overflow series (past `aggregation_cardinality_limit`), by `processor`.
pub const SPANMETRICS_OVERFLOW: &str = "telemetry_spanmetrics_overflow_spans_total";
/// Bytes of the embedded store on disk, by `tenant`, `signal`.
pub const STORE_BYTES: &str = "telemetry_store_bytes";
/// Chunks sealed by the embedded store, by `signal`.
pub const STORE_SEALED_CHUNKS: &str = "telemetry_store_sealed_chunks_total";
/// Chunks deleted by retention, by `tenant`, `signal`.
pub const RETENTION_DELETED_CHUNKS: &str = "telemetry_retention_deleted_chunks_total";
/// Seconds to generate a signed forensic bundle, by `kind` (`on_demand`, `scheduled`, `incident`) (seed §6).
pub const BUNDLE_GENERATION_SECONDS: &str = "telemetry_bundle_generation_seconds";
/// Forensic bundles that failed, by `kind`, `code`.
pub const BUNDLE_GENERATION_FAILURES: &str = "telemetry_bundle_generation_failures_total";
/// Chunks confirmed in object storage.
pub const UPLOADED_CHUNKS: &str = "telemetry_store_uploaded_chunks_total";
/// Their bytes.
pub const UPLOADED_BYTES: &str = "telemetry_store_uploaded_bytes_total";
/// Upload rounds that failed (each is retried; the chunks stay on local disk).
pub const UPLOAD_FAILURES: &str = "telemetry_store_upload_failures_total";
/// Local chunk files evicted after their upload was confirmed.
pub const EVICTED_CHUNKS: &str = "telemetry_store_evicted_chunks_total";
