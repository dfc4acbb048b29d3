//! The OTLP receivers: one protocol service ([`OtlpService`]) and two transports over it, gRPC
//! ([`otlp_grpc`]) and HTTP ([`otlp_http`], protobuf and JSON on one port). Each transport only decodes,
//! calls the service and maps its answer to its own status codes.
mod admission;
mod body;
mod decompress;
mod metrics;
mod quota;
mod response;
mod service;
mod status;

pub mod otlp_grpc;
pub mod otlp_http;

pub use admission::{Admission, Overloaded, ProtocolAdmission};
pub use metrics::ReceiverMetrics;
pub use quota::{OverQuota, QuotaConfig, Quotas};
pub use service::{OtlpService, Protocol, Refusal};
