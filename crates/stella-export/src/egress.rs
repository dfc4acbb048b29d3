//! The egress policy: every outbound connection asks [`EgressPolicy::check`] first.
//!
//! Loopback (IP literals in 127.0.0.0/8 or ::1, and `localhost`) is always allowed. Anything else must
//! match an `egress.allow` rule (absent: loopback only). With `egress.sealed: true` every non-loopback
//! endpoint is refused without resolving a single name (a host name other than `localhost` counts as
//! non-loopback): the component stays inert and the operator is told exactly what to change.
use std::net::IpAddr;

use ipnet::IpNet;

/// One `egress.allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// An exact host name (case-insensitive) or IP literal.
    Exact(String),
    /// `*.example.com`: any subdomain of it.
    Suffix(String),
    /// An IP range for IP-literal endpoints.
    Cidr(IpNet),
}

/// The policy every outbound call site asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    rules: Vec<EgressRule>,
    sealed: bool,
}

/// The parts of an endpoint the policy looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http`, `https`.
    pub scheme: String,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// The port (the scheme's default when absent).
    pub port: u16,
}

/// Why an endpoint may not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressDenied {
    /// Sealed mode: no non-loopback endpoint.
    #[error("egress is sealed: {endpoint} is not loopback; {remediation}")]
    Sealed {
        /// The endpoint.
        endpoint: String,
        /// What the operator can do.
        remediation: String,
    },
    /// No allow rule matches.
    #[error("{endpoint} is not allowed by egress.allow; {remediation}")]
    NotAllowed {
        /// The endpoint.
        endpoint: String,
        /// What the operator can do.
        remediation: String,
    },
    /// The endpoint is not a URL the policy can judge.
    #[error("{endpoint:?} is not a valid endpoint URL: {reason}; write it like https://collector.example.com:4318")]
    Invalid {
        /// The text given.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
}

impl EgressDenied {
    /// `sealed`, `not_allowed` or `invalid`: the `reason` field of the structured warning.
    pub fn reason(&self) -> &'static str {
        match self {
            EgressDenied::Sealed { .. } => "sealed",
            EgressDenied::NotAllowed { .. } => "not_allowed",
            EgressDenied::Invalid { .. } => "invalid",
        }
    }

    /// What the operator should change.
    pub fn remediation(&self) -> String {
        match self {
            EgressDenied::Sealed { remediation, .. } | EgressDenied::NotAllowed { remediation, .. } => {
                remediation.clone()
            }
            EgressDenied::Invalid { .. } => "fix the endpoint URL".into(),
        }
    }
}

impl Endpoint {
    /// Parses `scheme://host[:port][/path]`.
    pub fn parse(text: &str) -> Result<Endpoint, EgressDenied> {
        let invalid = |reason: &str| EgressDenied::Invalid { endpoint: text.to_string(), reason: reason.to_string() };
        let uri: http::Uri = text.parse().map_err(|error: http::uri::InvalidUri| invalid(&error.to_string()))?;
        let scheme = uri.scheme_str().ok_or_else(|| invalid("no scheme"))?.to_ascii_lowercase();
        let host = uri
            .host()
            .ok_or_else(|| invalid("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = match (uri.port_u16(), scheme.as_str()) {
            (Some(port), _) => port,
            (None, "https") => 443,
            (None, "http") => 80,
            (None, _) => return Err(invalid("no port and no default port for this scheme")),
        };
        Ok(Endpoint { scheme, host, port })
    }

    /// Whether the endpoint is this machine, decided without resolving any name.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

impl EgressRule {
    /// Parses an allow entry: `https://host:port`, `host:port`, `host`, `*.example.com`, or a CIDR.
    pub fn parse(text: &str) -> Result<EgressRule, String> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(EgressRule { scheme: None, host: HostPattern::Cidr(net), port: None });
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
            None => (None, text),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, _)) if !host.ends_with(']') && host.contains(':') => (rest, None),
            Some((host, port)) => {
                let port = port.parse::<u16>().map_err(|_| format!("{port:?} is not a port number"))?;
                (host, Some(port))
            }
            None => (rest, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host.is_empty() {
            return Err("no host; write e.g. https://collector.example.com:4318, *.example.com or 10.0.0.0/8".into());
        }
        let pattern = match host.strip_prefix("*.") {
            Some(suffix) => HostPattern::Suffix(format!(".{suffix}")),
            None => HostPattern::Exact(host),
        };
        Ok(EgressRule { scheme, host: pattern, port })
    }

