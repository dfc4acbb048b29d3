use stella_metrics::Registry;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::metrics::v1::metric::Data;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use stella_otlp::{Ack, Batch};

use super::*;

fn config(yaml: &str) -> SpanMetricsConfig {
    match serde_saphyr::from_str(yaml) {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    }
}

fn span(name: &str, millis: u64, error: bool, tier: Option<&str>) -> Span {
    Span {
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 1_000_000_000 + millis * 1_000_000,
        status: error.then(|| Status { code: 2, message: String::new() }),
        attributes: tier.map(|tier| vec![stella_otlp::attributes::string("tier", tier)]).unwrap_or_default(),
        ..Default::default()
    }
}

fn batch(tenant: &str, service: &str, spans: Vec<Span>) -> Batch {
    let request = OtlpRequest::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![stella_otlp::attributes::string("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    });
    Batch::new(tenant.into(), request, Ack::new().0)
}

fn stage(yaml: &str, registry: &Registry) -> SpanMetrics {
    let overflow = registry.counter("telemetry_spanmetrics_overflow_spans_total", "Spans folded.", &[]).with(&[]);
    SpanMetrics::new("spanmetrics".into(), config(yaml), 7, overflow)
}

/// (service, metric, attributes as "k=v,...", value or count).
fn points(request: &ExportMetricsServiceRequest) -> Vec<(String, String, String, u64)> {
    let mut out = Vec::new();
    for group in &request.resource_metrics {
        let service =
            string_value(&group.resource.as_ref().map(|r| r.attributes.clone()).unwrap_or_default(), "service.name")
                .unwrap_or_default();
        for metric in group.scope_metrics.iter().flat_map(|scope| &scope.metrics) {
            let render = |attributes: &[KeyValue]| {
                attributes
                    .iter()
                    .map(|a| format!("{}={}", a.key, string_value(std::slice::from_ref(a), &a.key).unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            match &metric.data {
                Some(Data::Sum(sum)) => out.extend(sum.data_points.iter().map(|point| {
                    let value = match point.value {
                        Some(number_data_point::Value::AsInt(value)) => value as u64,
                        _ => 0,
                    };
                    (service.clone(), metric.name.clone(), render(&point.attributes), value)
                })),
                Some(Data::Histogram(histogram)) => out.extend(histogram.data_points.iter().map(|point| {
                    assert_eq!(point.bucket_counts.iter().sum::<u64>(), point.count);
                    assert_eq!(point.start_time_unix_nano, 7);
                    (service.clone(), metric.name.clone(), render(&point.attributes), point.count)
                })),
                _ => {}
            }
        }
    }
    out
}

#[test]
fn calls_and_durations_are_counted_per_service_operation_and_status() {
    let registry = Registry::default();
    let stage =
        stage("dimensions: [{name: tier, default: none}]\nhistogram: {explicit: {buckets: [10ms, 100ms]}}", &registry);
    let mut first = batch(
        "acme",
        "checkout",
        vec![span("pay", 5, false, Some("gold")), span("pay", 50, false, Some("gold")), span("pay", 500, true, None)],
    );
    assert!(stage.process(&mut first).is_empty());
    let mut other = batch("globex", "search", vec![span("find", 1, false, None)]);
    stage.process(&mut other);
    let snapshot = stage.snapshot(99);
    assert_eq!(
        snapshot.iter().map(|(tenant, _)| tenant.as_str()).collect::<Vec<_>>(),
        vec!["acme", "globex"],
        "per tenant"
    );
    let acme = points(&snapshot[0].1);
    let calls: Vec<_> = acme.iter().filter(|point| point.1 == "traces.span.metrics.calls").cloned().collect();
    assert_eq!(
        calls,
        vec![
            (
                "checkout".into(),
                "traces.span.metrics.calls".into(),
                "span.name=pay,span.kind=SPAN_KIND_SERVER,status.code=STATUS_CODE_ERROR,tier=none".into(),
                1
            ),
            (
                "checkout".into(),
                "traces.span.metrics.calls".into(),
                "span.name=pay,span.kind=SPAN_KIND_SERVER,status.code=STATUS_CODE_UNSET,tier=gold".into(),
                2
            ),
        ]
    );
    let histogram = snapshot[0].1.resource_metrics[0].scope_metrics[0].metrics[1].clone();
    let Some(Data::Histogram(histogram)) = histogram.data else { panic!("not a histogram") };
    let ok = &histogram.data_points[1];
    assert_eq!((ok.explicit_bounds.clone(), ok.bucket_counts.clone()), (vec![0.01, 0.1], vec![1, 1, 0]));
    assert!((ok.sum.unwrap_or_default() - 0.055).abs() < 1e-9);
    assert_eq!(histogram.aggregation_temporality, AggregationTemporality::Cumulative as i32);
    // Cumulative: a second snapshot after more spans counts on.
    stage.process(&mut batch("acme", "checkout", vec![span("pay", 500, true, None)]));
    let again = points(&stage.snapshot(100)[0].1);
    assert!(
        again.iter().any(|point| point.2.contains("STATUS_CODE_ERROR") && point.1.ends_with("calls") && point.3 == 2)
    );
}

#[test]
fn series_past_the_cardinality_limit_fold_into_an_overflow_series() {
    let registry = Registry::default();
    let stage = stage("aggregation_cardinality_limit: 3", &registry);
    let spans = (0..10).map(|index| span(&format!("GET /users/{index}"), 1, false, None)).collect();
    stage.process(&mut batch("acme", "api", spans));
    let calls: Vec<_> =
        points(&stage.snapshot(1)[0].1).into_iter().filter(|point| point.1.ends_with("calls")).collect();
    assert_eq!(calls.len(), 4, "3 series and the overflow: {calls:?}");
    assert!(calls.iter().any(|point| point.2 == "otel.metric.overflow=true" && point.3 == 7));
    assert!(registry.encode().contains("telemetry_spanmetrics_overflow_spans_total 7"));
}

#[test]
fn settings_are_checked() {
    let problems = config("histogram: {explicit: {buckets: [100ms, 10ms]}}\nmetrics_flush_interval: 0s").problems();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(serde_saphyr::from_str::<SpanMetricsConfig>("histogram: {explicit: {buckets: [soon]}}").is_err());
}
