//! The one table from why a request was not taken to what both transports answer: the HTTP status, the
//! gRPC code (also the `code` of OTLP/HTTP's `Status` body), and whether the client should retry and
//! when (`Retry-After`).
use super::body::BodyError;
use super::{Overloaded, Refusal};

/// gRPC status codes used by the receivers.
pub(crate) mod grpc {
    pub const OK: u16 = 0;
    pub const INVALID_ARGUMENT: u16 = 3;
    pub const DEADLINE_EXCEEDED: u16 = 4;
    pub const PERMISSION_DENIED: u16 = 7;
    pub const RESOURCE_EXHAUSTED: u16 = 8;
    pub const UNIMPLEMENTED: u16 = 12;
    pub const INTERNAL: u16 = 13;
    pub const UNAVAILABLE: u16 = 14;
    pub const UNAUTHENTICATED: u16 = 16;
}

/// What to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    /// The HTTP status (OTLP/HTTP; also what a gRPC proxy would see).
    pub http: u16,
    /// The gRPC status code.
    pub grpc: u16,
    /// Seconds for `Retry-After`, when the client should retry.
    pub retry_after: Option<u64>,
    /// Send `WWW-Authenticate: Bearer` (a missing or invalid credential).
    pub challenge: bool,
}

const fn status(http: u16, grpc: u16) -> Status {
    Status { http, grpc, retry_after: None, challenge: false }
}

impl Refusal {
    /// What both transports answer.
    pub(crate) fn status(&self) -> Status {
        match self {
            Refusal::Unauthorized(error) if error.http_status() == 401 => {
                Status { challenge: true, ..status(401, grpc::UNAUTHENTICATED) }
            }
            Refusal::Unauthorized(_) | Refusal::UndeclaredTenant { .. } => status(403, grpc::PERMISSION_DENIED),
            Refusal::NoPipeline { .. } => status(404, grpc::UNIMPLEMENTED),
            Refusal::OverQuota(over) => {
                let seconds = over.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                Status { retry_after: Some(seconds), ..status(429, grpc::RESOURCE_EXHAUSTED) }
            }
            Refusal::ShuttingDown | Refusal::NotDelivered(_) => {
                Status { retry_after: Some(1), ..status(503, grpc::UNAVAILABLE) }
            }
        }
    }
}

impl Overloaded {
    /// What both transports answer: 429 / RESOURCE_EXHAUSTED, retry after a second; 413 for a request
    /// that can never fit the budget.
    pub(crate) fn status(&self) -> Status {
        match self {
            Overloaded::OverBudget { .. } => status(413, grpc::RESOURCE_EXHAUSTED),
            Overloaded::Concurrency { .. } | Overloaded::Memory { .. } => {
                Status { retry_after: Some(1), ..status(429, grpc::RESOURCE_EXHAUSTED) }
            }
        }
    }
}

impl BodyError {
    /// What both transports answer.
    pub(crate) fn status(&self) -> Status {
        match self {
            BodyError::TooLarge(_) => status(413, grpc::RESOURCE_EXHAUSTED),
            BodyError::Malformed(_) => status(400, grpc::INVALID_ARGUMENT),
            BodyError::Timeout(_) => status(408, grpc::DEADLINE_EXCEEDED),
            BodyError::Unsupported(_) => status(415, grpc::UNIMPLEMENTED),
            BodyError::Overloaded(overloaded) => overloaded.status(),
        }
    }

    /// The message for the client.
    pub(crate) fn message(self) -> String {
        match self {
            BodyError::TooLarge(message)
            | BodyError::Malformed(message)
            | BodyError::Timeout(message)
            | BodyError::Unsupported(message) => message,
            BodyError::Overloaded(overloaded) => overloaded.to_string(),
        }
    }
}
