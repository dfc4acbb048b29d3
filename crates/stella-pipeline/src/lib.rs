//! Pipeline stages over OTLP batches, with no knowledge of sockets or files.
//!
//! - [`Stage`]: the contract of a stateless stage; it mutates a [`Batch`](stella_otlp::Batch) in place and may
//!   drop items, saying how many and why.
//! - [`batch`]: the batch processor, a task that merges requests of one tenant into larger batches
//!   (`send_batch_size`, `send_batch_max_size`, `timeout`) and carries every acknowledgement it absorbed.
//! - [`resource_detection`]: adds what the collector knows about where it runs (env, system, container,
//!   Kubernetes, `deployment.environment.name`) to every resource.
#![deny(missing_docs)]

mod stage;

pub mod batch;
pub mod duration;
pub mod resource_detection;

pub use stage::{Dropped, Stage};
