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
/// Gauge `{exporter, tenant}`: ingest-log records an exporter's consumer has not delivered yet.
pub const EXPORT_BACKLOG_RECORDS: &str = "collector_exporter_backlog_records";
/// Gauge `{log, tenant}`: bytes an ingest log holds (receivers answer 503 at `storage.log.max_bytes`).
pub const INGEST_LOG_BYTES: &str = "telemetry_ingest_log_bytes";
/// Gauge: `storage.log.max_bytes`, the size at which each ingest log refuses new data.
pub const INGEST_LOG_MAX_BYTES: &str = "telemetry_ingest_log_max_bytes";
/// Records lost to damage in an ingest log (quarantined and skipped), by `log`, `tenant`.
pub const INGEST_LOG_DAMAGED_RECORDS: &str = "telemetry_ingest_log_damaged_records_total";
/// Records offered again to a consumer whose cursor was unreadable (at most that many duplicates), by
/// `log`, `tenant`, `consumer`.
pub const INGEST_LOG_REPLAYED_RECORDS: &str = "telemetry_ingest_log_replayed_records_total";
/// Gauge `{exporter, tenant}`: seconds since an exporter's consumer last delivered or was caught up
/// (grows while it waits on a failing backend, `Retry-After` included).
pub const EXPORT_SECONDS_SINCE_SUCCESS: &str = "collector_exporter_seconds_since_last_success";
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
/// Retention sweeps held back because the wall clock ran more than a day past the newest record, by
/// `tenant`, `signal`.
pub const RETENTION_PAUSED: &str = "telemetry_retention_paused_total";
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

/// DORA (seed §7) gauge over the trailing `dora.metrics_window`: successful production deployments per
/// day, by `tenant`, `environment`, `service`.
pub const DORA_DEPLOYMENT_FREQUENCY: &str = "dora_deployment_frequency_per_day";
/// DORA histogram (buckets 1, 4, 24, 168, 720, 4380): lead time for changes in hours, by `tenant`,
/// `environment`, `service`.
pub const DORA_LEAD_TIME: &str = "dora_lead_time_hours";
/// DORA gauge over the trailing `dora.metrics_window`: change failure rate in percent, by `tenant`,
/// `environment`, `service`.
pub const DORA_CHANGE_FAILURE_RATE: &str = "dora_change_failure_rate_percent";
/// DORA histogram (buckets 1, 4, 24, 168, 720, 4380): time to recovery in hours, by `tenant`,
/// `environment`, `service`.
pub const DORA_TIME_TO_RECOVERY: &str = "dora_time_to_recovery_hours";
/// Deployments recorded, by `tenant`, `environment`, `service`.
pub const DORA_DEPLOYMENTS: &str = "dora_deployments_total";
/// Deployments recorded as failed (outcome `failed` or `rolled_back`), by `tenant`, `environment`,
/// `service`.
pub const DORA_DEPLOYMENT_FAILURES: &str = "dora_deployment_failure_total";
/// DORA evaluations that found an SLO breached, by `tenant`, `metric` (`lead_time`,
/// `deployment_frequency`, `change_failure_rate`, `mttr`).
pub const DORA_SLO_BREACHES: &str = "dora_slo_breach_total";
/// Federation statements (consents, revocations, bundles) sent with the unsigned fallback.
pub const FEDERATION_UNSIGNED: &str = "telemetry_federation_unsigned_total";
/// Rule group evaluations, by `rule_group` (`<file>;<group>`, Prometheus's name and label).
pub const RULE_EVALUATIONS: &str = "prometheus_rule_evaluations_total";
/// Rule evaluations that failed, by `rule_group`.
pub const RULE_EVALUATION_FAILURES: &str = "prometheus_rule_evaluation_failures_total";
/// Group evaluations skipped because the previous one ran past the interval, by `rule_group`.
pub const RULE_GROUP_ITERATIONS_MISSED: &str = "prometheus_rule_group_iterations_missed_total";
/// How long the last evaluation of a group took, by `rule_group`.
pub const RULE_GROUP_LAST_DURATION: &str = "prometheus_rule_group_last_duration_seconds";
/// Alerts sent to an Alertmanager, by `alertmanager`.
pub const NOTIFICATIONS_SENT: &str = "prometheus_notifications_sent_total";
/// Alerts that could not be sent to an Alertmanager, by `alertmanager`.
pub const NOTIFICATIONS_ERRORS: &str = "prometheus_notifications_errors_total";

/// Every family above: what rules and dashboards may name (histograms also as `_bucket`, `_sum`,
/// `_count`).
pub const ALL: &[&str] = &[
    RECEIVER_ACCEPTED_ITEMS,
    RECEIVER_REFUSED_ITEMS,
    RECEIVER_REQUESTS,
    RECEIVER_REQUEST_SIZE,
    TENANT_QUOTA_REFUSED,
    RECEIVER_INFLIGHT_BYTES,
    PROCESSOR_DROPPED_ITEMS,
    EXPORT_SENT_ITEMS,
    EXPORT_FAILURES,
    EXPORT_BACKLOG_RECORDS,
    INGEST_LOG_BYTES,
    INGEST_LOG_MAX_BYTES,
    INGEST_LOG_DAMAGED_RECORDS,
    INGEST_LOG_REPLAYED_RECORDS,
    EXPORT_SECONDS_SINCE_SUCCESS,
    CONFIG_RELOADS,
    EGRESS_BLOCKED,
    BUILD_INFO,
    REDACTIONS,
    SAMPLING_DECISIONS,
    SAMPLING_EARLY_DECISIONS,
    SAMPLING_BUFFERED_BYTES,
    SAMPLING_BUFFERED_TRACES,
    SAMPLING_STRESS_RELIEF,
    INCIDENT_MODE,
    SPANMETRICS_OVERFLOW,
    STORE_BYTES,
    STORE_SEALED_CHUNKS,
    RETENTION_DELETED_CHUNKS,
    RETENTION_PAUSED,
    BUNDLE_GENERATION_SECONDS,
    BUNDLE_GENERATION_FAILURES,
    UPLOADED_CHUNKS,
    UPLOADED_BYTES,
    UPLOAD_FAILURES,
    EVICTED_CHUNKS,
    DORA_DEPLOYMENT_FREQUENCY,
    DORA_LEAD_TIME,
    DORA_CHANGE_FAILURE_RATE,
    DORA_TIME_TO_RECOVERY,
    DORA_DEPLOYMENTS,
    DORA_DEPLOYMENT_FAILURES,
    DORA_SLO_BREACHES,
    FEDERATION_UNSIGNED,
    RULE_EVALUATIONS,
    RULE_EVALUATION_FAILURES,
    RULE_GROUP_ITERATIONS_MISSED,
    RULE_GROUP_LAST_DURATION,
    NOTIFICATIONS_SENT,
    NOTIFICATIONS_ERRORS,
];
