//! OTLP for Stella: the request types every other crate passes around, the spec-exact OTLP/JSON codec,
//! request validation (partial success) and the small helpers that iterate over items.
//!
//! Roles:
//! - [`Signal`] names traces, metrics or logs; [`OtlpRequest`] holds one decoded export request of any signal.
//! - [`json`] encodes and decodes OTLP/JSON per <https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>
//!   without the silent losses of the stock serde mapping (non-finite doubles, string numbers, empty arrays).
//! - [`validate`] removes the items a receiver must refuse and reports them as `partial_success`.
//! - [`Batch`] is what moves through a pipeline: a tenant's request plus the acknowledgements it carries.
//! - [`Ack`] lets a receiver wait until every sink has taken the items of its request.
#![deny(missing_docs)]

mod ack;
mod batch;
mod request;
mod signal;
mod status;

pub mod fuzzing;
pub mod json;
pub mod loki;
pub mod prometheus;
pub mod validate;
pub mod wire;

pub mod attributes;

pub use ack::{Ack, AckError, AckReceiver, SinkError};
pub use batch::Batch;
pub use opentelemetry_proto::tonic as proto;
pub use request::{DecodeError, OtlpRequest};
pub use signal::Signal;
pub use status::RpcStatus;
