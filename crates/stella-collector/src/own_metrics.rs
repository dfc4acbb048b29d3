//! Metrics the server makes itself, written into its own store: its meta-metrics (what `/metrics`
//! shows) every `self_monitoring.interval`, and what rules record. They enter the metrics pipelines
//! that export to the store as if a client had sent them, so they are kept, retained and read (PromQL
//! included) like any other metrics, named by the same translation (`job="stella"`, `instance` = the
//! API address).
use std::sync::Arc;
use std::time::Duration;

use stella_metrics::{FamilySnapshot, Kind, SnapshotValue};
use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use stella_otlp::proto::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, metric, number_data_point,
};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::{Ack, Batch, OtlpRequest, Signal};
use tokio_util::sync::CancellationToken;

use crate::Collector;
use crate::config::{Config, ExporterConfig};

/// The server could not write metrics it made into its store.
#[derive(Debug, thiserror::Error)]
pub enum OwnMetricsError {
    /// No metrics pipeline exports to the store.
    #[error("no metrics pipeline exports to the store; add the store exporter to a metrics pipeline")]
    NoStorePipeline,
    /// The server is stopping.
    #[error("the server is stopping")]
    Stopping,
    /// A pipeline refused the data (its ingest log is full or failing).
    #[error("the metrics pipeline {pipeline} refused them: {message}")]
    Refused {
        /// The pipeline.
        pipeline: String,
        /// Why.
        message: String,
    },
}

/// The ids of the metrics pipelines of `config` that export to the store.
fn store_pipelines(config: &Config) -> Vec<String> {
    config
        .pipelines
        .iter()
        .filter(|(_, pipeline)| {
            pipeline.signal == Signal::Metrics
                && pipeline
                    .exporters
                    .iter()
                    .any(|id| matches!(config.exporters.get(id), Some(ExporterConfig::Store(_))))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// A string attribute.
pub fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_string())) }),
        ..Default::default()
    }
}

