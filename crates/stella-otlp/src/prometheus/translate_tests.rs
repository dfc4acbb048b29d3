use crate::proto::common::v1::{AnyValue, InstrumentationScope, any_value};
use crate::proto::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};

use super::*;

const AT: u64 = 1_795_910_400_123_456_789;

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn point(value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: AT,
        value: Some(number_data_point::Value::AsDouble(value)),
        attributes,
        ..Default::default()
    }
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource { attributes: resource, ..Default::default() }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "shop.lib".into(),
                    version: "1.2".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric { name: name.into(), unit: unit.into(), data: Some(data), ..Default::default() }
}

fn sum(monotonic: bool, temporality: AggregationTemporality, points: Vec<NumberDataPoint>) -> metric::Data {
    metric::Data::Sum(Sum { data_points: points, aggregation_temporality: temporality as i32, is_monotonic: monotonic })
}

fn naming() -> Naming {
    Naming { namespace: None, add_suffixes: true }
}

/// `name{k="v",...} value @ms` lines, sorted: what the assertions compare.
fn lines(series: &[TimeSeries]) -> Vec<String> {
    series
        .iter()
        .flat_map(|series| {
            let labels: Vec<String> = series
                .labels
                .iter()
                .filter(|label| label.name != "__name__")
                .map(|label| format!("{}={:?}", label.name, label.value))
                .collect();
            let name = series.labels.iter().find(|label| label.name == "__name__").map(|label| label.value.clone());
            series.samples.iter().map(move |sample| {
                format!(
                    "{}{{{}}} {} @{}",
                    name.clone().unwrap_or_default(),
                    labels.join(","),
                    sample.value,
                    sample.timestamp
                )
            })
        })
        .collect()
}

fn service() -> Vec<KeyValue> {
    vec![
        attribute("service.name", "cart"),
        attribute("service.namespace", "shop"),
        attribute("service.instance.id", "cart-7"),
        attribute("host.name", "node-1"),
    ]
}

