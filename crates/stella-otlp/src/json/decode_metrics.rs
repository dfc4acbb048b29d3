//! Decoding of OTLP/JSON metrics: `ExportMetricsServiceRequest` down to every data point type.

use serde_json::Value;

use super::JsonError;
use super::decode::{key_value, resource, scope};
use super::walk::{Obj, Path, boolean, double, enumeration, id, int, string};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::metrics::v1::exponential_histogram_data_point::Buckets;
use crate::proto::metrics::v1::summary_data_point::ValueAtQuantile;
use crate::proto::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    exemplar, metric, number_data_point,
};

/// `ExportMetricsServiceRequest`.
pub(super) fn metrics_request(value: &Value, path: &Path<'_>) -> Result<ExportMetricsServiceRequest, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ExportMetricsServiceRequest { resource_metrics: o.list("resourceMetrics", resource_metrics)? })
}

/// `ResourceMetrics`.
fn resource_metrics(value: &Value, path: &Path<'_>) -> Result<ResourceMetrics, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ResourceMetrics {
        resource: o.opt("resource", resource)?,
        scope_metrics: o.list("scopeMetrics", scope_metrics)?,
        schema_url: o.get("schemaUrl", string)?,
    })
}

/// `ScopeMetrics`.
fn scope_metrics(value: &Value, path: &Path<'_>) -> Result<ScopeMetrics, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ScopeMetrics {
        scope: o.opt("scope", scope)?,
        metrics: o.list("metrics", metric)?,
        schema_url: o.get("schemaUrl", string)?,
    })
}

/// `Metric`, with at most one of its `data` fields.
fn metric(value: &Value, path: &Path<'_>) -> Result<Metric, JsonError> {
    let o = Obj::new(value, path)?;
    let data = [
        o.opt("gauge", gauge)?.map(metric::Data::Gauge),
        o.opt("sum", sum)?.map(metric::Data::Sum),
        o.opt("histogram", histogram)?.map(metric::Data::Histogram),
        o.opt("exponentialHistogram", exponential_histogram)?.map(metric::Data::ExponentialHistogram),
        o.opt("summary", summary)?.map(metric::Data::Summary),
    ];
    Ok(Metric {
        name: o.get("name", string)?,
        description: o.get("description", string)?,
        unit: o.get("unit", string)?,
        metadata: o.list("metadata", key_value)?,
        data: o.one_of("data", data)?,
    })
}

/// An `aggregationTemporality` field.
fn temporality(value: &Value, path: &Path<'_>) -> Result<i32, JsonError> {
    enumeration(value, path, AggregationTemporality::from_str_name)
}

/// `Gauge`.
fn gauge(value: &Value, path: &Path<'_>) -> Result<Gauge, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(Gauge { data_points: o.list("dataPoints", number_data_point)? })
}

/// `Sum`.
fn sum(value: &Value, path: &Path<'_>) -> Result<Sum, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(Sum {
        data_points: o.list("dataPoints", number_data_point)?,
        aggregation_temporality: o.get("aggregationTemporality", temporality)?,
        is_monotonic: o.get("isMonotonic", boolean)?,
    })
}

/// `Histogram`.
fn histogram(value: &Value, path: &Path<'_>) -> Result<Histogram, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(Histogram {
        data_points: o.list("dataPoints", histogram_data_point)?,
        aggregation_temporality: o.get("aggregationTemporality", temporality)?,
    })
}

/// `ExponentialHistogram`.
fn exponential_histogram(value: &Value, path: &Path<'_>) -> Result<ExponentialHistogram, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ExponentialHistogram {
        data_points: o.list("dataPoints", exponential_histogram_data_point)?,
        aggregation_temporality: o.get("aggregationTemporality", temporality)?,
    })
}

/// `Summary`.
fn summary(value: &Value, path: &Path<'_>) -> Result<Summary, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(Summary { data_points: o.list("dataPoints", summary_data_point)? })
}

