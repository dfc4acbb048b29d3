//! `loadbalancing`: traces (and logs) routed by trace id over a consistent-hash ring of downstream OTLP
//! endpoints, so every span of a trace reaches the same instance of a second tier (tail sampling there
//! then sees whole traces).
//!
//! The collector gives each backend its own [`RoutedExporter`], with its own log consumer, cursor and
//! backlog under the id `<exporter id>/<backend name>` (the configured `host:port` for the static
//! resolver, `ip:port` for DNS), so a backend that is down holds back only its own share. Each reads
//! the pipeline's log and sends the items the ring gives it; records without a trace id (logs) route
//! by `service.name`.
mod config;
mod ring;

pub use config::{DnsResolver, LoadBalancingConfig, Resolver, RoutingKey, StaticResolver};
pub use ring::Ring;

use std::sync::Arc;

use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::{Batch, OtlpRequest, attributes};

use crate::{BoxFuture, Delivery, ExportError, Exporter, ExporterHealth};

/// One backend of a `loadbalancing` exporter: sends the share of each batch the ring gives it.
pub struct RoutedExporter {
    id: String,
    member: String,
    ring: Arc<Ring>,
    key: RoutingKey,
    inner: Arc<dyn Exporter>,
}

impl RoutedExporter {
    /// The exporter `id` of backend `member` of `ring`, sending through `inner`.
    pub fn new(id: String, member: String, ring: Arc<Ring>, key: RoutingKey, inner: Arc<dyn Exporter>) -> Self {
        RoutedExporter { id, member, ring, key, inner }
    }
}

impl Exporter for RoutedExporter {
    fn id(&self) -> &str {
        &self.id
    }

    fn export<'a>(&'a self, batch: &'a Batch, delivery: Delivery<'a>) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            let Some(request) = share(&batch.request, &self.ring, &self.member, self.key) else { return Ok(()) };
            let mine = Batch { tenant: Arc::clone(&batch.tenant), request, acks: Vec::new() };
            self.inner.export(&mine, delivery).await
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        self.inner.flush()
    }

    fn health(&self) -> ExporterHealth {
        self.inner.health()
    }
}

/// The items of `request` the ring gives `member`, or `None` when there are none.
pub fn share(request: &OtlpRequest, ring: &Ring, member: &str, key: RoutingKey) -> Option<OtlpRequest> {
    let mine = |trace_id: &[u8], service: &str| {
        let routing: &[u8] = match key {
            RoutingKey::TraceId if !trace_id.is_empty() => trace_id,
            _ => service.as_bytes(),
        };
        ring.owner(routing) == Some(member)
    };
    let kept = match request {
        OtlpRequest::Traces(request) => {
            let mut kept = ExportTraceServiceRequest::default();
            for group in &request.resource_spans {
                let service = attributes::service_name(group.resource.as_ref()).unwrap_or("unknown_service");
                let mut group = group.clone();
                for scope in &mut group.scope_spans {
                    scope.spans.retain(|span| mine(&span.trace_id, service));
                }
                group.scope_spans.retain(|scope| !scope.spans.is_empty());
                if !group.scope_spans.is_empty() {
                    kept.resource_spans.push(group);
                }
            }
            OtlpRequest::Traces(kept)
        }
        OtlpRequest::Logs(request) => {
            let mut kept = ExportLogsServiceRequest::default();
            for group in &request.resource_logs {
                let service = attributes::service_name(group.resource.as_ref()).unwrap_or("unknown_service");
                let mut group = group.clone();
                for scope in &mut group.scope_logs {
                    scope.log_records.retain(|record| mine(&record.trace_id, service));
                }
                group.scope_logs.retain(|scope| !scope.log_records.is_empty());
                if !group.scope_logs.is_empty() {
                    kept.resource_logs.push(group);
                }
            }
            OtlpRequest::Logs(kept)
        }
        // The config refuses metrics pipelines; were metrics to come, the first member takes them whole,
        // so nothing is lost.
        OtlpRequest::Metrics(_) => {
            return (ring.members().first().map(String::as_str) == Some(member)).then(|| request.clone());
        }
    };
    (kept.item_count() > 0).then_some(kept)
}

#[cfg(test)]
mod tests;
