//! The `spanmetrics` processor: request rates, errors and durations derived from every span, before tail
//! sampling decides anything, so the rates stay true whatever is kept.
//!
//! Per tenant, service, span name, span kind and status code (plus configured dimensions) it counts
//! `<namespace>.calls` (a monotonic cumulative sum) and `<namespace>.duration` (a cumulative histogram in
//! seconds), like the OpenTelemetry span-metrics connector. Past `aggregation_cardinality_limit` series
//! per tenant, new series are folded into one overflow series per service (`otel.metric.overflow: true`)
//! and counted. [`SpanMetrics::snapshot`] turns the state into one metrics request per tenant, which the
//! collector sends into the metrics pipeline every `metrics_flush_interval`.
mod config;

pub use config::{Dimension, ExplicitBuckets, HistogramConfig, SpanMetricsConfig};

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use stella_metrics::Counter;
use stella_otlp::attributes;
use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use stella_otlp::proto::common::v1::{InstrumentationScope, KeyValue};
use stella_otlp::proto::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::{Batch, OtlpRequest};

use crate::{Dropped, Stage};

/// The attribute marking the overflow series.
pub const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

/// Data-point attributes of a series, in order.
type Attributes = Vec<(String, String)>;

/// One series: its service and its data-point attributes.
type SeriesKey = (String, Attributes);

/// Counts of one series.
#[derive(Debug, Clone)]
struct Series {
    calls: u64,
    buckets: Vec<u64>,
    sum_seconds: f64,
}

/// The state of one tenant.
#[derive(Debug, Default)]
struct TenantSeries {
    series: HashMap<SeriesKey, Series>,
}

/// The built stage.
pub struct SpanMetrics {
    id: String,
    config: SpanMetricsConfig,
    bounds_seconds: Vec<f64>,
    start_unix_nano: u64,
    tenants: Mutex<BTreeMap<String, TenantSeries>>,
    overflowed: Counter,
}

impl SpanMetrics {
    /// A stage with `config`, counting from `start_unix_nano`; `overflowed` counts spans folded into an
    /// overflow series.
    pub fn new(id: String, config: SpanMetricsConfig, start_unix_nano: u64, overflowed: Counter) -> Self {
        let bounds_seconds = config.histogram.explicit.buckets.iter().map(|bound| bound.as_secs_f64()).collect();
        SpanMetrics { id, config, bounds_seconds, start_unix_nano, tenants: Mutex::new(BTreeMap::new()), overflowed }
    }

    /// The settings.
    pub fn config(&self) -> &SpanMetricsConfig {
        &self.config
    }

