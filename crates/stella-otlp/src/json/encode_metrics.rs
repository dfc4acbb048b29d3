//! Encoding of OTLP/JSON metrics: `ExportMetricsServiceRequest` down to every data point type (keys in
//! sorted order, as every encoder writes them).

use super::encode::{Fields, double, int64_item, key_value, quoted_number, resource, scope};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::metrics::v1::exponential_histogram_data_point::Buckets;
use crate::proto::metrics::v1::summary_data_point::ValueAtQuantile;
use crate::proto::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, exemplar, metric,
    number_data_point,
};

/// `ExportMetricsServiceRequest`.
pub(super) fn metrics_request(out: &mut Vec<u8>, request: &ExportMetricsServiceRequest) {
    Fields::new(out).list("resourceMetrics", &request.resource_metrics, resource_metrics).build()
}

/// `ResourceMetrics`.
fn resource_metrics(out: &mut Vec<u8>, item: &ResourceMetrics) {
    Fields::new(out)
        .message("resource", item.resource.as_ref(), resource)
        .string("schemaUrl", &item.schema_url)
        .list("scopeMetrics", &item.scope_metrics, scope_metrics)
        .build()
}

/// `ScopeMetrics`.
fn scope_metrics(out: &mut Vec<u8>, item: &ScopeMetrics) {
    Fields::new(out)
        .list("metrics", &item.metrics, metric)
        .string("schemaUrl", &item.schema_url)
        .message("scope", item.scope.as_ref(), scope)
        .build()
}

/// `Metric`: the member of the `data` oneof is written even when empty (`"gauge":{}`), in its sorted
/// place among the other keys.
fn metric(out: &mut Vec<u8>, metric: &Metric) {
    use metric::Data;
    let data = metric.data.as_ref();
    let mut fields = Fields::new(out).string("description", &metric.description);
    if let Some(Data::ExponentialHistogram(data)) = data {
        fields = fields.raw("exponentialHistogram", |out| exponential_histogram(out, data));
    }
    if let Some(Data::Gauge(data)) = data {
        fields = fields.raw("gauge", |out| gauge(out, data));
    }
    if let Some(Data::Histogram(data)) = data {
        fields = fields.raw("histogram", |out| histogram(out, data));
    }
    fields = fields.list("metadata", &metric.metadata, key_value).string("name", &metric.name);
    if let Some(Data::Sum(data)) = data {
        fields = fields.raw("sum", |out| sum(out, data));
    }
    if let Some(Data::Summary(data)) = data {
        fields = fields.raw("summary", |out| summary(out, data));
    }
    fields.string("unit", &metric.unit).build()
}

/// `Gauge`.
fn gauge(out: &mut Vec<u8>, gauge: &Gauge) {
    Fields::new(out).list("dataPoints", &gauge.data_points, number_data_point).build()
}

/// `Sum`.
fn sum(out: &mut Vec<u8>, sum: &Sum) {
    Fields::new(out)
        .int32("aggregationTemporality", sum.aggregation_temporality)
        .list("dataPoints", &sum.data_points, number_data_point)
        .boolean("isMonotonic", sum.is_monotonic)
        .build()
}

/// `Histogram`.
fn histogram(out: &mut Vec<u8>, histogram: &Histogram) {
    Fields::new(out)
        .int32("aggregationTemporality", histogram.aggregation_temporality)
        .list("dataPoints", &histogram.data_points, histogram_data_point)
        .build()
}

/// `ExponentialHistogram`.
fn exponential_histogram(out: &mut Vec<u8>, histogram: &ExponentialHistogram) {
    Fields::new(out)
        .int32("aggregationTemporality", histogram.aggregation_temporality)
        .list("dataPoints", &histogram.data_points, exponential_histogram_data_point)
        .build()
}

/// `Summary`.
fn summary(out: &mut Vec<u8>, summary: &Summary) {
    Fields::new(out).list("dataPoints", &summary.data_points, summary_data_point).build()
}

