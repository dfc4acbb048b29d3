//! [`OtlpRequest`]: one decoded export request of any signal, and the item-level operations the
//! pipeline needs (count, merge, split) without caring which signal it holds.
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics, metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

use crate::Signal;

/// One OTLP export request, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum OtlpRequest {
    /// `ExportTraceServiceRequest`.
    Traces(ExportTraceServiceRequest),
    /// `ExportMetricsServiceRequest`.
    Metrics(ExportMetricsServiceRequest),
    /// `ExportLogsServiceRequest`.
    Logs(ExportLogsServiceRequest),
}

/// The bytes are not a valid protobuf message of the expected signal.
#[derive(Debug, thiserror::Error)]
#[error("invalid protobuf {request}: {source}")]
pub struct DecodeError {
    request: &'static str,
    #[source]
    source: prost::DecodeError,
}

impl OtlpRequest {
    /// An empty request of `signal`.
    pub fn empty(signal: Signal) -> Self {
        match signal {
            Signal::Traces => OtlpRequest::Traces(ExportTraceServiceRequest::default()),
            Signal::Metrics => OtlpRequest::Metrics(ExportMetricsServiceRequest::default()),
            Signal::Logs => OtlpRequest::Logs(ExportLogsServiceRequest::default()),
        }
    }

    /// Decodes the protobuf body of an `Export*ServiceRequest` of `signal`.
    pub fn decode_protobuf(signal: Signal, body: &[u8]) -> Result<Self, DecodeError> {
        let wrap = |source| DecodeError { request: signal.request_name(), source };
        Ok(match signal {
            Signal::Traces => OtlpRequest::Traces(ExportTraceServiceRequest::decode(body).map_err(wrap)?),
            Signal::Metrics => OtlpRequest::Metrics(ExportMetricsServiceRequest::decode(body).map_err(wrap)?),
            Signal::Logs => OtlpRequest::Logs(ExportLogsServiceRequest::decode(body).map_err(wrap)?),
        })
    }

    /// The protobuf encoding of the request.
    pub fn encode_protobuf(&self) -> Vec<u8> {
        match self {
            OtlpRequest::Traces(request) => request.encode_to_vec(),
            OtlpRequest::Metrics(request) => request.encode_to_vec(),
            OtlpRequest::Logs(request) => request.encode_to_vec(),
        }
    }

    /// The size of the protobuf encoding, in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            OtlpRequest::Traces(request) => request.encoded_len(),
            OtlpRequest::Metrics(request) => request.encoded_len(),
            OtlpRequest::Logs(request) => request.encoded_len(),
        }
    }

    /// Which signal the request carries.
    pub fn signal(&self) -> Signal {
        match self {
            OtlpRequest::Traces(_) => Signal::Traces,
            OtlpRequest::Metrics(_) => Signal::Metrics,
            OtlpRequest::Logs(_) => Signal::Logs,
        }
    }

    /// Spans, metric data points or log records in the request.
    pub fn item_count(&self) -> usize {
        match self {
            OtlpRequest::Traces(request) => request.resource_spans.iter().map(Group::count).sum(),
            OtlpRequest::Metrics(request) => request.resource_metrics.iter().map(Group::count).sum(),
            OtlpRequest::Logs(request) => request.resource_logs.iter().map(Group::count).sum(),
        }
    }

    /// The resource of every resource group, created empty where a group has none.
    pub fn resources_mut(&mut self) -> Vec<&mut Resource> {
        match self {
            OtlpRequest::Traces(request) => request
                .resource_spans
                .iter_mut()
                .map(|group| group.resource.get_or_insert_with(Resource::default))
                .collect(),
            OtlpRequest::Metrics(request) => request
                .resource_metrics
                .iter_mut()
                .map(|group| group.resource.get_or_insert_with(Resource::default))
                .collect(),
            OtlpRequest::Logs(request) => request
                .resource_logs
                .iter_mut()
                .map(|group| group.resource.get_or_insert_with(Resource::default))
                .collect(),
        }
    }

    /// The resources that are present (groups without one are skipped, nothing is created).
    pub fn present_resources_mut(&mut self) -> Vec<&mut Resource> {
        match self {
            OtlpRequest::Traces(request) => {
                request.resource_spans.iter_mut().filter_map(|group| group.resource.as_mut()).collect()
            }
            OtlpRequest::Metrics(request) => {
                request.resource_metrics.iter_mut().filter_map(|group| group.resource.as_mut()).collect()
            }
            OtlpRequest::Logs(request) => {
                request.resource_logs.iter_mut().filter_map(|group| group.resource.as_mut()).collect()
            }
        }
    }

    /// Moves the resource groups of `other` (same signal) to the end of this request.
    /// Returns `other` unchanged when the signals differ.
    pub fn append(&mut self, other: OtlpRequest) -> Result<(), OtlpRequest> {
        match (self, other) {
            (OtlpRequest::Traces(into), OtlpRequest::Traces(from)) => into.resource_spans.extend(from.resource_spans),
            (OtlpRequest::Metrics(into), OtlpRequest::Metrics(from)) => {
                into.resource_metrics.extend(from.resource_metrics)
            }
            (OtlpRequest::Logs(into), OtlpRequest::Logs(from)) => into.resource_logs.extend(from.resource_logs),
            (_, other) => return Err(other),
        }
        Ok(())
    }

    /// Keeps the first `keep` items here and returns the rest as a new request of the same signal
    /// (empty when there were at most `keep`). Resource and scope headers are copied to both halves.
    pub fn split_off(&mut self, keep: usize) -> OtlpRequest {
        match self {
            OtlpRequest::Traces(request) => OtlpRequest::Traces(ExportTraceServiceRequest {
                resource_spans: split_groups(&mut request.resource_spans, keep),
            }),
            OtlpRequest::Metrics(request) => OtlpRequest::Metrics(ExportMetricsServiceRequest {
                resource_metrics: split_groups(&mut request.resource_metrics, keep),
            }),
            OtlpRequest::Logs(request) => OtlpRequest::Logs(ExportLogsServiceRequest {
                resource_logs: split_groups(&mut request.resource_logs, keep),
            }),
        }
    }
}