    fn matches(&self, endpoint: &Endpoint) -> bool {
        if self.scheme.as_ref().is_some_and(|scheme| scheme != &endpoint.scheme)
            || self.port.is_some_and(|port| port != endpoint.port)
        {
            return false;
        }
        match &self.host {
            HostPattern::Exact(host) => host == &endpoint.host,
            HostPattern::Suffix(suffix) => endpoint.host.ends_with(suffix.as_str()),
            HostPattern::Cidr(net) => endpoint.host.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip)),
        }
    }
}

impl EgressPolicy {
    /// A policy from allow rules and the sealed flag.
    pub fn new(rules: Vec<EgressRule>, sealed: bool) -> Self {
        EgressPolicy { rules, sealed }
    }

    /// Whether egress is sealed.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// Decides whether `endpoint` (a URL) may be reached.
    pub fn check(&self, endpoint: &str) -> Result<Endpoint, EgressDenied> {
        let parsed = Endpoint::parse(endpoint)?;
        if parsed.is_loopback() {
            return Ok(parsed);
        }
        if self.sealed {
            let remediation = "egress.sealed is true, so only loopback endpoints are used; set egress.sealed: false (and allow the endpoint under egress.allow) or send to a loopback endpoint such as the file exporter's staging directory".to_string();
            return Err(EgressDenied::Sealed { endpoint: parsed.to_string(), remediation });
        }
        if self.rules.iter().any(|rule| rule.matches(&parsed)) {
            return Ok(parsed);
        }
        let remediation = format!("add `- {parsed}` under egress.allow");
        Err(EgressDenied::NotAllowed { endpoint: parsed.to_string(), remediation })
    }
}

/// The stand-in for an exporter whose endpoint egress forbids (sealed mode): it never connects, and
/// refuses every batch for good, so its consumer drops and counts the data (`reason="egress_sealed"`)
/// instead of letting the log fill up behind an exporter that cannot run.
pub struct SealedExporter {
    id: String,
    endpoint: String,
}

impl SealedExporter {
    /// The inert stand-in for exporter `id` that would have sent to `endpoint`.
    pub fn new(id: String, endpoint: String) -> Self {
        SealedExporter { id, endpoint }
    }
}

impl crate::Exporter for SealedExporter {
    fn id(&self) -> &str {
        &self.id
    }

    fn export<'a>(
        &'a self,
        _batch: &'a stella_otlp::Batch,
        _delivery: crate::Delivery<'a>,
    ) -> crate::BoxFuture<'a, Result<(), crate::ExportError>> {
        Box::pin(async move { Err(crate::ExportError::EgressBlocked { endpoint: self.endpoint.clone() }) })
    }

    fn health(&self) -> crate::ExporterHealth {
        crate::ExporterHealth::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str], sealed: bool) -> EgressPolicy {
        EgressPolicy::new(rules.iter().map(|rule| EgressRule::parse(rule).unwrap()).collect(), sealed)
    }

    #[test]
    fn loopback_is_always_allowed_even_sealed() {
        let sealed = policy(&[], true);
        for endpoint in ["http://127.0.0.1:4317", "http://localhost:4318", "https://[::1]:443", "http://127.8.9.10"] {
            assert!(sealed.check(endpoint).is_ok(), "{endpoint}");
        }
    }

    #[test]
    fn non_loopback_needs_a_rule() {
        let open =
            policy(&["https://collector.example.com:4318", "*.corp.example", "10.0.0.0/8", "http://tempo:4317"], false);
        assert!(open.check("https://collector.example.com:4318/v1/traces").is_ok());
        assert!(open.check("http://collector.example.com:4318").is_err(), "scheme must match");
        assert!(open.check("https://collector.example.com:4319").is_err(), "port must match");
        assert!(open.check("https://a.b.corp.example").is_ok());
        assert!(open.check("https://corp.example").is_err(), "*.x matches subdomains only");
        assert!(open.check("http://10.1.2.3:4318").is_ok());
        assert!(open.check("http://11.1.2.3:4318").is_err());
        assert!(open.check("http://tempo:4317").is_ok());
        let denied = policy(&[], false).check("https://collector.example.com:4318").unwrap_err();
        assert_eq!(denied.remediation(), "add `- https://collector.example.com:4318` under egress.allow");
    }

    #[test]
    fn sealed_refuses_names_without_resolving_them() {
        let sealed = policy(&["*.invalid"], true);
        let denied = sealed.check("http://collector.invalid:4318").unwrap_err();
        assert_eq!(denied.reason(), "sealed");
        assert!(denied.remediation().contains("egress.sealed: false"));
    }

    #[test]
    fn bad_endpoints_and_rules_are_reported() {
        assert_eq!(policy(&[], false).check("not a url").unwrap_err().reason(), "invalid");
        assert!(EgressRule::parse("https://:99").is_err());
        assert!(EgressRule::parse("host:port").is_err());
    }
}
