//! OTLP metrics to Prometheus series, per the OpenTelemetry "Prometheus and OpenMetrics Compatibility"
//! specification (<https://opentelemetry.io/docs/specs/otel/compatibility/prometheus_and_openmetrics/>):
//!
//! - **Names**: split on anything but ASCII letters, digits and `:`, joined with `_`; the unit's
//!   Prometheus word appended unless the name has it (`ms` -> `milliseconds`, `By` -> `bytes`,
//!   `a/b` -> `a_per_b`, `{annotations}` dropped); `_total` for monotonic cumulative sums; `_ratio`
//!   for gauges of unit `1`; a leading digit gets `_`.
//! - **Labels**: data-point attributes with invalid characters replaced by `_` (`key_` before a leading
//!   digit, `key` before a single leading `_`); attributes that collide are joined with `;` in key
//!   order; `job` = `service.namespace/service.name` (or `service.name`), `instance` =
//!   `service.instance.id`; `otel_scope_name`/`otel_scope_version`; every other resource attribute goes
//!   on a `target_info` series (value 1) per resource. Empty values mean no label.
//! - **Points**: gauges and sums as samples (cumulative sums only; a non-monotonic sum is a gauge);
//!   histograms as `_bucket{le}` (cumulative, with `+Inf`), `_sum`, `_count`; summaries as
//!   `{quantile}`, `_sum`, `_count`; times in milliseconds; a point flagged "no recorded value" is a
//!   Prometheus stale marker. Delta temporality and exponential histograms are dropped and counted.
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::{InstrumentationScope, KeyValue};
use crate::proto::metrics::v1::{AggregationTemporality, Metric, metric, number_data_point};
use crate::proto::resource::v1::Resource;

use super::labels::label_pairs;
use super::series::{Label, Sample, TimeSeries};

/// The NaN Prometheus reads as "this series ended" (`value.StaleNaN`).
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
/// OTLP's `DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`.
const NO_RECORDED_VALUE: u32 = 1;
/// Resource attributes that become `job` and `instance` rather than `target_info` labels.
const IDENTIFYING: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

/// How metric names are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// A prefix for every name.
    pub namespace: Option<String>,
    /// Unit, `_total` and `_ratio` suffixes.
    pub add_suffixes: bool,
}

/// Points a translation could not carry, by reason (the failure metric's label).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dropped(pub BTreeMap<&'static str, u64>);

impl Dropped {
    fn add(&mut self, reason: &'static str, points: usize) {
        if points > 0 {
            *self.0.entry(reason).or_default() += points as u64;
        }
    }
}

/// The series of `request`, labels sorted, samples of one series merged in timestamp order (a later
/// duplicate timestamp replaces an earlier one), series in label order.
pub fn translate(request: &ExportMetricsServiceRequest, naming: &Naming, dropped: &mut Dropped) -> Vec<TimeSeries> {
    let mut series = translate_selected(request, naming, dropped, &|_| true);
    series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
    series
}

/// [`translate`], but only the metrics for which `wanted` accepts one of the series names they give
/// (`x`; a histogram's `x_bucket`, `x_sum`, `x_count`; a summary's `x`, `x_sum`, `x_count`;
/// `target_info`): a reader that needs a few names skips building the rest. Series in no particular
/// order (readers that merge many requests order them once).
pub fn translate_selected(
    request: &ExportMetricsServiceRequest,
    naming: &Naming,
    dropped: &mut Dropped,
    wanted: &dyn Fn(&[&str]) -> bool,
) -> Vec<TimeSeries> {
    let mut out = SeriesSet::default();
    for resource_metrics in &request.resource_metrics {
        let identity = Identity::of(resource_metrics.resource.as_ref());
        let mut latest: Option<i64> = None;
        for scope_metrics in &resource_metrics.scope_metrics {
            let scope = scope_labels(scope_metrics.scope.as_ref());
            for metric in &scope_metrics.metrics {
                let base = Base { identity: &identity, scope: &scope };
                if let Some(at) = add_metric(&mut out, metric, &base, naming, dropped, wanted) {
                    latest = Some(latest.map_or(at, |seen| seen.max(at)));
                }
            }
        }
        if let (Some(at), false, true) =
            (latest, identity.info.is_empty(), wanted(&[&name_with(naming, "target_info")]))
        {
            let mut labels = identity.job_instance();
            labels.extend(identity.info.iter().cloned());
            out.add(name_with(naming, "target_info"), labels, at, 1.0);
        }
    }
    out.into_series()
}

