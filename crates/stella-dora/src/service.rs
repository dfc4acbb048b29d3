//! DORA over stored events: batches of deployment and incident events recorded idempotently by id (one
//! transaction per batch, a result per item), the `dora_*` metrics they move, a tenant's events loaded
//! back, reports, and the periodic refresh of the trailing-window gauges with the retention of old
//! events. The events live in two replace-by-id tables of the state database ([`DEPLOYMENTS_TABLE`],
//! [`INCIDENTS_TABLE`]), behind [`RecordRepository`].
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stella_metrics::{CounterVec, FloatGaugeVec, HistogramVec, Registry, names};
use stella_store::tables::{RecordRepository, StateError};

use crate::{Deployment, DoraSettings, Incident, Names, Outcome, Report, Window};

/// The table of deployment events.
pub const DEPLOYMENTS_TABLE: &str = "dora.deployments";
/// The table of incident events.
pub const INCIDENTS_TABLE: &str = "dora.incidents";
/// Most events in one batch.
pub const MAX_EVENTS: usize = 10_000;
/// Buckets of the lead-time and recovery histograms, hours.
const HOUR_BUCKETS: &[f64] = &[1.0, 4.0, 24.0, 168.0, 720.0, 4380.0];

/// Why a batch or a read was not done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The request itself is wrong (not JSON, too many events, a bad window).
    #[error("{message}")]
    Invalid {
        /// The stable code.
        code: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An event names another tenant than the credential's.
    #[error(
        "event {index} names tenant {named:?}, but this credential's tenant is {tenant:?}; leave the tenant out or use that tenant's token"
    )]
    TenantMismatch {
        /// The event's place in the batch.
        index: usize,
        /// The tenant it names.
        named: String,
        /// The credential's tenant.
        tenant: String,
    },
    /// A stored event cannot be read back.
    #[error("stored {kind} {id:?} cannot be read ({source}); re-send the event to replace it")]
    Damaged {
        /// `deployment` or `incident`.
        kind: &'static str,
        /// Its id.
        id: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The state database failed.
    #[error(transparent)]
    Storage(#[from] StateError),
}

impl ServiceError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Invalid { code, .. } => code,
            ServiceError::TenantMismatch { .. } => "auth.tenant_mismatch",
            ServiceError::Damaged { .. } => "dora.damaged_record",
            ServiceError::Storage(_) => "dora.storage",
        }
    }
}

/// The answer to a batch: `{recorded, replaced, refused, results: [...]}`, and whether every event of it
/// was refused (then nothing was recorded).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchAnswer {
    /// True when the batch held events and every one was refused.
    pub all_refused: bool,
    /// The answer body.
    pub body: Value,
}

/// The `dora_*` families.
#[derive(Clone)]
pub struct DoraMetrics {
    deployments: CounterVec,
    failures: CounterVec,
    lead_time: HistogramVec,
    recovery: HistogramVec,
    breaches: CounterVec,
    frequency: FloatGaugeVec,
    failure_rate: FloatGaugeVec,
}