/// A level of the OTLP tree that holds items (directly or through the level below).
trait Group: Sized {
    /// Items under this group.
    fn count(&self) -> usize;
    /// Keeps `keep` items (0 < keep < count) and returns the rest under a copy of this group's header.
    fn split_off(&mut self, keep: usize) -> Self;
}

/// Keeps the first `keep` items of `groups` and returns the rest.
fn split_groups<G: Group>(groups: &mut Vec<G>, keep: usize) -> Vec<G> {
    let mut kept = 0;
    for index in 0..groups.len() {
        let count = groups[index].count();
        if kept + count <= keep {
            kept += count;
            continue;
        }
        let room = keep - kept;
        if room == 0 {
            return groups.split_off(index);
        }
        let mut rest = groups.split_off(index + 1);
        let tail = groups[index].split_off(room);
        rest.insert(0, tail);
        return rest;
    }
    Vec::new()
}

impl Group for ScopeSpans {
    fn count(&self) -> usize {
        self.spans.len()
    }
    fn split_off(&mut self, keep: usize) -> Self {
        ScopeSpans { scope: self.scope.clone(), spans: self.spans.split_off(keep), schema_url: self.schema_url.clone() }
    }
}

impl Group for ResourceSpans {
    fn count(&self) -> usize {
        self.scope_spans.iter().map(Group::count).sum()
    }
    fn split_off(&mut self, keep: usize) -> Self {
        ResourceSpans {
            resource: self.resource.clone(),
            scope_spans: split_groups(&mut self.scope_spans, keep),
            schema_url: self.schema_url.clone(),
        }
    }
}

impl Group for ScopeLogs {
    fn count(&self) -> usize {
        self.log_records.len()
    }
    fn split_off(&mut self, keep: usize) -> Self {
        ScopeLogs {
            scope: self.scope.clone(),
            log_records: self.log_records.split_off(keep),
            schema_url: self.schema_url.clone(),
        }
    }
}

impl Group for ResourceLogs {
    fn count(&self) -> usize {
        self.scope_logs.iter().map(Group::count).sum()
    }
    fn split_off(&mut self, keep: usize) -> Self {
        ResourceLogs {
            resource: self.resource.clone(),
            scope_logs: split_groups(&mut self.scope_logs, keep),
            schema_url: self.schema_url.clone(),
        }
    }
}

