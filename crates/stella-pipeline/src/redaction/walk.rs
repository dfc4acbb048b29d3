//! Where the redactor looks: every string an OTLP request carries, per signal.
//!
//! Attribute maps get the key rules and value rules; names, messages, bodies and other plain strings get
//! the value rules. Summaries go on the record that was changed: a resource, a scope, a span (its events
//! and links included), a log record or a data point (its exemplars included).
use stella_otlp::proto::common::v1::{InstrumentationScope, KeyValue};
use stella_otlp::proto::logs::v1::ResourceLogs;
use stella_otlp::proto::metrics::v1::{Exemplar, ResourceMetrics, metric::Data};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::ResourceSpans;

use super::Tally;
use super::redactor::{RecordSummary, Redactor};

impl Redactor {
    /// Redacts a whole traces request.
    pub fn redact_traces(&self, groups: &mut [ResourceSpans], tally: &mut Tally) {
        for group in groups {
            self.redact_resource(group.resource.as_mut(), &mut group.schema_url, tally);
            for scope_group in &mut group.scope_spans {
                self.redact_scope(scope_group.scope.as_mut(), &mut scope_group.schema_url, tally);
                for span in &mut scope_group.spans {
                    let mut record = RecordSummary::default();
                    self.plain(&mut span.name, "span_name", tally, &mut record);
                    self.plain(&mut span.trace_state, "span_trace_state", tally, &mut record);
                    if let Some(status) = span.status.as_mut() {
                        self.plain(&mut status.message, "status_message", tally, &mut record);
                    }
                    for event in &mut span.events {
                        self.plain(&mut event.name, "event_name", tally, &mut record);
                        self.scrub_attributes(&mut event.attributes, "span_event", tally, &mut record);
                    }
                    for link in &mut span.links {
                        self.plain(&mut link.trace_state, "span_link_trace_state", tally, &mut record);
                        self.scrub_attributes(&mut link.attributes, "span_link", tally, &mut record);
                    }
                    self.scrub_attributes(&mut span.attributes, "span", tally, &mut record);
                    self.summarize(record, &mut span.attributes);
                }
            }
        }
    }

    /// Redacts a whole logs request.
    pub fn redact_logs(&self, groups: &mut [ResourceLogs], tally: &mut Tally) {
        for group in groups {
            self.redact_resource(group.resource.as_mut(), &mut group.schema_url, tally);
            for scope_group in &mut group.scope_logs {
                self.redact_scope(scope_group.scope.as_mut(), &mut scope_group.schema_url, tally);
                for log in &mut scope_group.log_records {
                    let mut record = RecordSummary::default();
                    self.plain(&mut log.severity_text, "log_severity_text", tally, &mut record);
                    self.plain(&mut log.event_name, "event_name", tally, &mut record);
                    if log.body.as_mut().is_some_and(|body| self.scrub_value(body, "log_body", tally)) {
                        self.note_masked_field(&mut record, "body");
                    }
                    self.scrub_attributes(&mut log.attributes, "log", tally, &mut record);
                    self.summarize(record, &mut log.attributes);
                }
            }
        }
    }

    /// Redacts a whole metrics request.
    pub fn redact_metrics(&self, groups: &mut [ResourceMetrics], tally: &mut Tally) {
        for group in groups {
            self.redact_resource(group.resource.as_mut(), &mut group.schema_url, tally);
            for scope_group in &mut group.scope_metrics {
                self.redact_scope(scope_group.scope.as_mut(), &mut scope_group.schema_url, tally);
                for metric in &mut scope_group.metrics {
                    let mut record = RecordSummary::default();
                    self.plain(&mut metric.name, "metric_name", tally, &mut record);
                    self.plain(&mut metric.description, "metric_description", tally, &mut record);
                    self.plain(&mut metric.unit, "metric_unit", tally, &mut record);
                    self.scrub_attributes(&mut metric.metadata, "metric_metadata", tally, &mut record);
                    self.summarize(record, &mut metric.metadata);
                    match metric.data.as_mut() {
                        Some(Data::Gauge(gauge)) => {
                            for point in &mut gauge.data_points {
                                self.data_point(&mut point.attributes, &mut point.exemplars, tally);
                            }
                        }
                        Some(Data::Sum(sum)) => {
                            for point in &mut sum.data_points {
                                self.data_point(&mut point.attributes, &mut point.exemplars, tally);
                            }
                        }
                        Some(Data::Histogram(histogram)) => {
                            for point in &mut histogram.data_points {
                                self.data_point(&mut point.attributes, &mut point.exemplars, tally);
                            }
                        }
                        Some(Data::ExponentialHistogram(histogram)) => {
                            for point in &mut histogram.data_points {
                                self.data_point(&mut point.attributes, &mut point.exemplars, tally);
                            }
                        }
                        Some(Data::Summary(summary)) => {
                            for point in &mut summary.data_points {
                                self.data_point(&mut point.attributes, &mut [], tally);
                            }
                        }
                        None => {}
                    }
                }
            }
        }
    }

    fn data_point(&self, attributes: &mut Vec<KeyValue>, exemplars: &mut [Exemplar], tally: &mut Tally) {
        let mut record = RecordSummary::default();
        for exemplar in exemplars {
            self.scrub_attributes(&mut exemplar.filtered_attributes, "exemplar", tally, &mut record);
        }
        self.scrub_attributes(attributes, "datapoint", tally, &mut record);
        self.summarize(record, attributes);
    }

    fn redact_resource(&self, resource: Option<&mut Resource>, schema_url: &mut String, tally: &mut Tally) {
        let mut record = RecordSummary::default();
        self.plain(schema_url, "schema_url", tally, &mut record);
        if let Some(resource) = resource {
            self.scrub_attributes(&mut resource.attributes, "resource", tally, &mut record);
            self.summarize(record, &mut resource.attributes);
        }
    }

    fn redact_scope(&self, scope: Option<&mut InstrumentationScope>, schema_url: &mut String, tally: &mut Tally) {
        let mut record = RecordSummary::default();
        self.plain(schema_url, "schema_url", tally, &mut record);
        if let Some(scope) = scope {
            self.plain(&mut scope.name, "scope_name", tally, &mut record);
            self.plain(&mut scope.version, "scope_version", tally, &mut record);
            self.scrub_attributes(&mut scope.attributes, "scope", tally, &mut record);
            self.summarize(record, &mut scope.attributes);
        }
    }

    /// A plain string field: value rules only.
    fn plain(&self, text: &mut String, field: &'static str, tally: &mut Tally, record: &mut RecordSummary) {
        if self.scrub_string(text, field, tally) {
            self.note_masked_field(record, field);
        }
    }
}