/// The registry's families as one OTLP metrics request: counters as cumulative monotonic sums since
/// `start_nanos`, gauges, histograms with their bounds; the resource is `service.name` `stella` with
/// `service.instance.id` `instance`. Names are kept as `/metrics` writes them (the translation gives
/// them back unchanged).
pub fn registry_request(
    families: &[FamilySnapshot],
    instance: &str,
    start_nanos: u64,
    now_nanos: u64,
) -> ExportMetricsServiceRequest {
    let attributes = |labels: &[(&'static str, String)]| -> Vec<KeyValue> {
        labels.iter().map(|(name, value)| attribute(name, value)).collect()
    };
    let number = |labels: &[(&'static str, String)], value: f64| NumberDataPoint {
        attributes: attributes(labels),
        start_time_unix_nano: start_nanos,
        time_unix_nano: now_nanos,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    };
    let mut metrics = Vec::new();
    for family in families.iter().filter(|family| !family.series.is_empty()) {
        let data = match family.kind {
            Kind::Counter | Kind::Gauge => {
                let points: Vec<NumberDataPoint> = family
                    .series
                    .iter()
                    .filter_map(|series| match series.value {
                        SnapshotValue::Number(value) => Some(number(&series.labels, value)),
                        SnapshotValue::Histogram { .. } => None,
                    })
                    .collect();
                if family.kind == Kind::Counter {
                    metric::Data::Sum(Sum {
                        data_points: points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })
                } else {
                    metric::Data::Gauge(Gauge { data_points: points })
                }
            }
            Kind::Histogram => metric::Data::Histogram(Histogram {
                data_points: family
                    .series
                    .iter()
                    .filter_map(|series| match &series.value {
                        SnapshotValue::Histogram { bounds, buckets, count, sum } => {
                            let mut bucket_counts = buckets.clone();
                            bucket_counts.push(count.saturating_sub(buckets.iter().sum::<u64>()));
                            Some(HistogramDataPoint {
                                attributes: attributes(&series.labels),
                                start_time_unix_nano: start_nanos,
                                time_unix_nano: now_nanos,
                                count: *count,
                                sum: Some(*sum),
                                bucket_counts,
                                explicit_bounds: bounds.to_vec(),
                                ..Default::default()
                            })
                        }
                        SnapshotValue::Number(_) => None,
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        };
        metrics.push(Metric {
            name: family.name.to_string(),
            description: family.help.to_string(),
            data: Some(data),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", "stella"), attribute("service.instance.id", instance)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
            ..Default::default()
        }],
    }
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |now| now.as_nanos() as u64)
}

impl Collector {
    /// Writes `request` (metrics the server made) as `tenant` into every metrics pipeline that exports
    /// to the store; returns how many once their ingest logs hold it.
    pub async fn write_own_metrics(
        &self,
        tenant: &str,
        request: ExportMetricsServiceRequest,
    ) -> Result<usize, OwnMetricsError> {
        let ids = store_pipelines(&self.config());
        if ids.is_empty() {
            return Err(OwnMetricsError::NoStorePipeline);
        }
        let topology = self.topology.current().ok_or(OwnMetricsError::Stopping)?;
        let tenant: Arc<str> = Arc::from(tenant);
        let mut written = 0;
        for id in ids {
            let Some(pipeline) = topology.pipeline(&id) else { continue };
            let (ack, receiver) = Ack::new();
            pipeline.submit(Batch::new(Arc::clone(&tenant), OtlpRequest::Metrics(request.clone()), ack)).await;
            receiver
                .wait()
                .await
                .map_err(|error| OwnMetricsError::Refused { pipeline: id.clone(), message: error.to_string() })?;
            written += 1;
        }
        Ok(written)
    }

    /// Starts self-monitoring: every `self_monitoring.interval` (read again each time, so a reload
    /// applies), the server's meta-metrics are written into its store as `self_monitoring.tenant`.
    pub fn start_self_monitoring(self: &Arc<Self>) {
        let collector = Arc::clone(self);
        let started = unix_nanos();
        let instance = self.config().api.endpoint.to_string();
        self.spawn_job("self-monitoring", move |stop: CancellationToken| async move {
            let mut warned = false;
            loop {
                let settings = collector.config().self_monitoring;
                let wait = if settings.enabled { settings.interval } else { Duration::from_secs(5) };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => return,
                }
                if !settings.enabled {
                    continue;
                }
                collector.refresh_gauges();
                let request = registry_request(&collector.context.registry.snapshot(), &instance, started, unix_nanos());
                match collector.write_own_metrics(&settings.tenant, request).await {
                    Ok(_) => warned = false,
                    Err(OwnMetricsError::Stopping) => return,
                    Err(error) => {
                        if !warned {
                            tracing::warn!(%error, "self-monitoring: the server's own metrics are not written into its store");
                            warned = true;
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stella_otlp::prometheus::{Dropped, Naming, translate};

    #[test]
    fn the_registry_becomes_series_with_the_names_and_labels_of_its_exposition() {
        let registry = stella_metrics::Registry::default();
        registry.counter("collector_exporter_sent_items_total", "Sent.", &["exporter"]).with(&["file"]).add(7);
        registry
            .gauge("telemetry_ingest_log_bytes", "Bytes.", &["log", "tenant"])
            .with(&["metrics", "default"])
            .set(42);
        registry.histogram("policy_run_duration_seconds", "Runs.", &[], &[0.5]).with(&[]).observe(2.0);
        let request = registry_request(&registry.snapshot(), "127.0.0.1:4319", 1, 1_000_000_000_000);
        let naming = Naming { namespace: None, add_suffixes: true };
        let mut lines: Vec<String> = translate(&request, &naming, &mut Dropped::default())
            .into_iter()
            .map(|series| {
                let labels: Vec<String> =
                    series.labels.iter().map(|label| format!("{}={}", label.name, label.value)).collect();
                format!("{} {}", labels.join(","), series.samples[0].value)
            })
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            vec![
                "__name__=collector_exporter_sent_items_total,exporter=file,instance=127.0.0.1:4319,job=stella 7",
                "__name__=policy_run_duration_seconds_bucket,instance=127.0.0.1:4319,job=stella,le=+Inf 1",
                "__name__=policy_run_duration_seconds_bucket,instance=127.0.0.1:4319,job=stella,le=0.5 0",
                "__name__=policy_run_duration_seconds_count,instance=127.0.0.1:4319,job=stella 1",
                "__name__=policy_run_duration_seconds_sum,instance=127.0.0.1:4319,job=stella 2",
                "__name__=telemetry_ingest_log_bytes,instance=127.0.0.1:4319,job=stella,log=metrics,tenant=default 42",
            ]
        );
    }
}