/// What Prometheus's metadata API says of one metric family.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Family {
    /// The family's name (a histogram's series add `_bucket`, `_sum`, `_count`).
    pub name: String,
    /// `counter`, `gauge`, `histogram` or `summary`.
    pub kind: &'static str,
    /// The metric's description.
    pub help: String,
    /// The unit in Prometheus's words (`seconds`, `bytes_per_second`), empty when none.
    pub unit: String,
}

/// The families of the metrics of `request` that [`translate`] sends, named as it names them.
pub fn families(request: &ExportMetricsServiceRequest, naming: &Naming) -> Vec<Family> {
    let mut out = Vec::new();
    let metrics =
        request.resource_metrics.iter().flat_map(|resource| &resource.scope_metrics).flat_map(|scope| &scope.metrics);
    for metric in metrics {
        let Some(kind) = sent_kind(metric) else { continue };
        let unit = match unit_words(&metric.unit) {
            (Some(main), Some(per)) => format!("{main}_per_{per}"),
            (Some(main), None) => main,
            (None, Some(per)) => format!("per_{per}"),
            (None, None) => String::new(),
        };
        let type_name = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        };
        out.push(Family {
            name: metric_name(naming, metric, kind),
            kind: type_name,
            help: metric.description.clone(),
            unit,
        });
    }
    out
}

/// Whether a metric named `otlp_name` may give series named `prometheus_name` (without a namespace),
/// whatever its unit and kind: the words of its name (a counter's without `total`) begin the Prometheus
/// name, which only ever appends suffixes (unit, `per_...`, `total`, `ratio`, `bucket`, `sum`, `count`).
/// A reader that wants a few names uses it to skip the stored metrics that cannot be them.
pub fn may_produce(otlp_name: &str, prometheus_name: &str) -> bool {
    let tokens: Vec<&str> =
        otlp_name.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':')).filter(|token| !token.is_empty()).collect();
    let without_total: Vec<&str> = tokens.iter().copied().filter(|token| *token != "total").collect();
    [tokens.join("_"), without_total.join("_")].into_iter().filter(|base| !base.is_empty()).any(|mut base| {
        if base.starts_with(|c: char| c.is_ascii_digit()) {
            base.insert(0, '_');
        }
        prometheus_name == base || prometheus_name.strip_prefix(&base).is_some_and(|rest| rest.starts_with('_'))
    })
}

/// `job`, `instance` and the other resource labels of one resource.
struct Identity {
    job: Option<String>,
    instance: Option<String>,
    info: Vec<(String, String)>,
}

impl Identity {
    fn of(resource: Option<&Resource>) -> Identity {
        let attributes = resource.map_or(&[][..], |resource| &resource.attributes[..]);
        let text = |key: &str| {
            attributes
                .iter()
                .find(|attribute| attribute.key == key)
                .map(|attribute| crate::attributes::label_text(attribute.value.as_ref()))
                .filter(|value| !value.is_empty())
        };
        let job = match (text("service.namespace"), text("service.name")) {
            (Some(namespace), Some(name)) => Some(format!("{namespace}/{name}")),
            (None, name) => name,
            (Some(namespace), None) => Some(namespace),
        };
        let others: Vec<&KeyValue> =
            attributes.iter().filter(|attribute| !IDENTIFYING.contains(&attribute.key.as_str())).collect();
        Identity { job, instance: text("service.instance.id"), info: label_pairs(others) }
    }

