use stella_metrics::{BYTE_BUCKETS, CounterVec, Gauge, HistogramVec, Registry, names};
use stella_otlp::Signal;

use super::Protocol;

/// The meta-metrics every OTLP receiver keeps.
#[derive(Clone)]
pub struct ReceiverMetrics {
    accepted: CounterVec,
    refused: CounterVec,
    requests: CounterVec,
    sizes: HistogramVec,
    inflight: Gauge,
    quota: CounterVec,
}

impl ReceiverMetrics {
    /// Registers (or finds) the receiver families in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let labels: &'static [&'static str] = &["receiver", "signal", "protocol"];
        ReceiverMetrics {
            quota: registry.counter(
                names::TENANT_QUOTA_REFUSED,
                "Requests refused because their tenant was over quota.",
                &["tenant", "kind"],
            ),
            accepted: registry.counter(
                names::RECEIVER_ACCEPTED_ITEMS,
                "Items accepted by a receiver and taken by every sink.",
                labels,
            ),
            refused: registry.counter(
                names::RECEIVER_REFUSED_ITEMS,
                "Items a receiver refused, by reason.",
                &["receiver", "signal", "protocol", "reason"],
            ),
            requests: registry.counter(
                names::RECEIVER_REQUESTS,
                "Requests answered, by HTTP status code.",
                &["receiver", "signal", "protocol", "status"],
            ),
            sizes: registry.histogram(
                names::RECEIVER_REQUEST_SIZE,
                "Request body sizes as sent, in bytes.",
                &["signal", "protocol"],
                BYTE_BUCKETS,
            ),
            inflight: registry
                .gauge(names::RECEIVER_INFLIGHT_BYTES, "Bytes of request bodies held by receivers right now.", &[])
                .with(&[]),
        }
    }

    pub(crate) fn accepted(&self, receiver: &str, signal: Signal, protocol: Protocol, items: usize) {
        self.accepted.with(&[receiver, signal.as_str(), protocol.as_str()]).add(items as u64);
    }

    pub(crate) fn refused(&self, receiver: &str, signal: Signal, protocol: Protocol, reason: &str, items: usize) {
        self.refused.with(&[receiver, signal.as_str(), protocol.as_str(), reason]).add(items as u64);
    }

    pub(crate) fn answered(&self, receiver: &str, signal: Signal, protocol: Protocol, status: u16) {
        let status = status.to_string();
        self.requests.with(&[receiver, signal.as_str(), protocol.as_str(), &status]).inc();
    }

    pub(crate) fn size(&self, signal: Signal, protocol: Protocol, bytes: usize) {
        self.sizes.with(&[signal.as_str(), protocol.as_str()]).observe(bytes as f64);
    }

    pub(crate) fn over_quota(&self, tenant: &str, kind: &str) {
        self.quota.with(&[tenant, kind]).inc();
    }

    /// Counts `bytes` as in flight until the returned guard is dropped.
    pub(crate) fn hold(&self, bytes: usize) -> InflightGuard {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.inflight.add(bytes);
        InflightGuard { gauge: self.inflight.clone(), bytes }
    }
}

/// Subtracts its bytes from the in-flight gauge when dropped.
pub(crate) struct InflightGuard {
    gauge: Gauge,
    bytes: i64,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.gauge.add(-self.bytes);
    }
}