/// `NumberDataPoint`.
fn number_data_point(value: &Value, path: &Path<'_>) -> Result<NumberDataPoint, JsonError> {
    let o = Obj::new(value, path)?;
    let values = [
        o.opt("asDouble", double)?.map(number_data_point::Value::AsDouble),
        o.opt("asInt", int)?.map(number_data_point::Value::AsInt),
    ];
    Ok(NumberDataPoint {
        attributes: o.list("attributes", key_value)?,
        start_time_unix_nano: o.get("startTimeUnixNano", int)?,
        time_unix_nano: o.get("timeUnixNano", int)?,
        exemplars: o.list("exemplars", exemplar)?,
        flags: o.get("flags", int)?,
        value: o.one_of("value", values)?,
    })
}

/// `HistogramDataPoint`.
fn histogram_data_point(value: &Value, path: &Path<'_>) -> Result<HistogramDataPoint, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(HistogramDataPoint {
        attributes: o.list("attributes", key_value)?,
        start_time_unix_nano: o.get("startTimeUnixNano", int)?,
        time_unix_nano: o.get("timeUnixNano", int)?,
        count: o.get("count", int)?,
        sum: o.opt("sum", double)?,
        bucket_counts: o.list("bucketCounts", int)?,
        explicit_bounds: o.list("explicitBounds", double)?,
        exemplars: o.list("exemplars", exemplar)?,
        flags: o.get("flags", int)?,
        min: o.opt("min", double)?,
        max: o.opt("max", double)?,
    })
}

/// `ExponentialHistogramDataPoint`.
fn exponential_histogram_data_point(
    value: &Value,
    path: &Path<'_>,
) -> Result<ExponentialHistogramDataPoint, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ExponentialHistogramDataPoint {
        attributes: o.list("attributes", key_value)?,
        start_time_unix_nano: o.get("startTimeUnixNano", int)?,
        time_unix_nano: o.get("timeUnixNano", int)?,
        count: o.get("count", int)?,
        sum: o.opt("sum", double)?,
        scale: o.get("scale", int)?,
        zero_count: o.get("zeroCount", int)?,
        positive: o.opt("positive", buckets)?,
        negative: o.opt("negative", buckets)?,
        flags: o.get("flags", int)?,
        exemplars: o.list("exemplars", exemplar)?,
        min: o.opt("min", double)?,
        max: o.opt("max", double)?,
        zero_threshold: o.get("zeroThreshold", double)?,
    })
}

/// `ExponentialHistogramDataPoint.Buckets`.
fn buckets(value: &Value, path: &Path<'_>) -> Result<Buckets, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(Buckets { offset: o.get("offset", int)?, bucket_counts: o.list("bucketCounts", int)? })
}

/// `SummaryDataPoint`.
fn summary_data_point(value: &Value, path: &Path<'_>) -> Result<SummaryDataPoint, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(SummaryDataPoint {
        attributes: o.list("attributes", key_value)?,
        start_time_unix_nano: o.get("startTimeUnixNano", int)?,
        time_unix_nano: o.get("timeUnixNano", int)?,
        count: o.get("count", int)?,
        sum: o.get("sum", double)?,
        quantile_values: o.list("quantileValues", value_at_quantile)?,
        flags: o.get("flags", int)?,
    })
}

/// `SummaryDataPoint.ValueAtQuantile`.
fn value_at_quantile(value: &Value, path: &Path<'_>) -> Result<ValueAtQuantile, JsonError> {
    let o = Obj::new(value, path)?;
    Ok(ValueAtQuantile { quantile: o.get("quantile", double)?, value: o.get("value", double)? })
}

/// `Exemplar`.
fn exemplar(value: &Value, path: &Path<'_>) -> Result<Exemplar, JsonError> {
    let o = Obj::new(value, path)?;
    let values =
        [o.opt("asDouble", double)?.map(exemplar::Value::AsDouble), o.opt("asInt", int)?.map(exemplar::Value::AsInt)];
    Ok(Exemplar {
        filtered_attributes: o.list("filteredAttributes", key_value)?,
        time_unix_nano: o.get("timeUnixNano", int)?,
        span_id: o.get("spanId", id)?,
        trace_id: o.get("traceId", id)?,
        value: o.one_of("value", values)?,
    })
}