    fn job_instance(&self) -> Vec<(String, String)> {
        let mut labels = Vec::new();
        if let Some(job) = &self.job {
            labels.push(("job".to_string(), job.clone()));
        }
        if let Some(instance) = &self.instance {
            labels.push(("instance".to_string(), instance.clone()));
        }
        labels
    }
}

/// What every series of one metric carries besides its point's attributes.
struct Base<'a> {
    identity: &'a Identity,
    scope: &'a [(String, String)],
}

impl Base<'_> {
    /// The labels of a point: its attributes, then scope, then `job`/`instance` (which win).
    fn labels(&self, attributes: &[KeyValue]) -> Vec<(String, String)> {
        let mut labels = label_pairs(attributes.iter().collect());
        labels.extend(self.scope.iter().cloned());
        labels.retain(|(name, _)| name != "job" && name != "instance");
        labels.extend(self.identity.job_instance());
        labels
    }
}

fn scope_labels(scope: Option<&InstrumentationScope>) -> Vec<(String, String)> {
    let Some(scope) = scope else { return Vec::new() };
    [("otel_scope_name", &scope.name), ("otel_scope_version", &scope.version)]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect()
}

/// Adds the series of one metric; the latest sample time it added, if any.
fn add_metric(
    out: &mut SeriesSet,
    metric: &Metric,
    base: &Base<'_>,
    naming: &Naming,
    dropped: &mut Dropped,
    wanted: &dyn Fn(&[&str]) -> bool,
) -> Option<i64> {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let mut latest = None;
    let mut note = |at: i64| latest = Some(latest.map_or(at, |seen: i64| seen.max(at)));
    if let Some(skipped) = unwanted(metric, naming, wanted) {
        return skipped;
    }
    match &metric.data {
        Some(metric::Data::Gauge(gauge)) => {
            let name = metric_name(naming, metric, Kind::Gauge);
            for point in &gauge.data_points {
                let at = millis(point.time_unix_nano);
                out.add(name.clone(), base.labels(&point.attributes), at, number(point.value.as_ref(), point.flags));
                note(at);
            }
        }
        Some(metric::Data::Sum(sum)) => {
            if sum.aggregation_temporality != cumulative {
                dropped.add("delta_temporality", sum.data_points.len());
                return None;
            }
            let kind = if sum.is_monotonic { Kind::Counter } else { Kind::Gauge };
            let name = metric_name(naming, metric, kind);
            for point in &sum.data_points {
                let at = millis(point.time_unix_nano);
                out.add(name.clone(), base.labels(&point.attributes), at, number(point.value.as_ref(), point.flags));
                note(at);
            }
        }
        Some(metric::Data::Histogram(histogram)) => {
            if histogram.aggregation_temporality != cumulative {
                dropped.add("delta_temporality", histogram.data_points.len());
                return None;
            }
            let name = metric_name(naming, metric, Kind::Histogram);
            for point in &histogram.data_points {
                let at = millis(point.time_unix_nano);
                let labels = base.labels(&point.attributes);
                let stale = point.flags & NO_RECORDED_VALUE != 0;
                let value = |value: f64| if stale { f64::from_bits(STALE_NAN) } else { value };
                let mut cumulative_count = 0u64;
                for (index, count) in point.bucket_counts.iter().enumerate() {
                    cumulative_count = cumulative_count.saturating_add(*count);
                    let le = point.explicit_bounds.get(index).map_or_else(|| "+Inf".to_string(), |bound| float(*bound));
                    if le == "+Inf" && index + 1 < point.bucket_counts.len() {
                        continue;
                    }
                    out.add(format!("{name}_bucket"), with(&labels, "le", le), at, value(cumulative_count as f64));
                }
                if point.bucket_counts.len() <= point.explicit_bounds.len() {
                    // No overflow bucket sent: `+Inf` is the total count.
                    out.add(
                        format!("{name}_bucket"),
                        with(&labels, "le", "+Inf".into()),
                        at,
                        value(point.count as f64),
                    );
                }
                if let Some(sum) = point.sum {
                    out.add(format!("{name}_sum"), labels.clone(), at, value(sum));
                }
                out.add(format!("{name}_count"), labels, at, value(point.count as f64));
                note(at);
            }
        }
        Some(metric::Data::Summary(summary)) => {
            let name = metric_name(naming, metric, Kind::Summary);
            for point in &summary.data_points {
                let at = millis(point.time_unix_nano);
                let labels = base.labels(&point.attributes);
                let stale = point.flags & NO_RECORDED_VALUE != 0;
                let value = |value: f64| if stale { f64::from_bits(STALE_NAN) } else { value };
                for quantile in &point.quantile_values {
                    out.add(
                        name.clone(),
                        with(&labels, "quantile", float(quantile.quantile)),
                        at,
                        value(quantile.value),
                    );
                }
                out.add(format!("{name}_sum"), labels.clone(), at, value(point.sum));
                out.add(format!("{name}_count"), labels, at, value(point.count as f64));
                note(at);
            }
        }
        Some(metric::Data::ExponentialHistogram(histogram)) => {
            dropped.add("exponential_histogram", histogram.data_points.len());
        }
        None => {}
    }
    latest
}