impl DoraMetrics {
    /// Registers (or finds) the families in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let labels: &'static [&'static str] = &["tenant", "environment", "service"];
        DoraMetrics {
            deployments: registry.counter(names::DORA_DEPLOYMENTS, "Deployments recorded.", labels),
            failures: registry.counter(
                names::DORA_DEPLOYMENT_FAILURES,
                "Deployments recorded as failed or rolled back.",
                labels,
            ),
            lead_time: registry.histogram(
                names::DORA_LEAD_TIME,
                "Lead time for changes of successful production deployments, hours.",
                labels,
                HOUR_BUCKETS,
            ),
            recovery: registry.histogram(
                names::DORA_TIME_TO_RECOVERY,
                "Time to recovery of resolved production incidents, hours.",
                labels,
                HOUR_BUCKETS,
            ),
            breaches: registry.counter(
                names::DORA_SLO_BREACHES,
                "DORA evaluations that found an SLO breached, by metric.",
                &["tenant", "metric"],
            ),
            frequency: registry.float_gauge(
                names::DORA_DEPLOYMENT_FREQUENCY,
                "Successful production deployments per day over dora.metrics_window.",
                labels,
            ),
            failure_rate: registry.float_gauge(
                names::DORA_CHANGE_FAILURE_RATE,
                "Change failure rate, percent, over dora.metrics_window.",
                labels,
            ),
        }
    }

    /// The counters and the lead-time histogram of a newly recorded deployment.
    fn count_deployment(&self, settings: &DoraSettings, tenant: &str, deployment: &Deployment) {
        let labels = [tenant, &*deployment.environment, &*deployment.service];
        self.deployments.with(&labels).inc();
        if matches!(deployment.outcome, Outcome::Failed | Outcome::RolledBack) {
            self.failures.with(&labels).inc();
        }
        if deployment.outcome == Outcome::Succeeded && settings.is_production(&deployment.environment) {
            let histogram = self.lead_time.with(&labels);
            for commit in &deployment.commits {
                let hours = crate::hours(commit.time, deployment.finished);
                if hours > 0.0 {
                    histogram.observe(hours);
                }
            }
        }
    }

    /// Counts the SLO breaches `report` found.
    fn count_breaches(&self, tenant: &str, report: &Report) {
        for metric in report.breaches() {
            self.breaches.with(&[tenant, metric]).inc();
        }
    }
}

/// The events of a request body: one JSON object or an array of at most [`MAX_EVENTS`], none naming
/// another tenant than `tenant`.
pub fn batch_of(body: &[u8], tenant: &str) -> Result<Vec<Value>, ServiceError> {
    let invalid = |code, message| ServiceError::Invalid { code, message };
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        invalid(
            "dora.invalid_json",
            format!("the body is not JSON ({error}); send one event object or an array of them"),
        )
    })?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        other => {
            return Err(invalid(
                "dora.invalid_json",
                format!("expected an event object or an array of them, found {other}"),
            ));
        }
    };
    if items.len() > MAX_EVENTS {
        return Err(invalid(
            "dora.too_many_events",
            format!("{} events in one request; send at most {MAX_EVENTS}", items.len()),
        ));
    }
    for (index, item) in items.iter().enumerate() {
        if let Some(named) = item.get("tenant").and_then(Value::as_str).filter(|named| *named != tenant) {
            return Err(ServiceError::TenantMismatch { index, named: named.to_string(), tenant: tenant.to_string() });
        }
    }
    Ok(items)
}

/// One event's result in a batch answer.
fn refused(index: usize, id: Option<&str>, error: &crate::EventError) -> Value {
    json!({"index": index, "id": id, "status": "refused", "code": error.code(), "field": error.field, "message": error.message})
}

/// The DORA tables of one state database, with the settings and metrics events are recorded with.
#[derive(Clone)]
pub struct DoraService {
    deployments: Arc<dyn RecordRepository>,
    incidents: Arc<dyn RecordRepository>,
    settings: DoraSettings,
    metrics: DoraMetrics,
}

impl DoraService {
    /// The service over the `deployments` and `incidents` tables.
    pub fn new(
        (deployments, incidents): (Arc<dyn RecordRepository>, Arc<dyn RecordRepository>),
        settings: DoraSettings,
        metrics: DoraMetrics,
    ) -> Self {
        DoraService { deployments, incidents, settings, metrics }
    }

