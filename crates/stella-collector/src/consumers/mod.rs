//! The consumers of the ingest logs: exporters ([`export`]), the store's sealer ([`seal`]) and the tail
//! sampler ([`sample`]), each a [`Sink`](driver::Sink) run by the one [`driver`], which holds the rules
//! they share (start, damage, cursor, backoff, health). [`health`] is what `/readyz` and the backlog
//! gauges read.
//!
//! ```text
//!  ingest log ─▶ driver ─▶ sink ─▶ exporter | chunks | <pipeline>.sampled
//!                  │
//!                  └─ cursors/<consumer>.json (the sampler: tail_sampling.ckpt), health
//! ```
mod driver;
mod export;
mod health;
mod progress;
mod sample;
mod seal;

pub use driver::ConsumerControl;
pub(crate) use driver::{CursorFile, DriverSpec, drive};
pub use export::ExportSink;
pub use health::{Condition, ConsumerBoard, ConsumerHealth};
pub use progress::LogProgress;
pub use sample::{CHECKPOINT_INTERVAL, SamplerMetrics, SamplerRegistry, SamplerSink, SamplerSpec};
pub use seal::{SealSink, StoreMetrics};
