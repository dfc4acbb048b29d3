//! Encoding of OTLP/JSON metrics: `ExportMetricsServiceRequest` down to every data point type.

use serde_json::Value;

use super::encode::{Fields, double, int64_item, key_value, resource, scope};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::metrics::v1::exponential_histogram_data_point::Buckets;
use crate::proto::metrics::v1::summary_data_point::ValueAtQuantile;
use crate::proto::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, exemplar, metric,
    number_data_point,
};

/// `ExportMetricsServiceRequest`.
pub(super) fn metrics_request(request: &ExportMetricsServiceRequest) -> Value {
    Fields::new().list("resourceMetrics", &request.resource_metrics, resource_metrics).build()
}

/// `ResourceMetrics`.
fn resource_metrics(item: &ResourceMetrics) -> Value {
    Fields::new()
        .message("resource", item.resource.as_ref(), resource)
        .list("scopeMetrics", &item.scope_metrics, scope_metrics)
        .string("schemaUrl", &item.schema_url)
        .build()
}

/// `ScopeMetrics`.
fn scope_metrics(item: &ScopeMetrics) -> Value {
    Fields::new()
        .message("scope", item.scope.as_ref(), scope)
        .list("metrics", &item.metrics, metric)
        .string("schemaUrl", &item.schema_url)
        .build()
}

/// `Metric`: the member of the `data` oneof is written even when empty (`"gauge":{}`).
fn metric(metric: &Metric) -> Value {
    let fields = Fields::new()
        .string("name", &metric.name)
        .string("description", &metric.description)
        .string("unit", &metric.unit)
        .list("metadata", &metric.metadata, key_value);
    match &metric.data {
        None => fields,
        Some(metric::Data::Gauge(data)) => fields.value("gauge", gauge(data)),
        Some(metric::Data::Sum(data)) => fields.value("sum", sum(data)),
        Some(metric::Data::Histogram(data)) => fields.value("histogram", histogram(data)),
        Some(metric::Data::ExponentialHistogram(data)) => {
            fields.value("exponentialHistogram", exponential_histogram(data))
        }
        Some(metric::Data::Summary(data)) => fields.value("summary", summary(data)),
    }
    .build()
}

/// `Gauge`.
fn gauge(gauge: &Gauge) -> Value {
    Fields::new().list("dataPoints", &gauge.data_points, number_data_point).build()
}

/// `Sum`.
fn sum(sum: &Sum) -> Value {
    Fields::new()
        .list("dataPoints", &sum.data_points, number_data_point)
        .int32("aggregationTemporality", sum.aggregation_temporality)
        .boolean("isMonotonic", sum.is_monotonic)
        .build()
}

/// `Histogram`.
fn histogram(histogram: &Histogram) -> Value {
    Fields::new()
        .list("dataPoints", &histogram.data_points, histogram_data_point)
        .int32("aggregationTemporality", histogram.aggregation_temporality)
        .build()
}

/// `ExponentialHistogram`.
fn exponential_histogram(histogram: &ExponentialHistogram) -> Value {
    Fields::new()
        .list("dataPoints", &histogram.data_points, exponential_histogram_data_point)
        .int32("aggregationTemporality", histogram.aggregation_temporality)
        .build()
}

/// `Summary`.
fn summary(summary: &Summary) -> Value {
    Fields::new().list("dataPoints", &summary.data_points, summary_data_point).build()
}

/// `NumberDataPoint`: the value is written even when 0.
fn number_data_point(point: &NumberDataPoint) -> Value {
    let fields = Fields::new()
        .list("attributes", &point.attributes, key_value)
        .int64("startTimeUnixNano", point.start_time_unix_nano)
        .int64("timeUnixNano", point.time_unix_nano)
        .list("exemplars", &point.exemplars, exemplar)
        .int32("flags", point.flags);
    match point.value {
        None => fields,
        Some(number_data_point::Value::AsDouble(float)) => fields.value("asDouble", double(float)),
        Some(number_data_point::Value::AsInt(int)) => fields.value("asInt", Value::String(int.to_string())),
    }
    .build()
}

/// `HistogramDataPoint`.
fn histogram_data_point(point: &HistogramDataPoint) -> Value {
    Fields::new()
        .list("attributes", &point.attributes, key_value)
        .int64("startTimeUnixNano", point.start_time_unix_nano)
        .int64("timeUnixNano", point.time_unix_nano)
        .int64("count", point.count)
        .opt_double("sum", point.sum)
        .list("bucketCounts", &point.bucket_counts, int64_item)
        .list("explicitBounds", &point.explicit_bounds, |bound| double(*bound))
        .list("exemplars", &point.exemplars, exemplar)
        .int32("flags", point.flags)
        .opt_double("min", point.min)
        .opt_double("max", point.max)
        .build()
}

/// `ExponentialHistogramDataPoint`.
fn exponential_histogram_data_point(point: &ExponentialHistogramDataPoint) -> Value {
    Fields::new()
        .list("attributes", &point.attributes, key_value)
        .int64("startTimeUnixNano", point.start_time_unix_nano)
        .int64("timeUnixNano", point.time_unix_nano)
        .int64("count", point.count)
        .opt_double("sum", point.sum)
        .int32("scale", point.scale)
        .int64("zeroCount", point.zero_count)
        .message("positive", point.positive.as_ref(), buckets)
        .message("negative", point.negative.as_ref(), buckets)
        .int32("flags", point.flags)
        .list("exemplars", &point.exemplars, exemplar)
        .opt_double("min", point.min)
        .opt_double("max", point.max)
        .double("zeroThreshold", point.zero_threshold)
        .build()
}

/// `ExponentialHistogramDataPoint.Buckets`.
fn buckets(buckets: &Buckets) -> Value {
    Fields::new().int32("offset", buckets.offset).list("bucketCounts", &buckets.bucket_counts, int64_item).build()
}

/// `SummaryDataPoint`.
fn summary_data_point(point: &SummaryDataPoint) -> Value {
    Fields::new()
        .list("attributes", &point.attributes, key_value)
        .int64("startTimeUnixNano", point.start_time_unix_nano)
        .int64("timeUnixNano", point.time_unix_nano)
        .int64("count", point.count)
        .double("sum", point.sum)
        .list("quantileValues", &point.quantile_values, value_at_quantile)
        .int32("flags", point.flags)
        .build()
}

/// `SummaryDataPoint.ValueAtQuantile`.
fn value_at_quantile(item: &ValueAtQuantile) -> Value {
    Fields::new().double("quantile", item.quantile).double("value", item.value).build()
}

/// `Exemplar`: the value is written even when 0.
fn exemplar(exemplar: &Exemplar) -> Value {
    let fields = Fields::new()
        .list("filteredAttributes", &exemplar.filtered_attributes, key_value)
        .int64("timeUnixNano", exemplar.time_unix_nano)
        .id("spanId", &exemplar.span_id)
        .id("traceId", &exemplar.trace_id);
    match exemplar.value {
        None => fields,
        Some(exemplar::Value::AsDouble(float)) => fields.value("asDouble", double(float)),
        Some(exemplar::Value::AsInt(int)) => fields.value("asInt", Value::String(int.to_string())),
    }
    .build()
}
