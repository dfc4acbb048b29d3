//! The report: what [`crate::report`] computes, in the order and shape every output format shows.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::classify::Tier;
use crate::settings::SloTargets;

/// The definitions every report states.
pub const DEFINITIONS: &[&str] = &[
    "Window: half-open [from, to) in the report's IANA time zone, evaluated as_of an instant; events and state changes after as_of are not counted.",
    "Production: the environments in production_environments (or the one environment the report was asked for).",
    "Deployment frequency: successful production deployments finished in the window per calendar day of the window (partial local days count by their share; DST days are 23 or 25 hours); per week = per day x 7.",
    "Lead time: per commit, the finish of the first successful production deployment containing it minus the commit time; non-positive samples are dropped and counted. Median = middle sample (mean of the two middle samples for an even count); p90 = nearest rank (ceil(0.9 n)-th smallest).",
    "Change failure rate: 100 x failed / all production deployments finished in the window (any outcome); failed = outcome failed or rolled_back, or the next production deployment of the same service and environment is a rollback or hotfix, or an incident is linked to it. Rollbacks and hotfixes are deployments, not failures by themselves. Null without deployments.",
    "Incident link: the incident's deployment_id, or a deployment listing it in incident_ids; otherwise the latest production deployment of the same service and environment that finished within link_window before the incident started (ties: the smaller id); otherwise unlinked (kept in the severity table, out of change failure rate and recovery).",
    "Time to recovery: resolved - started of linked, resolved incidents started in the window; MTTR = mean (median also given). MTTA = mean of acknowledged - started over acknowledged incidents started in the window.",
    "Tiers (preset named in the report): per metric Elite, High, Medium or Low; overall = the worst tier among metrics with data; no data is 'insufficient data', never Low. Meeting an SLO means meeting its target as the Elite threshold is met at the boundary (frequency at least the target; lead time, failure rate and MTTR below it).",
];

/// Whether a metric meets its SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SloStatus {
    /// It does.
    #[serde(rename = "met")]
    Met,
    /// It does not.
    #[serde(rename = "breached")]
    Breached,
    /// No data.
    #[serde(rename = "insufficient data")]
    InsufficientData,
}

/// The window as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowSummary {
    /// RFC 3339, UTC.
    pub from: String,
    /// RFC 3339, UTC (excluded).
    pub to: String,
    /// The IANA time zone days are counted in.
    pub time_zone: String,
    /// RFC 3339, UTC.
    pub as_of: String,
    /// The window's length in calendar days.
    pub calendar_days: f64,
}

/// One metric's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSummary {
    /// The figure classified and held against the SLO (`null`: no data).
    pub value: Option<f64>,
    /// What `value` is (`per day`, `median hours`, `percent`, `mean hours`).
    pub unit: &'static str,
    /// Its tier.
    pub tier: Tier,
    /// The SLO target.
    pub slo_target: f64,
    /// Whether it meets the SLO.
    pub slo: SloStatus,
    /// Further figures (`per_week`, `p90_hours`, `median_hours`, `samples`, ...).
    pub details: BTreeMap<&'static str, Option<f64>>,
}

/// The four metrics and MTTA.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Successful production deployments per day.
    pub deployment_frequency: MetricSummary,
    /// Lead time for changes (median hours).
    pub lead_time: MetricSummary,
    /// Change failure rate (percent).
    pub change_failure_rate: MetricSummary,
    /// Mean time to recovery (hours).
    pub mttr: MetricSummary,
    /// Mean time to acknowledge (hours), not classified.
    pub mtta_hours: Option<f64>,
}

/// Counts behind the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Production deployments finished in the window.
    pub deployments: u64,
    /// Of which succeeded.
    pub successful: u64,
    /// Of which failed (by the change failure definition).
    pub failed: u64,
    /// Lead-time samples used.
    pub lead_time_samples: u64,
    /// Non-positive lead-time samples dropped.
    pub lead_time_dropped: u64,
    /// Incidents started in the window.
    pub incidents: u64,
    /// Of which linked to a production deployment.
    pub linked_incidents: u64,
    /// Of which unlinked.
    pub unlinked_incidents: u64,
}

/// One normalised pipeline: its numerators and denominators add up to the totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineRow {
    /// The normalised pipeline name.
    pub pipeline: String,
    /// Production deployments finished in the window.
    pub deployments: u64,
    /// Of which failed.
    pub failed: u64,
    /// 100 x failed / deployments (`null` without deployments).
    pub change_failure_rate_percent: Option<f64>,
    /// Lead-time samples of its deployments.
    pub lead_time_samples: u64,
    /// Their median, hours.
    pub median_lead_time_hours: Option<f64>,
}

/// One severity, in the configured order (then `unknown`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeverityRow {
    /// The severity.
    pub severity: String,
    /// Incidents started in the window.
    pub incidents: u64,
    /// Of which acknowledged (as of).
    pub acknowledged: u64,
    /// Of which resolved (as of).
    pub resolved: u64,
    /// Mean time to acknowledge, hours.
    pub mtta_hours: Option<f64>,
    /// Mean time to recovery over linked, resolved incidents, hours.
    pub mttr_hours: Option<f64>,
}

/// One local day of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyCohort {
    /// The local date (`YYYY-MM-DD`).
    pub date: String,
    /// Production deployments finished that day.
    pub deployments: u64,
    /// Of which succeeded.
    pub successful: u64,
    /// Of which failed.
    pub failed: u64,
    /// 100 x failed / deployments (`null` without deployments).
    pub change_failure_rate_percent: Option<f64>,
    /// Median lead time of that day's deployments, hours.
    pub median_lead_time_hours: Option<f64>,
    /// Incidents started that day.
    pub incidents: u64,
    /// Mean time to recovery of that day's linked, resolved incidents, hours.
    pub mttr_hours: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Whose events.
    pub tenant: String,
    /// The environment asked for, if one (else the production environments).
    pub environment: Option<String>,
    /// The production environments counted.
    pub production_environments: Vec<String>,
    /// The window.
    pub window: WindowSummary,
    /// The classification preset's name.
    pub preset: String,
    /// The SLO targets.
    pub slo_targets: SloTargets,
    /// The incident link window, seconds.
    pub link_window_seconds: u64,
    /// The metrics.
    pub metrics: Metrics,
    /// The worst tier among metrics with data.
    pub overall_tier: Tier,
    /// Counts behind the metrics.
    pub counts: Counts,
    /// Per pipeline, by name.
    pub pipelines: Vec<PipelineRow>,
    /// Per severity, in the configured order.
    pub severities: Vec<SeverityRow>,
    /// Per local day.
    pub daily: Vec<DailyCohort>,
    /// The definitions above.
    pub definitions: &'static [&'static str],
}

impl Report {
    /// The metrics that breach their SLO, by the names `dora_slo_breach_total{metric}` uses.
    pub fn breaches(&self) -> Vec<&'static str> {
        let metrics = &self.metrics;
        [
            ("deployment_frequency", &metrics.deployment_frequency),
            ("lead_time", &metrics.lead_time),
            ("change_failure_rate", &metrics.change_failure_rate),
            ("mttr", &metrics.mttr),
        ]
        .into_iter()
        .filter(|(_, metric)| metric.slo == SloStatus::Breached)
        .map(|(name, _)| name)
        .collect()
    }
}