/// The kind of series `metric` gives, `None` when [`translate`] drops it (delta temporality,
/// exponential histograms, no data).
fn sent_kind(metric: &Metric) -> Option<Kind> {
    let cumulative = AggregationTemporality::Cumulative as i32;
    match &metric.data {
        Some(metric::Data::Gauge(_)) => Some(Kind::Gauge),
        Some(metric::Data::Sum(sum)) if sum.aggregation_temporality == cumulative => {
            Some(if sum.is_monotonic { Kind::Counter } else { Kind::Gauge })
        }
        Some(metric::Data::Histogram(histogram)) if histogram.aggregation_temporality == cumulative => {
            Some(Kind::Histogram)
        }
        Some(metric::Data::Summary(_)) => Some(Kind::Summary),
        _ => None,
    }
}

/// `Some(latest sample time)` when `wanted` accepts none of the series names `metric` gives (its
/// series are then not built, but its time still counts for `target_info`), `None` when it is wanted
/// or is not sent at all.
fn unwanted(metric: &Metric, naming: &Naming, wanted: &dyn Fn(&[&str]) -> bool) -> Option<Option<i64>> {
    let kind = sent_kind(metric)?;
    let times: Vec<u64> = match &metric.data {
        Some(metric::Data::Gauge(gauge)) => gauge.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(metric::Data::Sum(sum)) => sum.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(metric::Data::Histogram(histogram)) => histogram.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(metric::Data::Summary(summary)) => summary.data_points.iter().map(|p| p.time_unix_nano).collect(),
        _ => return None,
    };
    let name = metric_name(naming, metric, kind);
    let (sum, count) = (format!("{name}_sum"), format!("{name}_count"));
    let accepted = match kind {
        Kind::Gauge | Kind::Counter => wanted(&[&name]),
        Kind::Histogram => wanted(&[&format!("{name}_bucket"), &sum, &count]),
        Kind::Summary => wanted(&[&name, &sum, &count]),
    };
    (!accepted).then(|| times.into_iter().map(millis).max())
}

fn with(labels: &[(String, String)], name: &str, value: String) -> Vec<(String, String)> {
    let mut labels = labels.to_vec();
    labels.retain(|(existing, _)| existing != name);
    labels.push((name.to_string(), value));
    labels
}

fn number(value: Option<&number_data_point::Value>, flags: u32) -> f64 {
    if flags & NO_RECORDED_VALUE != 0 {
        return f64::from_bits(STALE_NAN);
    }
    match value {
        Some(number_data_point::Value::AsDouble(value)) => *value,
        Some(number_data_point::Value::AsInt(value)) => *value as f64,
        None => 0.0,
    }
}