#[test]
fn names_get_unit_and_type_suffixes_per_the_compatibility_spec() {
    let gauge = |name: &str, unit: &str| {
        metric(name, unit, metric::Data::Gauge(Gauge { data_points: vec![point(1.0, vec![])] }))
    };
    let metrics = vec![
        metric(
            "http.server.request.count",
            "{request}",
            sum(true, AggregationTemporality::Cumulative, vec![point(3.0, vec![])]),
        ),
        metric("jobs.done_total", "1", sum(true, AggregationTemporality::Cumulative, vec![point(4.0, vec![])])),
        metric("queue.depth", "{item}", sum(false, AggregationTemporality::Cumulative, vec![point(5.0, vec![])])),
        gauge("cpu.utilization", "1"),
        gauge("memory.usage", "By"),
        gauge("network.io.rate", "By/s"),
        gauge("request.latency.milliseconds", "ms"),
        gauge("2xx.responses", ""),
    ];
    let names: Vec<String> = translate(&request(vec![], metrics), &naming(), &mut Dropped::default())
        .iter()
        .filter_map(|series| {
            series.labels.iter().find(|label| label.name == "__name__").map(|label| label.value.clone())
        })
        .collect();
    let mut expected = vec![
        "http_server_request_count_total",
        "jobs_done_total",
        "queue_depth",
        "cpu_utilization_ratio",
        "memory_usage_bytes",
        "network_io_rate_bytes_per_second",
        "request_latency_milliseconds",
        "_2xx_responses",
    ];
    expected.sort_unstable();
    let mut names = names;
    names.sort_unstable();
    assert_eq!(names, expected);
    let plain = Naming { namespace: Some("edge".into()), add_suffixes: false };
    let series = translate(&request(vec![], vec![gauge("memory.usage", "By")]), &plain, &mut Dropped::default());
    assert_eq!(
        lines(&series),
        vec![r#"edge_memory_usage{otel_scope_name="shop.lib",otel_scope_version="1.2"} 1 @1795910400123"#]
    );
}

#[test]
fn histograms_become_cumulative_buckets_with_inf_sum_and_count() {
    let histogram = metric(
        "http.server.duration",
        "ms",
        metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: AT,
                count: 10,
                sum: Some(1234.5),
                bucket_counts: vec![2, 3, 4, 1],
                explicit_bounds: vec![5.0, 10.0, 1000.0],
                attributes: vec![attribute("http.method", "GET")],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    );
    let series = translate(&request(service(), vec![histogram]), &naming(), &mut Dropped::default());
    let common = r#"http_method="GET",instance="cart-7",job="shop/cart""#;
    let scope = r#"otel_scope_name="shop.lib",otel_scope_version="1.2""#;
    let mut expected = vec![
        format!(r#"http_server_duration_milliseconds_bucket{{{common},le="5",{scope}}} 2 @1795910400123"#),
        format!(r#"http_server_duration_milliseconds_bucket{{{common},le="10",{scope}}} 5 @1795910400123"#),
        format!(r#"http_server_duration_milliseconds_bucket{{{common},le="1000",{scope}}} 9 @1795910400123"#),
        format!(r#"http_server_duration_milliseconds_bucket{{{common},le="+Inf",{scope}}} 10 @1795910400123"#),
        format!(r#"http_server_duration_milliseconds_sum{{{common},{scope}}} 1234.5 @1795910400123"#),
        format!(r#"http_server_duration_milliseconds_count{{{common},{scope}}} 10 @1795910400123"#),
        r#"target_info{host_name="node-1",instance="cart-7",job="shop/cart"} 1 @1795910400123"#.to_string(),
    ];
    expected.sort();
    let mut got = lines(&series);
    got.sort();
    assert_eq!(got, expected);
    for series in &series {
        let names: Vec<&str> = series.labels.iter().map(|label| label.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "labels are sorted by name");
    }
}

#[test]
fn label_names_are_sanitised_and_collisions_joined_in_key_order() {
    let attributes = vec![
        attribute("a_b", "second"),
        attribute("a.b", "first"),
        attribute("0zone", "z"),
        attribute("_private", "p"),
        attribute("__reserved", "r"),
        attribute("empty", ""),
        attribute("job", "overridden"),
    ];
    let gauge = metric("g", "", metric::Data::Gauge(Gauge { data_points: vec![point(7.0, attributes)] }));
    let series =
        translate(&request(vec![attribute("service.name", "cart")], vec![gauge]), &naming(), &mut Dropped::default());
    assert_eq!(
        lines(&series),
        vec![
            r#"g{__reserved="r",a_b="first;second",job="cart",key_0zone="z",key_private="p",otel_scope_name="shop.lib",otel_scope_version="1.2"} 7 @1795910400123"#
        ]
    );
}

#[test]
fn delta_and_exponential_points_are_dropped_and_counted_and_no_value_is_a_stale_marker() {
    use crate::proto::metrics::v1::{ExponentialHistogram, ExponentialHistogramDataPoint};
    let mut stale = point(1.0, vec![]);
    stale.flags = NO_RECORDED_VALUE;
    let metrics = vec![
        metric(
            "delta.count",
            "",
            sum(true, AggregationTemporality::Delta, vec![point(1.0, vec![]), point(2.0, vec![])]),
        ),
        metric(
            "exp",
            "",
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint::default()],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        ),
        metric("gone", "", metric::Data::Gauge(Gauge { data_points: vec![stale] })),
    ];
    let mut dropped = Dropped::default();
    let series = translate(&request(vec![], metrics), &naming(), &mut dropped);
    assert_eq!(dropped.0, BTreeMap::from([("delta_temporality", 2), ("exponential_histogram", 1)]));
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].samples[0].value.to_bits(), STALE_NAN);
}

#[test]
fn points_of_one_series_merge_in_time_order() {
    let mut early = point(1.0, vec![]);
    early.time_unix_nano = AT - 5_000_000_000;
    let late = point(2.0, vec![]);
    let metrics = vec![metric("g", "", metric::Data::Gauge(Gauge { data_points: vec![late, early] }))];
    let series = translate(&request(vec![], metrics), &naming(), &mut Dropped::default());
    let samples: Vec<(i64, f64)> = series[0].samples.iter().map(|sample| (sample.timestamp, sample.value)).collect();
    assert_eq!(samples, vec![(1_795_910_395_123, 1.0), (1_795_910_400_123, 2.0)]);
}

#[test]
fn a_selected_translation_builds_only_the_wanted_names_and_families_name_them_alike() {
    let later = NumberDataPoint { time_unix_nano: AT + 5_000_000_000, ..point(1.0, vec![]) };
    let metrics = vec![
        metric("queue.depth", "", metric::Data::Gauge(Gauge { data_points: vec![point(3.0, vec![])] })),
        metric("jobs.done", "", sum(true, AggregationTemporality::Cumulative, vec![later])),
    ];
    let request = request(service(), metrics);
    let only = |wanted: &[&str]| {
        let wanted: Vec<String> = wanted.iter().map(|name| name.to_string()).collect();
        let series = translate_selected(&request, &naming(), &mut Dropped::default(), &|names| {
            names.iter().any(|name| wanted.iter().any(|want| want == name))
        });
        lines(&series)
    };
    assert_eq!(
        only(&["queue_depth"]),
        vec![
            r#"queue_depth{instance="cart-7",job="shop/cart",otel_scope_name="shop.lib",otel_scope_version="1.2"} 3 @1795910400123"#
        ]
    );
    // target_info keeps the latest time of the resource's metrics, the skipped ones included.
    assert_eq!(
        only(&["target_info"]),
        vec![r#"target_info{host_name="node-1",instance="cart-7",job="shop/cart"} 1 @1795910405123"#]
    );
    assert_eq!(only(&[]), Vec::<String>::new());
    let everything = translate(&request, &naming(), &mut Dropped::default());
    assert_eq!(everything.len(), 3);
    let families = families(&request, &naming());
    let names: Vec<(&str, &str)> = families.iter().map(|family| (family.name.as_str(), family.kind)).collect();
    assert_eq!(names, vec![("queue_depth", "gauge"), ("jobs_done_total", "counter")]);
}

#[test]
fn every_series_name_a_metric_gives_is_one_it_may_produce_and_others_are_not() {
    let histogram = Histogram {
        data_points: vec![HistogramDataPoint {
            time_unix_nano: AT,
            count: 1,
            bucket_counts: vec![1],
            ..Default::default()
        }],
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
    };
    let gauge = |name: &str, unit: &str| {
        metric(name, unit, metric::Data::Gauge(Gauge { data_points: vec![point(1.0, vec![])] }))
    };
    let metrics = vec![
        metric("http.server.duration", "ms", metric::Data::Histogram(histogram)),
        metric("jobs.total.done", "", sum(true, AggregationTemporality::Cumulative, vec![point(1.0, vec![])])),
        metric("requests", "{request}/s", sum(true, AggregationTemporality::Cumulative, vec![point(1.0, vec![])])),
        gauge("cpu.utilization", "1"),
        gauge("9lives", "By"),
    ];
    for metric in &metrics {
        let series = translate(&request(vec![], vec![metric.clone()]), &naming(), &mut Dropped::default());
        assert!(!series.is_empty());
        for one in series {
            let name = &one.labels.iter().find(|label| label.name == "__name__").unwrap().value;
            assert!(may_produce(&metric.name, name), "{} gives {name}", metric.name);
        }
    }
    assert!(may_produce("jobs.total.done", "jobs_done_total") && may_produce("9lives", "_9lives_bytes"));
    assert!(!may_produce("http.server.duration", "http_server_requests_total"));
    assert!(!may_produce("http.server", "http_serverless"));
    assert!(!may_produce("queue", "queue2"));
}

#[test]
fn samples_are_put_in_time_order_and_a_timestamp_sent_twice_keeps_its_last_value() {
    let samples = vec![(30, 3.0), (10, 1.0), (30, 4.0), (20, 2.0), (10, 5.0)];
    assert_eq!(by_timestamp(samples), vec![(10, 5.0), (20, 2.0), (30, 4.0)]);
    assert!(by_timestamp(Vec::new()).is_empty());
}
