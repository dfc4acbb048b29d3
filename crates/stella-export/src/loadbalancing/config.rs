use std::net::ToSocketAddrs;
use std::time::Duration;

use serde::Deserialize;

use crate::otlp::OtlpConfig;

/// What items are routed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum RoutingKey {
    /// The trace id (default): every span of a trace goes to one backend. Logs without one route by
    /// service.
    #[default]
    #[serde(rename = "traceID")]
    TraceId,
    /// `service.name`: every item of a service goes to one backend.
    #[serde(rename = "service")]
    Service,
}

/// `exporters.loadbalancing`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancingConfig {
    /// `traceID` (default) or `service`.
    #[serde(default)]
    pub routing_key: RoutingKey,
    /// How backends are reached.
    pub protocol: Protocol,
    /// Where the backends are.
    pub resolver: Resolver,
}

/// `loadbalancing.protocol`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// The `otlp` (gRPC) exporter settings every backend gets (all but `endpoint`).
    #[serde(default)]
    pub otlp: serde_json::Map<String, serde_json::Value>,
}

/// `loadbalancing.resolver`: exactly one of `static` and `dns`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolver {
    /// A fixed list of backends.
    #[serde(default, rename = "static")]
    pub fixed: Option<StaticResolver>,
    /// The addresses a DNS name resolves to, looked up again every `interval`.
    #[serde(default)]
    pub dns: Option<DnsResolver>,
}

/// `resolver.static`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResolver {
    /// `host:port` of each backend (its name: the key of its cursor and backlog).
    pub hostnames: Vec<String>,
}

/// `resolver.dns`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsResolver {
    /// The name to resolve.
    pub hostname: String,
    /// The OTLP port of every address (default 4317).
    #[serde(default = "default_port")]
    pub port: u16,
    /// How often the name is resolved again (default 5s); a change rebuilds the ring.
    #[serde(default = "default_interval", deserialize_with = "crate::otlp::config::duration")]
    pub interval: Duration,
}

fn default_port() -> u16 {
    4317
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}

impl LoadBalancingConfig {
    /// Problems as (key under the exporter, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        match (&self.resolver.fixed, &self.resolver.dns) {
            (Some(_), Some(_)) | (None, None) => problems
                .push(("resolver".to_string(), "set exactly one of resolver.static and resolver.dns".to_string())),
            (Some(fixed), None) => {
                if fixed.hostnames.is_empty() {
                    problems.push(("resolver.static.hostnames".into(), "list at least one backend (host:port)".into()));
                }
                let mut seen = std::collections::BTreeSet::new();
                for (index, name) in fixed.hostnames.iter().enumerate() {
                    if !seen.insert(name) {
                        problems
                            .push((format!("resolver.static.hostnames[{index}]"), format!("{name} is listed twice")));
                    }
                }
            }
            (None, Some(dns)) => {
                if dns.interval < Duration::from_secs(1) {
                    problems.push(("resolver.dns.interval".into(), "must be at least 1s".into()));
                }
            }
        }
        if self.protocol.otlp.contains_key("endpoint") {
            problems.push(("protocol.otlp.endpoint".into(), "the resolver names the backends; remove endpoint".into()));
        } else if let Err(error) = self.backend("127.0.0.1:4317") {
            problems.push(("protocol.otlp".into(), error));
        }
        problems
    }

    /// The `otlp` exporter settings of backend `name` (`host:port`, or a URL).
    pub fn backend(&self, name: &str) -> Result<OtlpConfig, String> {
        let endpoint = if name.contains("://") { name.to_string() } else { format!("http://{name}") };
        let mut settings = self.protocol.otlp.clone();
        settings.insert("endpoint".into(), endpoint.into());
        serde_json::from_value(serde_json::Value::Object(settings)).map_err(|error| error.to_string())
    }

    /// The backends now: the static list, or what the DNS name resolves to (`ip:port`, sorted).
    pub fn members(&self) -> Result<Vec<String>, String> {
        if let Some(fixed) = &self.resolver.fixed {
            return Ok(fixed.hostnames.clone());
        }
        let Some(dns) = &self.resolver.dns else { return Ok(Vec::new()) };
        let addresses = (dns.hostname.as_str(), dns.port)
            .to_socket_addrs()
            .map_err(|error| format!("cannot resolve {}: {error}", dns.hostname))?;
        let mut members: Vec<String> = addresses.map(|address| address.to_string()).collect();
        members.sort();
        members.dedup();
        Ok(members)
    }
}