fn millis(unix_nanos: u64) -> i64 {
    i64::try_from(unix_nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// A float as Prometheus writes `le` and `quantile`: shortest form, no exponent (Go's `'f', -1`).
fn float(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

fn name_with(naming: &Naming, name: &str) -> String {
    match naming.namespace.as_deref().filter(|namespace| !namespace.is_empty()) {
        Some(namespace) => format!("{namespace}_{name}"),
        None => name.to_string(),
    }
}

/// The Prometheus name of `metric`.
fn metric_name(naming: &Naming, metric: &Metric, kind: Kind) -> String {
    let mut tokens: Vec<String> = metric
        .name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|token| !token.is_empty())
        .map(str::to_string)
        .collect();
    if naming.add_suffixes {
        let (main, per) = unit_words(&metric.unit);
        if let Some(main) = main.filter(|main| !tokens.contains(main)) {
            tokens.push(main);
        }
        if let Some(per) = per.filter(|per| !tokens.contains(per)) {
            tokens.push("per".into());
            tokens.push(per);
        }
        if kind == Kind::Counter {
            tokens.retain(|token| token != "total");
            tokens.push("total".into());
        }
        if kind == Kind::Gauge && metric.unit == "1" && !tokens.iter().any(|token| token == "ratio") {
            tokens.push("ratio".into());
        }
    }
    let mut name = tokens.join("_");
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name_with(naming, &name)
}

/// The Prometheus words of a UCUM unit: the main unit and the "per" unit (`By/s` -> bytes, second).
fn unit_words(unit: &str) -> (Option<String>, Option<String>) {
    // Annotations (`{requests}`) carry no unit.
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let (main, per) = match plain.split_once('/') {
        Some((main, per)) => (main.trim(), Some(per.trim())),
        None => (plain.trim(), None),
    };
    let word = |text: &str, table: &dyn Fn(&str) -> Option<&'static str>| {
        if text.is_empty() || text == "1" {
            return None;
        }
        let word = table(text).map(str::to_string).unwrap_or_else(|| text.to_string());
        let word: String = word.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let word = word.trim_matches('_').to_string();
        (!word.is_empty()).then_some(word)
    };
    (word(main, &main_unit), per.and_then(|per| word(per, &per_unit)))
}

fn main_unit(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// Series being built, keyed by their sorted labels, samples in the order added.
#[derive(Default)]
struct SeriesSet(FxHashMap<Vec<Label>, Vec<(i64, f64)>>);

impl SeriesSet {
    fn add(&mut self, name: String, labels: Vec<(String, String)>, at: i64, value: f64) {
        let mut labels: Vec<Label> = labels
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| Label { name, value })
            .collect();
        labels.push(Label { name: "__name__".into(), value: name });
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        labels.dedup_by(|later, earlier| later.name == earlier.name);
        self.0.entry(labels).or_default().push((at, value));
    }

    /// The series, each one's samples by timestamp.
    fn into_series(self) -> Vec<TimeSeries> {
        self.0
            .into_iter()
            .map(|(labels, samples)| TimeSeries {
                labels,
                samples: by_timestamp(samples)
                    .into_iter()
                    .map(|(timestamp, value)| Sample { value, timestamp })
                    .collect(),
            })
            .collect()
    }
}

/// `samples` (timestamp, value) in timestamp order, one per timestamp: of samples with the same timestamp,
/// the one added last.
pub fn by_timestamp(mut samples: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    samples.sort_by_key(|(timestamp, _)| *timestamp);
    let mut kept: Vec<(i64, f64)> = Vec::with_capacity(samples.len());
    for (timestamp, value) in samples {
        match kept.last_mut() {
            Some(last) if last.0 == timestamp => last.1 = value,
            _ => kept.push((timestamp, value)),
        }
    }
    kept
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