/// `NumberDataPoint`: the value is written even when 0.
fn number_data_point(out: &mut Vec<u8>, point: &NumberDataPoint) {
    let fields = match point.value {
        None => Fields::new(out),
        Some(number_data_point::Value::AsDouble(float)) => Fields::new(out).raw("asDouble", |out| double(out, float)),
        Some(number_data_point::Value::AsInt(int)) => Fields::new(out).raw("asInt", |out| quoted_number(out, int)),
    };
    fields
        .list("attributes", &point.attributes, key_value)
        .list("exemplars", &point.exemplars, exemplar)
        .int32("flags", point.flags)
        .int64("startTimeUnixNano", point.start_time_unix_nano)
        .int64("timeUnixNano", point.time_unix_nano)
        .build()
}

/// `HistogramDataPoint`.
fn histogram_data_point(out: &mut Vec<u8>, point: &HistogramDataPoint) {
    Fields::new(out)
        .list("attributes", &point.attributes, key_value)
        .list("bucketCounts", &point.bucket_counts, int64_item)
        .int64("count", point.count)
        .list("exemplars", &point.exemplars, exemplar)
        .list("explicitBounds", &point.explicit_bounds, |out, bound| double(out, *bound))
        .int32("flags", point.flags)
        .opt_double("max", point.max)
        .opt_double("min", point.min)
        .int64("startTimeUnixNano", point.start_time_unix_nano)
        .opt_double("sum", point.sum)
        .int64("timeUnixNano", point.time_unix_nano)
        .build()
}

/// `ExponentialHistogramDataPoint`.
fn exponential_histogram_data_point(out: &mut Vec<u8>, point: &ExponentialHistogramDataPoint) {
    Fields::new(out)
        .list("attributes", &point.attributes, key_value)
        .int64("count", point.count)
        .list("exemplars", &point.exemplars, exemplar)
        .int32("flags", point.flags)
        .opt_double("max", point.max)
        .opt_double("min", point.min)
        .message("negative", point.negative.as_ref(), buckets)
        .message("positive", point.positive.as_ref(), buckets)
        .int32("scale", point.scale)
        .int64("startTimeUnixNano", point.start_time_unix_nano)
        .opt_double("sum", point.sum)
        .int64("timeUnixNano", point.time_unix_nano)
        .int64("zeroCount", point.zero_count)
        .double("zeroThreshold", point.zero_threshold)
        .build()
}

/// `ExponentialHistogramDataPoint.Buckets`.
fn buckets(out: &mut Vec<u8>, buckets: &Buckets) {
    Fields::new(out).list("bucketCounts", &buckets.bucket_counts, int64_item).int32("offset", buckets.offset).build()
}

/// `SummaryDataPoint`.
fn summary_data_point(out: &mut Vec<u8>, point: &SummaryDataPoint) {
    Fields::new(out)
        .list("attributes", &point.attributes, key_value)
        .int64("count", point.count)
        .int32("flags", point.flags)
        .list("quantileValues", &point.quantile_values, value_at_quantile)
        .int64("startTimeUnixNano", point.start_time_unix_nano)
        .double("sum", point.sum)
        .int64("timeUnixNano", point.time_unix_nano)
        .build()
}

/// `SummaryDataPoint.ValueAtQuantile`.
fn value_at_quantile(out: &mut Vec<u8>, item: &ValueAtQuantile) {
    Fields::new(out).double("quantile", item.quantile).double("value", item.value).build()
}

/// `Exemplar`: the value is written even when 0.
fn exemplar(out: &mut Vec<u8>, exemplar: &Exemplar) {
    let fields = match exemplar.value {
        None => Fields::new(out),
        Some(exemplar::Value::AsDouble(float)) => Fields::new(out).raw("asDouble", |out| double(out, float)),
        Some(exemplar::Value::AsInt(int)) => Fields::new(out).raw("asInt", |out| quoted_number(out, int)),
    };
    fields
        .list("filteredAttributes", &exemplar.filtered_attributes, key_value)
        .id("spanId", &exemplar.span_id)
        .int64("timeUnixNano", exemplar.time_unix_nano)
        .id("traceId", &exemplar.trace_id)
        .build()
}
