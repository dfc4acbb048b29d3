use std::fmt;
use std::str::FromStr;

/// One of the three OTLP signals; every pipeline, request and file belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Spans (`/v1/traces`, `TraceService/Export`).
    Traces,
    /// Metric data points (`/v1/metrics`, `MetricsService/Export`).
    Metrics,
    /// Log records (`/v1/logs`, `LogsService/Export`).
    Logs,
}

impl Signal {
    /// All signals, in the order pipelines and reports list them.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// The lowercase name used in config keys, URL paths and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// The protobuf message of an export request of this signal (`ExportTraceServiceRequest`, ...).
    pub fn request_name(self) -> &'static str {
        match self {
            Signal::Traces => "ExportTraceServiceRequest",
            Signal::Metrics => "ExportMetricsServiceRequest",
            Signal::Logs => "ExportLogsServiceRequest",
        }
    }

    /// What one item of this signal is called in `partial_success` messages and metrics.
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not `traces`, `metrics` or `logs`.
#[derive(Debug, thiserror::Error)]
#[error("unknown signal {0:?}; expected traces, metrics or logs")]
pub struct UnknownSignal(pub String);

impl FromStr for Signal {
    type Err = UnknownSignal;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "traces" => Ok(Signal::Traces),
            "metrics" => Ok(Signal::Metrics),
            "logs" => Ok(Signal::Logs),
            other => Err(UnknownSignal(other.to_string())),
        }
    }
}
