//! What the store needs to know about one logged record: its time range, item count, services and (for
//! traces) trace ids, read from the OTLP request once when the record is sealed.
use std::collections::BTreeSet;

use stella_otlp::proto::common::v1::KeyValue;
use stella_otlp::proto::logs::v1::LogRecord;
use stella_otlp::proto::metrics::v1::Metric;
use stella_otlp::proto::metrics::v1::metric::Data;
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::{OtlpRequest, Signal};

/// The service of a resource without `service.name`.
pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";

/// Facts of one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFacts {
    /// Earliest item time, unix nanoseconds (0 when no item has one).
    pub min_time: u64,
    /// Latest item time, unix nanoseconds.
    pub max_time: u64,
    /// Spans, data points or log records.
    pub items: u64,
    /// `service.name` of its resources.
    pub services: BTreeSet<String>,
    /// Trace ids of its spans (traces only).
    pub trace_ids: BTreeSet<[u8; 16]>,
    /// The redaction profiles its resources passed (`stella.redaction.profile`: `name@sha256:<hex>`).
    pub redaction_profiles: BTreeSet<String>,
}

/// Reads the facts of a logged record of `signal`; `None` if it does not decode.
pub fn record_facts(signal: Signal, payload: &[u8]) -> Option<RecordFacts> {
    OtlpRequest::decode_protobuf(signal, payload).ok().map(|request| request_facts(&request))
}

/// The facts of a decoded request.
pub(crate) fn request_facts(request: &OtlpRequest) -> RecordFacts {
    let mut facts = RecordFacts { min_time: u64::MAX, ..RecordFacts::default() };
    let time = |facts: &mut RecordFacts, start: u64, end: u64| {
        let earliest = if start > 0 { start } else { end };
        if earliest > 0 {
            facts.min_time = facts.min_time.min(earliest);
        }
        facts.max_time = facts.max_time.max(end.max(start));
    };
    match request {
        OtlpRequest::Traces(request) => {
            for group in &request.resource_spans {
                service(&mut facts, group.resource.as_ref());
                for span in group.scope_spans.iter().flat_map(|scope| &scope.spans) {
                    facts.items += 1;
                    time(&mut facts, span.start_time_unix_nano, span.end_time_unix_nano);
                    if let Ok(id) = <[u8; 16]>::try_from(span.trace_id.as_slice()) {
                        facts.trace_ids.insert(id);
                    }
                }
            }
        }
        OtlpRequest::Logs(request) => {
            for group in &request.resource_logs {
                service(&mut facts, group.resource.as_ref());
                for log in group.scope_logs.iter().flat_map(|scope| &scope.log_records) {
                    facts.items += 1;
                    let at = log_time(log);
                    time(&mut facts, at, at);
                }
            }
        }
        OtlpRequest::Metrics(request) => {
            for group in &request.resource_metrics {
                service(&mut facts, group.resource.as_ref());
                for metric in group.scope_metrics.iter().flat_map(|scope| &scope.metrics) {
                    for (_, at) in data_points(metric) {
                        facts.items += 1;
                        time(&mut facts, at, at);
                    }
                }
            }
        }
    }
    if facts.min_time == u64::MAX {
        facts.min_time = 0;
    }
    facts
}

/// The time of a log record: its event time, else the time it was observed.
pub(crate) fn log_time(log: &LogRecord) -> u64 {
    if log.time_unix_nano > 0 { log.time_unix_nano } else { log.observed_time_unix_nano }
}

/// The attributes and time of every data point of `metric`, whatever its type.
pub(crate) fn data_points(metric: &Metric) -> Vec<(&[KeyValue], u64)> {
    match &metric.data {
        Some(Data::Gauge(gauge)) => {
            gauge.data_points.iter().map(|point| (&point.attributes[..], point.time_unix_nano)).collect()
        }
        Some(Data::Sum(sum)) => {
            sum.data_points.iter().map(|point| (&point.attributes[..], point.time_unix_nano)).collect()
        }
        Some(Data::Histogram(histogram)) => {
            histogram.data_points.iter().map(|point| (&point.attributes[..], point.time_unix_nano)).collect()
        }
        Some(Data::ExponentialHistogram(histogram)) => {
            histogram.data_points.iter().map(|point| (&point.attributes[..], point.time_unix_nano)).collect()
        }
        Some(Data::Summary(summary)) => {
            summary.data_points.iter().map(|point| (&point.attributes[..], point.time_unix_nano)).collect()
        }
        None => Vec::new(),
    }
}

fn service(facts: &mut RecordFacts, resource: Option<&Resource>) {
    facts.services.insert(stella_otlp::attributes::service_name(resource).unwrap_or(UNKNOWN_SERVICE).to_string());
    let attributes = resource.map_or(&[][..], |resource| &resource.attributes[..]);
    if let Some(profile) = stella_otlp::attributes::get_str(attributes, stella_otlp::attributes::REDACTION_PROFILE) {
        facts.redaction_profiles.insert(profile.to_string());
    }
}
