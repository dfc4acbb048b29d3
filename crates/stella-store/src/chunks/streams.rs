//! Streams: the label sets an index shard lists for each chunk, read from the OTLP requests, and the
//! [`ScanFilter`] a scan tests them against.
//!
//! | signal | stream name | stream labels |
//! |---|---|---|
//! | traces | `service.name` | none (the service/time shard) |
//! | logs | `service.name` | `severity_number`, and the [`LOG_STREAM_RESOURCE_ATTRIBUTES`] the resource has |
//! | metrics | metric name | the data point's attributes, plus the resource's `service.name` when it has one |
//!
//! A stream's time range uses the times the searches test, so a shard never rules out a chunk holding a
//! matching item: a span covers `[start, max(start, end)]`, a log record its time (else its observed
//! time), a data point its time. Label values are the text [`stella_otlp::attributes::label_text`] gives, the text the searches
//! compare `attr.k=v` and `label.k=v` with. A resource without `service.name` counts as
//! `unknown_service` (as in chunk manifests), except in metric labels, where the search leaves the label
//! out.
use std::collections::BTreeMap;

use stella_otlp::attributes::label_text;
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::{OtlpRequest, Signal, attributes};

use super::facts::{UNKNOWN_SERVICE, data_points, log_time};

/// Resource attributes that label a log stream besides `service.name` and the severity: attributes of
/// where the service runs, few distinct values per day.
pub const LOG_STREAM_RESOURCE_ATTRIBUTES: [&str; 3] =
    ["deployment.environment.name", "service.namespace", "k8s.namespace.name"];

/// The log stream label holding its records' severity number (`0` unspecified, `1`-`24`).
pub const SEVERITY_LABEL: &str = "severity_number";

/// The metric series label naming the resource's service.
const SERVICE_LABEL: &str = "service.name";

/// One stream: a name and labels sorted by label name, each label once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey {
    /// `service.name` (traces, logs) or the metric name (metrics).
    pub name: String,
    /// Label names and values, sorted by name, distinct names.
    pub labels: Vec<(String, String)>,
}

impl StreamKey {
    /// The value of label `name`, if the stream has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(label, _)| label.as_str().cmp(name))
            .ok()
            .and_then(|at| self.labels.get(at))
            .map(|(_, value)| value.as_str())
    }
}

/// The items of one stream in one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Earliest item time, unix nanoseconds.
    pub min_time: u64,
    /// Latest item time, unix nanoseconds.
    pub max_time: u64,
    /// Spans, log records or data points.
    pub items: u64,
}

impl StreamStats {
    /// One item spanning `[min, max]`.
    fn item(min: u64, max: u64) -> Self {
        StreamStats { min_time: min, max_time: max, items: 1 }
    }

    /// Adds `other`'s items.
    fn merge(&mut self, other: &StreamStats) {
        self.min_time = self.min_time.min(other.min_time);
        self.max_time = self.max_time.max(other.max_time);
        self.items = self.items.saturating_add(other.items);
    }

    /// Whether an item may fall in `[start, end]` (unix nanos, inclusive).
    pub fn overlaps(&self, (start, end): (u64, u64)) -> bool {
        self.max_time >= start && self.min_time <= end
    }
}

/// The streams of a chunk (or of the records added so far), in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkStreams {
    streams: BTreeMap<StreamKey, StreamStats>,
}

