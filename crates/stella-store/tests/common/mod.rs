//! Fixtures of the store's integration tests: OTLP records of each signal, sealing into a store, and the
//! matching items of a scan, computed as the searches compute them.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;
use stella_otlp::attributes::label_text;
use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, any_value};
use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use stella_otlp::proto::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use stella_otlp::{OtlpRequest, Signal, attributes};
use stella_store::chunks::{ScanFilter, SealLimits, Sealer, Store};

pub const SECOND: u64 = 1_000_000_000;
pub const DAY: u64 = 86_400 * SECOND;
/// 2026-11-29T00:00:00Z in unix nanoseconds.
pub const START: u64 = 1_795_910_400 * SECOND;
pub const TENANT: &str = "acme";

fn resource(service: &str, extra: &[(&str, &str)]) -> Option<Resource> {
    let mut attributes = vec![attributes::string("service.name", service)];
    attributes.extend(extra.iter().map(|(key, value)| attributes::string(key, value)));
    Some(Resource { attributes, ..Default::default() })
}

/// One span of trace `trace` (span id `span`) of `service`, lasting 1 ms from `at`.
pub fn span(trace: u32, span: u32, service: &str, at: u64) -> Vec<u8> {
    let mut trace_id = [0u8; 16];
    trace_id[12..].copy_from_slice(&trace.to_be_bytes());
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service, &[]),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: trace_id.to_vec(),
                    span_id: u64::from(span + 1).to_be_bytes().to_vec(),
                    name: format!("op-{span}"),
                    start_time_unix_nano: at,
                    end_time_unix_nano: at + 1_000_000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// One log record of `service` in `environment` (`deployment.environment.name`).
pub fn log(service: &str, environment: &str, severity: i32, at: u64, body: &str) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(service, &[("deployment.environment.name", environment)]),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: at,
                    severity_number: severity,
                    body: Some(AnyValue { value: Some(any_value::Value::StringValue(body.into())) }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// One gauge point of metric `name` with label `queue` from `service`.
pub fn gauge(name: &str, queue: &str, service: &str, at: u64, value: i64) -> Vec<u8> {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(service, &[]),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![attributes::string("queue", queue)],
                            time_unix_nano: at,
                            value: Some(number_data_point::Value::AsInt(value)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Seals `records` of `signal` into `store` (the open chunk's records stay unsealed).
pub fn seal(store: &Store, signal: Signal, records: &[Vec<u8>], max_records: usize) {
    let mut sealer = Sealer::new(TENANT, signal, SealLimits { max_records, max_bytes: 1 << 24 });
    for (seq, payload) in records.iter().enumerate() {
        for chunk in sealer.add(seq as u64, payload.clone()).unwrap() {
            store.write(&chunk).unwrap();
        }
    }
}

/// Every file under `root`, by relative path.
pub fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The items of `record` that `filter` and `range` want, as text, tested as the searches test them.
pub fn matching_items(signal: Signal, record: &[u8], filter: &ScanFilter<'_>, (start, end): (u64, u64)) -> Vec<String> {
    let mut found = Vec::new();
    match OtlpRequest::decode_protobuf(signal, record).unwrap() {
        OtlpRequest::Traces(request) => {
            for group in &request.resource_spans {
                let service = attributes::service_name(group.resource.as_ref()).unwrap_or("unknown_service");
                for span in group.scope_spans.iter().flat_map(|scope| &scope.spans) {
                    if filter.service.is_none_or(|wanted| wanted == service)
                        && span.end_time_unix_nano >= start
                        && span.start_time_unix_nano <= end
                    {
                        found.push(format!("{} {}", hex::encode(&span.trace_id), hex::encode(&span.span_id)));
                    }
                }
            }
        }
        OtlpRequest::Logs(request) => {
            for group in &request.resource_logs {
                let service = attributes::service_name(group.resource.as_ref()).unwrap_or("unknown_service");
                for log in group.scope_logs.iter().flat_map(|scope| &scope.log_records) {
                    let at = if log.time_unix_nano > 0 { log.time_unix_nano } else { log.observed_time_unix_nano };
                    if filter.service.is_none_or(|wanted| wanted == service)
                        && filter.severity_min.is_none_or(|least| log.severity_number >= least)
                        && at >= start
                        && at <= end
                    {
                        found.push(format!("{at} {service} {} {}", log.severity_number, label_text(log.body.as_ref())));
                    }
                }
            }
        }
        OtlpRequest::Metrics(request) => {
            for group in &request.resource_metrics {
                let service = attributes::service_name(group.resource.as_ref());
                for metric in group.scope_metrics.iter().flat_map(|scope| &scope.metrics) {
                    let Some(metric::Data::Gauge(gauge)) = &metric.data else { continue };
                    for point in &gauge.data_points {
                        let mut labels: BTreeMap<String, String> = point
                            .attributes
                            .iter()
                            .map(|attribute| (attribute.key.clone(), label_text(attribute.value.as_ref())))
                            .collect();
                        if let Some(service) = service {
                            labels.insert("service.name".into(), service.into());
                        }
                        let at = point.time_unix_nano;
                        let service_label = labels.get("service.name").map_or("unknown_service", String::as_str);
                        if filter.metric.is_none_or(|wanted| wanted == metric.name)
                            && filter.service.is_none_or(|wanted| wanted == service_label)
                            && filter.labels.iter().all(|(label, value)| labels.get(label) == Some(value))
                            && at >= start
                            && at <= end
                        {
                            found.push(format!("{at} {} {labels:?}", metric.name));
                        }
                    }
                }
            }
        }
    }
    found
}

/// The items a scan with `filter` finds, sorted.
pub fn scan_items(store: &Store, signal: Signal, range: (u64, u64), filter: ScanFilter<'_>) -> Vec<String> {
    let mut found = Vec::new();
    store
        .scan(TENANT, signal.as_str(), range, filter, &mut |record| {
            found.extend(matching_items(signal, record, &filter, range));
            true
        })
        .unwrap();
    found.sort();
    found
}