    /// Parses and records deployment events of `tenant` in one transaction.
    pub fn record_deployments(&self, tenant: &str, items: &[Value]) -> Result<BatchAnswer, ServiceError> {
        let (mut accepted, mut results) = (Vec::new(), Vec::new());
        for (index, item) in items.iter().enumerate() {
            match crate::parse_deployment(item) {
                Ok(deployment) => accepted.push((index, deployment)),
                Err(error) => results.push((index, refused(index, item.get("id").and_then(Value::as_str), &error))),
            }
        }
        let parsed: Vec<(usize, &str, jiff::Timestamp, &Deployment)> =
            accepted.iter().map(|(index, event)| (*index, event.id.as_str(), event.finished, event)).collect();
        let (replaced, answer) = store(self.deployments.as_ref(), tenant, &parsed, results)?;
        for ((_, deployment), replaced) in accepted.iter().zip(replaced) {
            if !replaced {
                self.metrics.count_deployment(&self.settings, tenant, deployment);
            }
        }
        Ok(answer)
    }

    /// Parses and records incident events of `tenant` in one transaction. Recovery is observed once: when
    /// an incident is first known resolved.
    pub fn record_incidents(&self, tenant: &str, items: &[Value]) -> Result<BatchAnswer, ServiceError> {
        let (mut accepted, mut results) = (Vec::new(), Vec::new());
        for (index, item) in items.iter().enumerate() {
            match crate::parse_incident(item, &self.settings.severities) {
                Ok(incident) => accepted.push((index, incident)),
                Err(error) => results.push((index, refused(index, item.get("id").and_then(Value::as_str), &error))),
            }
        }
        let mut newly_resolved = Vec::new();
        for (_, incident) in &accepted {
            if incident.resolved.is_some() && self.settings.is_production(&incident.environment) {
                let was_resolved =
                    self.incident(tenant, &incident.id)?.is_some_and(|earlier| earlier.resolved.is_some());
                if !was_resolved && !newly_resolved.contains(&incident.id) {
                    newly_resolved.push(incident.id.clone());
                }
            }
        }
        let parsed: Vec<(usize, &str, jiff::Timestamp, &Incident)> =
            accepted.iter().map(|(index, event)| (*index, event.id.as_str(), event.started, event)).collect();
        let (_, answer) = store(self.incidents.as_ref(), tenant, &parsed, results)?;
        for (_, incident) in accepted.iter().filter(|(_, incident)| newly_resolved.contains(&incident.id)) {
            if let Some(resolved) = incident.resolved {
                let hours = crate::hours(incident.started, resolved);
                self.metrics.recovery.with(&[tenant, &incident.environment, &incident.service]).observe(hours);
            }
        }
        Ok(answer)
    }

    /// `tenant`'s stored incident `id`.
    pub fn incident(&self, tenant: &str, id: &str) -> Result<Option<Incident>, ServiceError> {
        let record = self.incidents.get(tenant, id)?;
        Ok(record.and_then(|record| serde_json::from_slice::<Incident>(&record.value).ok()))
    }

    /// `tenant`'s events, decoded record by record as the table hands them over (repeated names shared,
    /// [`Names`]); the first damaged one fails the load.
    pub fn load(&self, tenant: &str) -> Result<(Vec<Deployment>, Vec<Incident>), ServiceError> {
        let mut names = Names::default();
        let mut failure = None;
        let (mut loaded, mut known) = (Vec::new(), Vec::new());
        self.deployments.for_each(tenant, &mut |id, _, bytes| {
            match serde_json::from_slice::<Deployment>(bytes) {
                Ok(mut deployment) => {
                    names.deployment(&mut deployment);
                    loaded.push(deployment);
                }
                Err(source) => {
                    failure.get_or_insert(ServiceError::Damaged { kind: "deployment", id: id.to_string(), source });
                }
            }
            Ok(())
        })?;
        self.incidents.for_each(tenant, &mut |id, _, bytes| {
            match serde_json::from_slice::<Incident>(bytes) {
                Ok(mut incident) => {
                    names.incident(&mut incident);
                    known.push(incident);
                }
                Err(source) => {
                    failure.get_or_insert(ServiceError::Damaged { kind: "incident", id: id.to_string(), source });
                }
            }
            Ok(())
        })?;
        match failure {
            Some(error) => Err(error),
            None => Ok((loaded, known)),
        }
    }