impl ChunkStreams {
    /// Adds the items of one request.
    pub fn add_request(&mut self, request: &OtlpRequest) {
        match request {
            OtlpRequest::Traces(request) => {
                for group in &request.resource_spans {
                    let mut stats: Option<StreamStats> = None;
                    for span in group.scope_spans.iter().flat_map(|scope| &scope.spans) {
                        let start = span.start_time_unix_nano;
                        include(&mut stats, StreamStats::item(start, span.end_time_unix_nano.max(start)));
                    }
                    if let Some(stats) = stats {
                        let key = StreamKey { name: service(group.resource.as_ref()), labels: Vec::new() };
                        self.add(key, &stats);
                    }
                }
            }
            OtlpRequest::Logs(request) => {
                for group in &request.resource_logs {
                    let mut by_severity: BTreeMap<i32, StreamStats> = BTreeMap::new();
                    for log in group.scope_logs.iter().flat_map(|scope| &scope.log_records) {
                        let at = log_time(log);
                        let item = StreamStats::item(at, at);
                        by_severity.entry(log.severity_number).and_modify(|stats| stats.merge(&item)).or_insert(item);
                    }
                    let name = service(group.resource.as_ref());
                    let resource = group.resource.as_ref().map_or(&[][..], |resource| &resource.attributes[..]);
                    for (severity, stats) in by_severity {
                        let mut labels: BTreeMap<String, String> = LOG_STREAM_RESOURCE_ATTRIBUTES
                            .iter()
                            .filter_map(|key| {
                                let found = resource.iter().find(|attribute| attribute.key == *key)?;
                                Some((key.to_string(), label_text(found.value.as_ref())))
                            })
                            .collect();
                        labels.insert(SEVERITY_LABEL.to_string(), severity.to_string());
                        self.add(StreamKey { name: name.clone(), labels: labels.into_iter().collect() }, &stats);
                    }
                }
            }
            OtlpRequest::Metrics(request) => {
                for group in &request.resource_metrics {
                    let service = attributes::service_name(group.resource.as_ref());
                    for metric in group.scope_metrics.iter().flat_map(|scope| &scope.metrics) {
                        for (point_attributes, at) in data_points(metric) {
                            // As the metric search builds a series' labels: attributes, the last of a
                            // repeated key winning, then `service.name` over them.
                            let mut labels: BTreeMap<String, String> = point_attributes
                                .iter()
                                .map(|attribute| (attribute.key.clone(), label_text(attribute.value.as_ref())))
                                .collect();
                            if let Some(service) = service {
                                labels.insert(SERVICE_LABEL.to_string(), service.to_string());
                            }
                            let key = StreamKey { name: metric.name.clone(), labels: labels.into_iter().collect() };
                            self.add(key, &StreamStats::item(at, at));
                        }
                    }
                }
            }
        }
    }

    fn add(&mut self, key: StreamKey, stats: &StreamStats) {
        self.streams.entry(key).and_modify(|known| known.merge(stats)).or_insert(*stats);
    }

    /// The streams and their items, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&StreamKey, &StreamStats)> {
        self.streams.iter()
    }
}

fn include(stats: &mut Option<StreamStats>, item: StreamStats) {
    match stats {
        Some(stats) => stats.merge(&item),
        None => *stats = Some(item),
    }
}

fn service(resource: Option<&Resource>) -> String {
    attributes::service_name(resource).unwrap_or(UNKNOWN_SERVICE).to_string()
}

/// What a scan is looking for, so that index shards can rule chunks out before they are read. Every
/// part is optional; a part that does not apply to the scanned signal is ignored. A filter only ever
/// skips chunks that cannot hold a matching item: the caller still tests each record.
///
/// An `Option<&str>` converts into a filter on the service alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanFilter<'a> {
    /// `service.name` (the metrics' `service.name` label; `unknown_service` when a resource has none).
    pub service: Option<&'a str>,
    /// Logs: the least severity number.
    pub severity_min: Option<i32>,
    /// Metrics: the metric name (`<name>_count` and `<name>_sum` also find a histogram `<name>`).
    pub metric: Option<&'a str>,
    /// Metrics: labels a series must have, with these values.
    pub labels: &'a [(String, String)],
    /// Metrics: Prometheus names one of which the metric must be able to give (see
    /// `stella_otlp::prometheus::may_produce`); empty: any.
    pub prometheus_names: &'a [String],
    /// Traces and logs: clauses of [`super::Term`] hashes a span or log line must carry, each clause
    /// satisfied by any one of its terms; chunks whose term filter rules a clause out are not read.
    /// Empty: any.
    pub terms: &'a [Vec<u128>],
}

impl<'a> From<Option<&'a str>> for ScanFilter<'a> {
    fn from(service: Option<&'a str>) -> Self {
        ScanFilter { service, ..ScanFilter::default() }
    }
}

