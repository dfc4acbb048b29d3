use std::fmt;
use std::str::FromStr;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send telemetry to the receivers.
    Ingest,
    /// Read data, metrics and reports of its tenant.
    Read,
    /// Export bundles of its tenant.
    Export,
    /// Tenant-wide actions: incident mode for its services, holds, consent.
    Admin,
    /// Server-wide actions: reload, tokens, audit, incident mode for all tenants; any tenant.
    Operator,
}

impl Scope {
    /// Every scope, in documentation order.
    pub const ALL: [Scope; 5] = [Scope::Ingest, Scope::Read, Scope::Export, Scope::Admin, Scope::Operator];

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Export => "export",
            Scope::Admin => "admin",
            Scope::Operator => "operator",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not a scope name.
#[derive(Debug, thiserror::Error)]
#[error("unknown scope {0:?}; scopes are ingest, read, export, admin, operator")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text.trim()).ok_or_else(|| UnknownScope(text.to_string()))
    }
}
