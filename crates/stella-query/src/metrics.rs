//! Metric series: the points of one metric name, by label set, raw and step-aligned.
use std::collections::BTreeMap;

use stella_otlp::attributes::label_text;
use stella_otlp::proto::common::v1::KeyValue;
use stella_otlp::proto::metrics::v1::{NumberDataPoint, metric::Data, number_data_point};
use stella_otlp::{OtlpRequest, Signal, attributes};

use crate::{ScanFilter, StoreError, StoreView, scan};

/// Points gathered at most per query.
pub const SCAN_CAP: usize = 100_000;

/// A metric query.
#[derive(Debug, Clone)]
pub struct MetricQuery {
    /// The metric name (gauges and sums; a histogram as `<name>_count` and `<name>_sum`).
    pub name: String,
    /// Labels (data-point attributes plus `service.name`) a series must have, with these values.
    pub labels: Vec<(String, String)>,
    /// The time range, unix nanos, inclusive.
    pub range: (u64, u64),
    /// With a step (nanos), one point per step too: the last value at or before each step time.
    pub step: Option<u64>,
}

/// A label set: data-point attributes plus `service.name`.
pub type Labels = BTreeMap<String, String>;

/// One series of a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: Labels,
    /// Its raw points (unix nanos, value), by time, one per time.
    pub points: Vec<(u64, f64)>,
    /// With a step: the last value at or before each step time (steps before the first point left out).
    pub steps: Option<Vec<(u64, f64)>>,
}

/// The series of `query.name` of `tenant` whose labels match, at most [`SCAN_CAP`] points gathered.
pub fn series(view: &dyn StoreView, tenant: &str, query: &MetricQuery) -> Result<Vec<Series>, StoreError> {
    let (start, end) = query.range;
    let mut found: BTreeMap<Labels, Vec<(u64, f64)>> = BTreeMap::new();
    let mut points = 0usize;
    let filter = ScanFilter { metric: Some(&query.name), labels: &query.labels, ..ScanFilter::default() };
    scan(view, tenant, Signal::Metrics, query.range, filter, &mut |record| {
        let Ok(OtlpRequest::Metrics(request)) = OtlpRequest::decode_protobuf(Signal::Metrics, record) else {
            return true;
        };
        for group in &request.resource_metrics {
            let service = attributes::service_name(group.resource.as_ref()).map(str::to_string);
            for metric in group.scope_metrics.iter().flat_map(|scope| &scope.metrics) {
                let mut add = |suffix: &str, attributes: &[KeyValue], at: u64, value: f64| {
                    if format!("{}{suffix}", metric.name) != query.name || at < start || at > end {
                        return;
                    }
                    let mut key: Labels = attributes
                        .iter()
                        .map(|attribute| (attribute.key.clone(), label_text(attribute.value.as_ref())))
                        .collect();
                    if let Some(service) = &service {
                        key.insert("service.name".into(), service.clone());
                    }
                    if query.labels.iter().all(|(label, wanted)| key.get(label) == Some(wanted)) {
                        found.entry(key).or_default().push((at, value));
                        points += 1;
                    }
                };
                match &metric.data {
                    Some(Data::Gauge(gauge)) => gauge
                        .data_points
                        .iter()
                        .for_each(|point| add("", &point.attributes, point.time_unix_nano, number(point))),
                    Some(Data::Sum(sum)) => sum
                        .data_points
                        .iter()
                        .for_each(|point| add("", &point.attributes, point.time_unix_nano, number(point))),
                    Some(Data::Histogram(histogram)) => histogram.data_points.iter().for_each(|point| {
                        add("_count", &point.attributes, point.time_unix_nano, point.count as f64);
                        add("_sum", &point.attributes, point.time_unix_nano, point.sum.unwrap_or(f64::NAN));
                    }),
                    _ => {}
                }
            }
        }
        points < SCAN_CAP
    })?;
    Ok(found
        .into_iter()
        .map(|(labels, mut raw)| {
            raw.sort_by_key(|(at, _)| *at);
            raw.dedup_by_key(|(at, _)| *at);
            let steps = query.step.map(|step| aligned(&raw, query.range, step));
            Series { labels, points: raw, steps }
        })
        .collect())
}

fn number(point: &NumberDataPoint) -> f64 {
    match point.value {
        Some(number_data_point::Value::AsDouble(value)) => value,
        Some(number_data_point::Value::AsInt(value)) => value as f64,
        None => f64::NAN,
    }
}

/// The last value at or before each step time from `start` to `end`.
fn aligned(raw: &[(u64, f64)], (start, end): (u64, u64), step: u64) -> Vec<(u64, f64)> {
    let mut aligned = Vec::new();
    let mut at = start;
    while at <= end {
        if let Some((_, value)) = raw.iter().take_while(|(time, _)| *time <= at).last() {
            aligned.push((at, *value));
        }
        match at.checked_add(step) {
            Some(next) => at = next,
            None => break,
        }
    }
    aligned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_take_the_last_value_at_or_before_each_step_time() {
        let raw = [(10, 1.0), (25, 2.0), (40, 3.0)];
        assert_eq!(aligned(&raw, (0, 50), 10), [(10, 1.0), (20, 1.0), (30, 2.0), (40, 3.0), (50, 3.0)]);
    }
}
