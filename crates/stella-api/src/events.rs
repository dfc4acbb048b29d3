//! The `events` exporter: events carried by the OTLP log records of a logs pipeline, recorded as the API
//! records them. DORA events (`stella.release.promotion|rollback`, `stella.incident.opened|acknowledged|
//! resolved`; see `stella_dora::log_event`) and federation observations (`stella.vuln.observation` with
//! `stella.cve_id`, `stella.artifact_digest`, `stella.noisy`, `stella.observed_at` defaulting to the
//! record's time). The event name is the record's `event_name`, or its `event.name` attribute; fields
//! are the `stella.*` attributes. Other records are passed over. A record that is not a valid event is
//! logged and counted (`collector_export_failures_total{exporter="events",reason="invalid_event"}`),
//! never retried; a storage failure retries the batch (recording is idempotent by id).
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};
use stella_collector::Collector;
use stella_dora::log_event::{LogEvent, from_log};
use stella_metrics::Registry;
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;

use stella_dora::service::{BatchAnswer, DoraService};

use crate::ApiError;
use crate::dora::api_error;

/// The event name of a federation observation.
pub const VULN_OBSERVATION: &str = "stella.vuln.observation";

/// The `events` exporter (see the module docs).
pub struct LogEvents {
    collector: OnceLock<Arc<Collector>>,
    registry: Registry,
    metrics: stella_export::ExportMetrics,
}

/// Where the events of one batch go.
struct Sinks {
    dora: DoraService,
    federation: stella_federation::service::FederationService,
}

/// Events of one kind waiting to be recorded together.
#[derive(Default)]
struct Pending {
    deployments: Vec<Value>,
    incidents: Vec<Value>,
    observations: Vec<Value>,
}

fn refusals(answer: BatchAnswer) -> u64 {
    answer.body["refused"].as_u64().unwrap_or(0)
}

impl Pending {
    /// Records what waits; the refusals.
    fn flush(&mut self, sinks: &Sinks, tenant: &str) -> Result<u64, ApiError> {
        let dora = &sinks.dora;
        let mut refused =
            refusals(dora.record_deployments(tenant, &std::mem::take(&mut self.deployments)).map_err(api_error)?);
        refused += refusals(dora.record_incidents(tenant, &std::mem::take(&mut self.incidents)).map_err(api_error)?);
        let observations = std::mem::take(&mut self.observations);
        refused +=
            u64::try_from(sinks.federation.record_observations(tenant, &observations)?.refused).unwrap_or(u64::MAX);
        Ok(refused)
    }
}

impl LogEvents {
    /// An exporter that waits (its batches retried) until [`LogEvents::attach`].
    pub fn new(registry: &Registry) -> Self {
        LogEvents {
            collector: OnceLock::new(),
            registry: registry.clone(),
            metrics: stella_export::ExportMetrics::new(registry),
        }
    }

    /// Records into `collector`'s tables from now on.
    pub fn attach(&self, collector: Arc<Collector>) {
        let _ = self.collector.set(collector);
    }

    /// Records the events of `request` for `tenant`, in record order; counts refusals in `metrics`.
    fn apply(
        sinks: &Sinks,
        metrics: &stella_export::ExportMetrics,
        tenant: &str,
        request: &ExportLogsServiceRequest,
    ) -> Result<(), ApiError> {
        let mut invalid = 0u64;
        let mut pending = Pending::default();
        for group in &request.resource_logs {
            let service = stella_otlp::attributes::service_name(group.resource.as_ref());
            for record in group.scope_logs.iter().flat_map(|scope| &scope.log_records) {
                let name = if record.event_name.is_empty() {
                    stella_otlp::attributes::get_str(&record.attributes, "event.name").unwrap_or_default()
                } else {
                    record.event_name.as_str()
                };
                let mut fields: Map<String, Value> = record
                    .attributes
                    .iter()
                    .filter_map(|attribute| {
                        let key = attribute.key.strip_prefix("stella.")?;
                        let value = attribute.value.as_ref()?.value.as_ref()?;
                        Some((key.to_string(), stella_otlp::attributes::json_value(value)))
                    })
                    .collect();
                let nanos =
                    if record.time_unix_nano > 0 { record.time_unix_nano } else { record.observed_time_unix_nano };
                let time = jiff::Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                if name == VULN_OBSERVATION {
                    fields.entry("observed_at").or_insert_with(|| time.to_string().into());
                    pending.observations.push(Value::Object(fields));
                    continue;
                }
                match from_log(name, fields, time, service) {
                    Ok(None) => {}
                    Ok(Some(LogEvent::Deployment(value))) => pending.deployments.push(value),
                    Ok(Some(LogEvent::Incident(value))) => {
                        // Deployments first: an incident may link to one of this batch.
                        let deployments = std::mem::take(&mut pending.deployments);
                        invalid += refusals(sinks.dora.record_deployments(tenant, &deployments).map_err(api_error)?);
                        pending.incidents.push(value);
                    }
                    Ok(Some(LogEvent::IncidentUpdate { incident, field, at })) => {
                        invalid += pending.flush(sinks, tenant)?;
                        let id = incident["id"].as_str().unwrap_or_default().to_string();
                        let updated = match sinks.dora.incident(tenant, &id).map_err(api_error)? {
                            Some(mut known) => {
                                if field == "acknowledged" {
                                    known.acknowledged = Some(at);
                                } else {
                                    known.resolved = Some(at);
                                }
                                serde_json::to_value(known).unwrap_or(incident)
                            }
                            None => incident,
                        };
                        invalid += refusals(sinks.dora.record_incidents(tenant, &[updated]).map_err(api_error)?);
                    }
                    Err(error) => {
                        tracing::warn!(exporter = "events", %error, "a log event was refused");
                        invalid += 1;
                    }
                }
            }
        }
        invalid += pending.flush(sinks, tenant)?;
        if invalid > 0 {
            tracing::warn!(exporter = "events", tenant, invalid, "log events refused; they are not retried");
            metrics.failed("events", "invalid_event", invalid);
        }
        Ok(())
    }
}

impl stella_export::Exporter for LogEvents {
    fn id(&self) -> &str {
        "events"
    }

    fn export<'a>(
        &'a self,
        batch: &'a stella_otlp::Batch,
        _delivery: stella_export::Delivery<'a>,
    ) -> stella_export::BoxFuture<'a, Result<(), stella_export::ExportError>> {
        Box::pin(async move {
            let unavailable = |message: String| stella_export::ExportError::Retryable {
                reason: "unavailable",
                endpoint: "events".into(),
                message,
                retry_after: None,
            };
            let Some(collector) = self.collector.get() else {
                return Err(unavailable("the event tables are not open yet".into()));
            };
            let stella_otlp::OtlpRequest::Logs(request) = &batch.request else { return Ok(()) };
            let sinks = Sinks {
                dora: crate::dora::service(collector, &self.registry),
                federation: crate::federation::service(collector),
            };
            let (tenant, request, metrics) = (batch.tenant.to_string(), request.clone(), self.metrics.clone());
            match tokio::task::spawn_blocking(move || LogEvents::apply(&sinks, &metrics, &tenant, &request)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(unavailable(error.message)),
                Err(error) => Err(unavailable(error.to_string())),
            }
        })
    }
}
