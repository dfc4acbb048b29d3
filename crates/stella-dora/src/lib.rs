//! DORA metrics for the engineering leaders who read them: deployment frequency, lead time for changes,
//! change failure rate and time to recovery, with SLO status, a performance tier per metric, and the
//! executive outcome report (per pipeline, per incident severity, per local day).
//!
//! Everything here is a pure function of the events, the settings and the report window: the same
//! inputs give the same report, byte for byte once canonicalised. Definitions, stated in every report
//! ([`DEFINITIONS`]):
//!
//! - The window is half-open `[from, to)` in an IANA time zone, evaluated `as_of` an instant: events
//!   and state changes after `as_of` are not known yet.
//! - Production is the environments in `production_environments`.
//! - Deployment frequency: successful production deployments finished in the window per calendar day
//!   of the window (partial local days count by their share; DST days are 23 or 25 hours long); no
//!   data without any production deployment in the window.
//! - Lead time: per commit, the finish of the first successful production deployment containing it
//!   minus the commit time; non-positive samples are dropped and counted. Median (the mean of the two
//!   middle samples for an even count) and p90 (nearest rank) over the samples of the window.
//! - Change failure rate: 100 x failed / all production deployments finished in the window, where a
//!   deployment failed if its outcome is `failed` or `rolled_back`, if the next production deployment
//!   of the same service and environment is a `rollback` or `hotfix`, or if an incident is linked to it.
//! - Incident links: the incident's `deployment_id` or a deployment listing it in `incident_ids`;
//!   otherwise the latest production deployment of the same service and environment finished within
//!   `link_window` before the incident started (ties: the smaller id); otherwise unlinked.
//! - Time to recovery: resolved - started of linked, resolved incidents; MTTR is their mean (median
//!   reported too). MTTA: mean of acknowledged - started over acknowledged incidents.
//!
//! [`service`] records and reads the events (behind the state database's repository trait) and keeps the
//! `dora_*` metrics; the HTTP API only adapts it.
#![deny(missing_docs)]

mod classify;
mod compute;
mod event;
pub mod log_event;
pub mod render;
mod report;
pub mod service;
mod settings;
mod stats;
mod window;

pub use classify::{Tier, Values, classify};
pub use compute::{ServiceGauge, hours, report, service_gauges};
pub use event::{
    Commit, Deployment, DeploymentKind, EventError, Incident, Names, Outcome, normalize_pipeline, parse_deployment,
    parse_incident,
};
pub use report::{
    Counts, DEFINITIONS, DailyCohort, MetricSummary, Metrics, PipelineRow, Report, SeverityRow, SloStatus,
    WindowSummary,
};
pub use settings::{DoraSettings, Preset, SloTargets};
pub use stats::{mean, median, p90};
pub use window::{LocalDay, Window, WindowError};

#[cfg(test)]
mod tests;