impl ScanFilter<'_> {
    /// Whether the filter asks for more than a time range (only then is an index shard worth reading).
    pub fn narrows(&self) -> bool {
        self.service.is_some()
            || self.severity_min.is_some()
            || self.metric.is_some()
            || !self.labels.is_empty()
            || !self.prometheus_names.is_empty()
    }

    /// Whether stream `key` of `signal` may hold a matching item.
    pub fn admits(&self, signal: Signal, key: &StreamKey) -> bool {
        match signal {
            Signal::Traces => self.service.is_none_or(|service| service == key.name),
            Signal::Logs => {
                let severity = key.label(SEVERITY_LABEL).and_then(|text| text.parse::<i32>().ok());
                self.service.is_none_or(|service| service == key.name)
                    && self.severity_min.is_none_or(|least| severity.is_none_or(|severity| severity >= least))
            }
            Signal::Metrics => {
                self.metric.is_none_or(|wanted| metric_names(wanted).any(|name| name == key.name))
                    && (self.prometheus_names.is_empty()
                        || self
                            .prometheus_names
                            .iter()
                            .any(|wanted| stella_otlp::prometheus::may_produce(&key.name, wanted)))
                    && self.labels.iter().all(|(label, value)| key.label(label) == Some(value.as_str()))
                    && self.service.is_none_or(|service| key.label(SERVICE_LABEL).unwrap_or(UNKNOWN_SERVICE) == service)
            }
        }
    }

    /// Whether a chunk whose manifest lists `services` may hold a matching item (without a shard, only
    /// the service can be told).
    pub fn admits_services(&self, services: &[String]) -> bool {
        self.service.is_none_or(|service| services.iter().any(|known| known == service))
    }
}

/// The metric names a search for `wanted` reads: itself, and the histogram it is the `_count` or `_sum` of.
fn metric_names(wanted: &str) -> impl Iterator<Item = &str> {
    std::iter::once(wanted).chain(["_count", "_sum"].into_iter().filter_map(|suffix| wanted.strip_suffix(suffix)))
}

#[cfg(test)]
mod tests {
    use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
    use stella_otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    use super::*;

    fn key(name: &str, labels: &[(&str, &str)]) -> StreamKey {
        StreamKey {
            name: name.into(),
            labels: labels.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
        }
    }

    #[test]
    fn log_streams_are_split_by_severity_and_chosen_resource_attributes() {
        let request = OtlpRequest::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        attributes::string("service.name", "checkout"),
                        attributes::string("deployment.environment.name", "prod"),
                        attributes::string("host.name", "not-a-stream-label"),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord { time_unix_nano: 30, severity_number: 9, ..Default::default() },
                        LogRecord { observed_time_unix_nano: 10, severity_number: 9, ..Default::default() },
                        LogRecord { time_unix_nano: 20, severity_number: 17, ..Default::default() },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        });
        let mut streams = ChunkStreams::default();
        streams.add_request(&request);
        let found: Vec<(StreamKey, StreamStats)> = streams.iter().map(|(key, stats)| (key.clone(), *stats)).collect();
        assert_eq!(
            found,
            vec![
                (
                    key("checkout", &[("deployment.environment.name", "prod"), (SEVERITY_LABEL, "17")]),
                    StreamStats { min_time: 20, max_time: 20, items: 1 }
                ),
                (
                    key("checkout", &[("deployment.environment.name", "prod"), (SEVERITY_LABEL, "9")]),
                    StreamStats { min_time: 10, max_time: 30, items: 2 }
                ),
            ]
        );
    }

    #[test]
    fn a_filter_admits_only_streams_that_may_hold_a_match() {
        let error = key("checkout", &[(SEVERITY_LABEL, "17")]);
        let info = key("checkout", &[(SEVERITY_LABEL, "9")]);
        let severe = ScanFilter { severity_min: Some(13), ..ScanFilter::default() };
        assert!(severe.admits(Signal::Logs, &error) && !severe.admits(Signal::Logs, &info));
        assert!(!ScanFilter::from(Some("search")).admits(Signal::Logs, &error));
        let labels = vec![("queue".to_string(), "a".to_string())];
        let series = key("rpc.duration", &[("queue", "a"), ("service.name", "worker")]);
        let histogram = ScanFilter { metric: Some("rpc.duration_count"), labels: &labels, ..ScanFilter::default() };
        assert!(histogram.admits(Signal::Metrics, &series), "a histogram's _count reads the histogram");
        assert!(!ScanFilter { metric: Some("rpc.calls"), ..ScanFilter::default() }.admits(Signal::Metrics, &series));
        let other_queue = vec![("queue".to_string(), "b".to_string())];
        assert!(!ScanFilter { labels: &other_queue, ..ScanFilter::default() }.admits(Signal::Metrics, &series));
        assert!(ScanFilter::from(Some("worker")).admits(Signal::Metrics, &series));
        assert!(
            ScanFilter::from(Some("unknown_service")).admits(Signal::Metrics, &key("up", &[])),
            "a series without service.name belongs to unknown_service"
        );
        assert!(!ScanFilter::default().narrows() && severe.narrows());
    }
}