    /// The report of `tenant` over `window` (one environment as production when given); its SLO breaches
    /// are counted.
    pub fn report(&self, tenant: &str, window: &Window, environment: Option<&str>) -> Result<Report, ServiceError> {
        let (deployments, incidents) = self.load(tenant)?;
        let report = crate::report(tenant, &deployments, &incidents, &self.settings, window, environment);
        self.metrics.count_breaches(tenant, &report);
        Ok(report)
    }

    /// Deletes events older than `retention` before `now`, then sets the trailing-window gauges of every
    /// one of `tenants` over `metrics_window` (each evaluation counts its SLO breaches).
    pub fn refresh(
        &self,
        tenants: &[String],
        (retention, metrics_window): (Duration, Duration),
        now: jiff::Timestamp,
    ) -> Result<(), ServiceError> {
        let cutoff = now - jiff::SignedDuration::try_from(retention).unwrap_or(jiff::SignedDuration::MAX);
        self.deployments.remove_older_than(None, cutoff)?;
        self.incidents.remove_older_than(None, cutoff)?;
        let from = now - jiff::SignedDuration::try_from(metrics_window).unwrap_or(jiff::SignedDuration::ZERO);
        let window = Window::parse(&from.to_string(), &now.to_string(), None, None)
            .map_err(|error| ServiceError::Invalid { code: "dora.invalid_window", message: error.to_string() })?;
        for tenant in tenants {
            let (deployments, incidents) = self.load(tenant)?;
            if deployments.is_empty() && incidents.is_empty() {
                continue;
            }
            let overall = crate::report(tenant, &deployments, &incidents, &self.settings, &window, None);
            self.metrics.count_breaches(tenant, &overall);
            for gauge in crate::service_gauges(&deployments, &incidents, &self.settings, &window) {
                let labels = [tenant.as_str(), gauge.environment.as_str(), gauge.service.as_str()];
                self.metrics.frequency.with(&labels).set(gauge.deployment_frequency_per_day.unwrap_or(0.0));
                self.metrics.failure_rate.with(&labels).set(gauge.change_failure_rate_percent.unwrap_or(0.0));
            }
        }
        Ok(())
    }
}

/// Stores `parsed` (index, id, time, event) in one transaction and builds the batch answer: which were
/// replaced (the others are new), and the answer.
fn store<T: serde::Serialize>(
    table: &dyn RecordRepository,
    tenant: &str,
    parsed: &[(usize, &str, jiff::Timestamp, &T)],
    mut results: Vec<(usize, Value)>,
) -> Result<(Vec<bool>, BatchAnswer), ServiceError> {
    let encoded: Vec<Vec<u8>> =
        parsed.iter().map(|(_, _, _, event)| serde_json::to_vec(event).unwrap_or_default()).collect();
    let rows: Vec<(&str, jiff::Timestamp, &[u8])> =
        parsed.iter().zip(&encoded).map(|((_, id, at, _), bytes)| (*id, *at, bytes.as_slice())).collect();
    let replaced = table.put_many(tenant, &rows)?;
    for ((index, id, _, _), replaced) in parsed.iter().zip(&replaced) {
        let status = if *replaced { "replaced" } else { "recorded" };
        results.push((*index, json!({"index": index, "id": id, "status": status})));
    }
    results.sort_by_key(|(index, _)| *index);
    let refused = results.iter().filter(|(_, result)| result["status"] == "refused").count();
    let body = json!({
        "recorded": replaced.iter().filter(|replaced| !**replaced).count(),
        "replaced": replaced.iter().filter(|replaced| **replaced).count(),
        "refused": refused,
        "results": results.into_iter().map(|(_, result)| result).collect::<Vec<_>>(),
    });
    Ok((replaced, BatchAnswer { all_refused: parsed.is_empty() && refused > 0, body }))
}
