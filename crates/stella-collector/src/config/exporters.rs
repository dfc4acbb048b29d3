//! The exporter types, each registered once: its settings ([`ExporterConfig`] variant), how they are read
//! and checked ([`parse`]) and how the exporter is built ([`ExporterConfig::build`]). Adding an exporter
//! type is one variant, one arm in each of the two matches below, and its name in [`TYPES`], all in this
//! file. `max_backlog`, which every exporter but `store` takes, is read once for all (`max_backlogs` in
//! `validate.rs`) and taken out before an exporter's own settings are parsed.
use std::sync::Arc;

use serde_json::Value;
use stella_export::egress::{EgressPolicy, SealedExporter};
use stella_export::file::{FileConfig, FileExporter};
use stella_export::loadbalancing::LoadBalancingConfig;
use stella_export::loki::{LokiConfig, LokiExporter};
use stella_export::otlp::{ClientTls, OtlpConfig, OtlpGrpcExporter, OtlpHttpExporter};
use stella_export::prometheus::{RemoteWriteConfig, RemoteWriteExporter};
use stella_export::{DebugConfig, DebugExporter, ExportError, ExportMetrics, Exporter, NopExporter};
use stella_metrics::names;

use super::validate::{NopRaw, Problems, check_egress, typed, typed_besides};
use crate::topology::BuildContext;

/// The exporter types, as `exporters.<type>[/<name>]` names them.
pub(super) const TYPES: &[&str] =
    &["debug", "events", "file", "loadbalancing", "loki", "nop", "otlp", "otlphttp", "prometheusremotewrite", "store"];

/// One entry of `exporters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExporterConfig {
    /// `file`.
    File(FileConfig),
    /// `debug`.
    Debug(DebugConfig),
    /// `otlp`: OTLP/gRPC to a backend.
    OtlpGrpc(OtlpConfig),
    /// `otlphttp`: OTLP/HTTP to a backend.
    OtlpHttp(OtlpConfig),
    /// `prometheusremotewrite`: metrics to a Prometheus remote-write receiver.
    PrometheusRemoteWrite(RemoteWriteConfig),
    /// `loadbalancing`: traces and logs by trace id over a ring of OTLP backends.
    LoadBalancing(LoadBalancingConfig),
    /// `loki`: logs to Grafana Loki's push API.
    Loki(LokiConfig),
    /// `nop`.
    Nop,
    /// `events`: DORA events and federation observations from log records, into their tables.
    Events,
    /// `store`: the embedded store (sealed chunks under `<data-dir>/store`).
    Store(super::store::StoreSettings),
}

/// Reads `exporters.<id>` of type `kind` at `path`, checking its endpoints against `egress` and its TLS
/// files; every problem goes to `problems`.
pub(super) fn parse(
    kind: &str,
    value: &Value,
    path: &str,
    egress: &EgressPolicy,
    problems: &mut Problems,
) -> Option<ExporterConfig> {
    if kind == "store" {
        return typed(value, path, problems).map(ExporterConfig::Store);
    }
    // `max_backlog` is read for every exporter at once (`max_backlogs`).
    let config = match kind {
        "file" => {
            let config = typed_besides::<FileConfig>(value, path, "max_backlog", problems)?;
            for (key, message) in config.problems() {
                problems.add(format!("{path}.{key}"), message);
            }
            ExporterConfig::File(config)
        }
        "debug" => ExporterConfig::Debug(typed_besides(value, path, "max_backlog", problems)?),
        "otlp" => ExporterConfig::OtlpGrpc(typed_besides(value, path, "max_backlog", problems)?),
        "otlphttp" => ExporterConfig::OtlpHttp(typed_besides(value, path, "max_backlog", problems)?),
        "prometheusremotewrite" => {
            ExporterConfig::PrometheusRemoteWrite(typed_besides(value, path, "max_backlog", problems)?)
        }
        "loki" => ExporterConfig::Loki(typed_besides(value, path, "max_backlog", problems)?),
        "loadbalancing" => {
            let config = typed_besides::<LoadBalancingConfig>(value, path, "max_backlog", problems)?;
            for (key, message) in config.problems() {
                problems.add(format!("{path}.{key}"), message);
            }
            ExporterConfig::LoadBalancing(config)
        }
        "events" => typed_besides::<NopRaw>(value, path, "max_backlog", problems).map(|_| ExporterConfig::Events)?,
        _ => typed_besides::<NopRaw>(value, path, "max_backlog", problems).map(|_| ExporterConfig::Nop)?,
    };
    let endpoints = config.endpoints();
    let endpoints: Vec<(&str, &str)> = endpoints.iter().map(|(key, url)| (key.as_str(), url.as_str())).collect();
    check_egress(&endpoints, egress, path, problems);
    if let Some(tls) = config.client_tls()
        && let Err(message) = tls.load()
    {
        // The files are read when the exporter is built: one that cannot be read is a config error here,
        // as it is for `serve`.
        problems.add(format!("{path}.tls"), message);
    }
    Some(config)
}

