//! Pipeline stages over OTLP batches, with no knowledge of sockets or files.
//!
//! - [`Stage`]: the contract of a stateless stage; it mutates a [`Batch`](stella_otlp::Batch) in place and may
//!   drop items, saying how many and why.
//! - [`batch`]: the batch processor's settings (`send_batch_size`, `send_batch_max_size`, `timeout`), applied
//!   by the ingest-log consumers.
//! - [`resource_detection`]: adds what the collector knows about where it runs (env, system, container,
//!   Kubernetes, `deployment.environment.name`) to every resource.
//! - [`redaction`]: keeps secrets and personal data out of everything stored or sent (before the log).
//! - [`tail_sampling`]: keeps whole traces by policy within a memory budget (a consumer of the log).
//! - [`incident`]: incident mode, the per-tenant state tail samplers read.
#![deny(missing_docs)]

mod stage;

pub mod batch;
pub mod duration;
pub mod incident;
pub mod redaction;
pub mod resource_detection;
pub mod spanmetrics;
pub mod tail_sampling;

pub use stage::{Dropped, Stage};
