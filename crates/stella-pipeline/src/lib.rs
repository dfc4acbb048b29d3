//! Pipeline stages over OTLP batches, with no knowledge of sockets or files.
//!
//! - [`Stage`]: the contract of a stateless stage; it mutates a [`Batch`](stella_otlp::Batch) in place and may
//!   drop items, saying how many and why.
//! - [`batch`]: the batch processor's settings (`send_batch_size`, `send_batch_max_size`, `timeout`), applied
//!   by the ingest-log consumers.
//! - [`resource_detection`]: adds what the collector knows about where it runs (env, system, container,
//!   Kubernetes, `deployment.environment.name`) to every resource.
#![deny(missing_docs)]

mod stage;

pub mod batch;
pub mod duration;
pub mod redaction;
pub mod resource_detection;
pub mod tail_sampling;

pub use stage::{Dropped, Stage};