    fn record(&self, tenant: &str, request: &OtlpRequest) {
        let OtlpRequest::Traces(request) = request else { return };
        let mut tenants = self.tenants.lock().unwrap_or_else(|poison| poison.into_inner());
        let state = tenants.entry(tenant.to_string()).or_default();
        for group in &request.resource_spans {
            let resource = group.resource.as_ref().map_or(&[][..], |resource| &resource.attributes[..]);
            let service = attributes::service_name(group.resource.as_ref()).unwrap_or("unknown_service").to_string();
            for span in group.scope_spans.iter().flat_map(|scope| &scope.spans) {
                let mut attributes = vec![
                    ("span.name".to_string(), span.name.clone()),
                    ("span.kind".to_string(), span_kind(span.kind).to_string()),
                    (
                        "status.code".to_string(),
                        status_code(span.status.as_ref().map_or(0, |status| status.code)).to_string(),
                    ),
                ];
                for dimension in &self.config.dimensions {
                    let value = string_value(&span.attributes, &dimension.name)
                        .or_else(|| string_value(resource, &dimension.name))
                        .or_else(|| dimension.default.clone());
                    if let Some(value) = value {
                        attributes.push((dimension.name.clone(), value));
                    }
                }
                let mut key = (service.clone(), attributes);
                if !state.series.contains_key(&key) && state.series.len() >= self.config.aggregation_cardinality_limit {
                    key = (service.clone(), vec![(OVERFLOW_ATTRIBUTE.to_string(), "true".to_string())]);
                    self.overflowed.inc();
                }
                let seconds = span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) as f64 / 1e9;
                let bucket =
                    self.bounds_seconds.iter().position(|bound| seconds <= *bound).unwrap_or(self.bounds_seconds.len());
                let series = state.series.entry(key).or_insert_with(|| Series {
                    calls: 0,
                    buckets: vec![0; self.bounds_seconds.len() + 1],
                    sum_seconds: 0.0,
                });
                series.calls += 1;
                series.buckets[bucket] += 1;
                series.sum_seconds += seconds;
            }
        }
    }

    /// The cumulative metrics of every tenant at `now_unix_nano`, one request per tenant (empty tenants
    /// are left out), in a stable order.
    pub fn snapshot(&self, now_unix_nano: u64) -> Vec<(String, ExportMetricsServiceRequest)> {
        let tenants = self.tenants.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut out = Vec::new();
        for (tenant, state) in tenants.iter() {
            let mut by_service: BTreeMap<&str, Vec<(&Attributes, &Series)>> = BTreeMap::new();
            for ((service, attributes), series) in &state.series {
                by_service.entry(service.as_str()).or_default().push((attributes, series));
            }
            let mut resource_metrics = Vec::new();
            for (service, mut series) in by_service {
                series.sort_by(|a, b| a.0.cmp(b.0));
                let attributes = |pairs: &[(String, String)]| {
                    pairs.iter().map(|(key, value)| attributes::string(key, value)).collect::<Vec<_>>()
                };
                let calls = series
                    .iter()
                    .map(|(pairs, counts)| NumberDataPoint {
                        attributes: attributes(pairs),
                        start_time_unix_nano: self.start_unix_nano,
                        time_unix_nano: now_unix_nano,
                        value: Some(number_data_point::Value::AsInt(i64::try_from(counts.calls).unwrap_or(i64::MAX))),
                        ..Default::default()
                    })
                    .collect();
                let durations = series
                    .iter()
                    .map(|(pairs, counts)| HistogramDataPoint {
                        attributes: attributes(pairs),
                        start_time_unix_nano: self.start_unix_nano,
                        time_unix_nano: now_unix_nano,
                        count: counts.calls,
                        sum: Some(counts.sum_seconds),
                        bucket_counts: counts.buckets.clone(),
                        explicit_bounds: self.bounds_seconds.clone(),
                        ..Default::default()
                    })
                    .collect();
                let cumulative = AggregationTemporality::Cumulative as i32;
                let namespace = &self.config.namespace;
                let name = |suffix: &str| {
                    if namespace.is_empty() { suffix.to_string() } else { format!("{namespace}.{suffix}") }
                };
                resource_metrics.push(ResourceMetrics {
                    resource: Some(Resource {
                        attributes: vec![attributes::string("service.name", service)],
                        ..Default::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope { name: "stella.spanmetrics".into(), ..Default::default() }),
                        metrics: vec![
                            Metric {
                                name: name("calls"),
                                description: "Spans seen, by service, span name, kind and status.".into(),
                                unit: "{call}".into(),
                                data: Some(metric::Data::Sum(Sum {
                                    data_points: calls,
                                    aggregation_temporality: cumulative,
                                    is_monotonic: true,
                                })),
                                ..Default::default()
                            },
                            Metric {
                                name: name("duration"),
                                description: "Span durations, by service, span name, kind and status.".into(),
                                unit: "s".into(),
                                data: Some(metric::Data::Histogram(Histogram {
                                    data_points: durations,
                                    aggregation_temporality: cumulative,
                                })),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                });
            }
            if !resource_metrics.is_empty() {
                out.push((tenant.clone(), ExportMetricsServiceRequest { resource_metrics }));
            }
        }
        out
    }
}

impl Stage for SpanMetrics {
    fn id(&self) -> &str {
        &self.id
    }

    fn process(&self, batch: &mut Batch) -> Vec<Dropped> {
        self.record(&batch.tenant, &batch.request);
        Vec::new()
    }
}

/// The string form of attribute `key`, if it is a scalar.
fn string_value(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes::get(attributes, key).and_then(attributes::scalar_text)
}

/// The upstream connector's names for span kinds.
fn span_kind(kind: i32) -> &'static str {
    match kind {
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

fn status_code(code: i32) -> &'static str {
    match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

#[cfg(test)]
mod tests;