impl ExporterConfig {
    /// The endpoints it connects to, by key (for the egress policy).
    pub fn endpoints(&self) -> Vec<(String, String)> {
        let keys = ["endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint"];
        match self {
            ExporterConfig::OtlpGrpc(otlp) | ExporterConfig::OtlpHttp(otlp) => {
                let urls = [
                    Some(&otlp.endpoint),
                    otlp.traces_endpoint.as_ref(),
                    otlp.metrics_endpoint.as_ref(),
                    otlp.logs_endpoint.as_ref(),
                ];
                keys.iter().zip(urls).filter_map(|(key, url)| Some((key.to_string(), url?.clone()))).collect()
            }
            ExporterConfig::PrometheusRemoteWrite(remote_write) => {
                vec![("endpoint".into(), remote_write.endpoint.clone())]
            }
            ExporterConfig::Loki(loki) => vec![("endpoint".into(), loki.endpoint.clone())],
            ExporterConfig::LoadBalancing(balancing) => {
                let mut endpoints = Vec::new();
                if let Some(fixed) = &balancing.resolver.fixed {
                    for (index, name) in fixed.hostnames.iter().enumerate() {
                        endpoints.push((format!("resolver.static.hostnames[{index}]"), format!("http://{name}")));
                    }
                }
                if let Some(dns) = &balancing.resolver.dns {
                    endpoints.push(("resolver.dns.hostname".into(), format!("http://{}:{}", dns.hostname, dns.port)));
                }
                endpoints
            }
            _ => Vec::new(),
        }
    }

    /// Its client TLS settings, for the exporters that connect out.
    fn client_tls(&self) -> Option<&ClientTls> {
        match self {
            ExporterConfig::OtlpGrpc(otlp) | ExporterConfig::OtlpHttp(otlp) => Some(&otlp.tls),
            ExporterConfig::PrometheusRemoteWrite(remote_write) => Some(&remote_write.tls),
            ExporterConfig::Loki(loki) => Some(&loki.tls),
            _ => None,
        }
    }

    /// Builds exporter `id`, or its inert stand-in when `egress` keeps its endpoint closed (warned and
    /// counted). `None` for the types no exporter consumer runs: `store` (a sealing consumer) and
    /// `loadbalancing` (one exporter per backend, built by the topology).
    pub(crate) fn build(
        &self,
        id: &str,
        egress: &EgressPolicy,
        context: &BuildContext,
    ) -> Result<Option<Arc<dyn Exporter>>, ExportError> {
        let component = format!("exporters.{id}");
        for (_, endpoint) in self.endpoints() {
            if matches!(self, ExporterConfig::LoadBalancing(_)) {
                break;
            }
            if let Err(denied) = egress.check(&endpoint) {
                tracing::warn!(
                    event = "egress.sealed_blocked",
                    component = %component,
                    endpoint = %endpoint,
                    reason = denied.reason(),
                    remediation = %denied.remediation(),
                    "egress policy: exporter disabled; it opens no connection"
                );
                let blocked = context.registry.counter(
                    names::EGRESS_BLOCKED,
                    "Endpoints disabled by the egress policy, by component.",
                    &["component"],
                );
                blocked.with(&[&component]).inc();
                return Ok(Some(Arc::new(SealedExporter::new(id.to_string(), endpoint))));
            }
        }
        let metrics = || ExportMetrics::new(&context.registry);
        let id = id.to_string();
        Ok(Some(match self {
            ExporterConfig::File(file) => {
                Arc::new(FileExporter::open(id, file.clone(), &context.data_dir, context.rotation_signer.clone())?)
            }
            ExporterConfig::Debug(debug) => Arc::new(DebugExporter::new(id, debug)),
            ExporterConfig::OtlpGrpc(otlp) => Arc::new(OtlpGrpcExporter::new(id, otlp.clone(), metrics())?),
            ExporterConfig::OtlpHttp(otlp) => Arc::new(OtlpHttpExporter::new(id, otlp.clone(), metrics())?),
            ExporterConfig::PrometheusRemoteWrite(remote_write) => {
                Arc::new(RemoteWriteExporter::new(id, remote_write.clone(), metrics())?)
            }
            ExporterConfig::Loki(loki) => Arc::new(LokiExporter::new(id, loki.clone())?),
            ExporterConfig::Nop => Arc::new(NopExporter::new(id)),
            ExporterConfig::Events => context.event_exporter.clone().ok_or_else(|| ExportError::Rejected {
                reason: "unavailable".into(),
                endpoint: id,
                message: "this process records no events (run `stella telemetry serve`)".into(),
            })?,
            ExporterConfig::Store(_) | ExporterConfig::LoadBalancing(_) => return Ok(None),
        }))
    }
}