impl Group for Metric {
    fn count(&self) -> usize {
        match &self.data {
            Some(metric::Data::Gauge(data)) => data.data_points.len(),
            Some(metric::Data::Sum(data)) => data.data_points.len(),
            Some(metric::Data::Histogram(data)) => data.data_points.len(),
            Some(metric::Data::ExponentialHistogram(data)) => data.data_points.len(),
            Some(metric::Data::Summary(data)) => data.data_points.len(),
            None => 0,
        }
    }
    fn split_off(&mut self, keep: usize) -> Self {
        let data = self.data.as_mut().map(|data| match data {
            metric::Data::Gauge(gauge) => {
                let mut tail = gauge.clone();
                tail.data_points = gauge.data_points.split_off(keep);
                metric::Data::Gauge(tail)
            }
            metric::Data::Sum(sum) => {
                let mut tail = sum.clone();
                tail.data_points = sum.data_points.split_off(keep);
                metric::Data::Sum(tail)
            }
            metric::Data::Histogram(histogram) => {
                let mut tail = histogram.clone();
                tail.data_points = histogram.data_points.split_off(keep);
                metric::Data::Histogram(tail)
            }
            metric::Data::ExponentialHistogram(histogram) => {
                let mut tail = histogram.clone();
                tail.data_points = histogram.data_points.split_off(keep);
                metric::Data::ExponentialHistogram(tail)
            }
            metric::Data::Summary(summary) => {
                let mut tail = summary.clone();
                tail.data_points = summary.data_points.split_off(keep);
                metric::Data::Summary(tail)
            }
        });
        Metric {
            name: self.name.clone(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            metadata: self.metadata.clone(),
            data,
        }
    }
}

impl Group for ScopeMetrics {
    fn count(&self) -> usize {
        self.metrics.iter().map(Group::count).sum()
    }
    fn split_off(&mut self, keep: usize) -> Self {
        ScopeMetrics {
            scope: self.scope.clone(),
            metrics: split_groups(&mut self.metrics, keep),
            schema_url: self.schema_url.clone(),
        }
    }
}

impl Group for ResourceMetrics {
    fn count(&self) -> usize {
        self.scope_metrics.iter().map(Group::count).sum()
    }
    fn split_off(&mut self, keep: usize) -> Self {
        ResourceMetrics {
            resource: self.resource.clone(),
            scope_metrics: split_groups(&mut self.scope_metrics, keep),
            schema_url: self.schema_url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn traces(groups: &[&[usize]]) -> OtlpRequest {
        let resource_spans = groups
            .iter()
            .map(|scopes| ResourceSpans {
                scope_spans: scopes
                    .iter()
                    .map(|&spans| ScopeSpans { spans: vec![Span::default(); spans], ..Default::default() })
                    .collect(),
                ..Default::default()
            })
            .collect();
        OtlpRequest::Traces(ExportTraceServiceRequest { resource_spans })
    }

    #[test]
    fn split_off_keeps_exactly_the_requested_items_across_groups() {
        let mut request = traces(&[&[2, 3], &[4]]);
        let rest = request.split_off(4);
        assert_eq!(request.item_count(), 4);
        assert_eq!(rest.item_count(), 5);
        let OtlpRequest::Traces(kept) = &request else { panic!("signal changed") };
        assert_eq!(kept.resource_spans.len(), 1);
        let OtlpRequest::Traces(tail) = &rest else { panic!("signal changed") };
        assert_eq!(tail.resource_spans.len(), 2);
        assert_eq!(tail.resource_spans[0].scope_spans[0].spans.len(), 1);
    }

    #[test]
    fn split_off_at_a_group_boundary_and_past_the_end() {
        let mut request = traces(&[&[2], &[3]]);
        let rest = request.split_off(2);
        assert_eq!((request.item_count(), rest.item_count()), (2, 3));
        let mut small = traces(&[&[1]]);
        assert_eq!(small.split_off(10).item_count(), 0);
        assert_eq!(small.item_count(), 1);
    }

    #[test]
    fn append_refuses_another_signal() {
        let mut request = traces(&[&[1]]);
        assert!(request.append(OtlpRequest::empty(Signal::Logs)).is_err());
        assert!(request.append(traces(&[&[2]])).is_ok());
        assert_eq!(request.item_count(), 3);
    }
}
