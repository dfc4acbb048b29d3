//! The collector: config model and validation ([`config`]), the OTLP receivers ([`receivers`]), the
//! ingest logs ([`logs`]) with their consumers wired into pipelines ([`topology`]), TLS for every
//! listener ([`tls`]), and the running [`Collector`] with reload and staged shutdown. Stage logic lives
//! in `stella-pipeline`, sinks in `stella-export`, the log itself in `stella-store`.
#![deny(missing_docs)]

mod collector;
mod consumers;
mod own_metrics;
mod server;
mod store;
mod throttle;

pub mod auth;
pub mod config;
pub mod incidents;
pub mod jobs;
pub mod logs;
pub mod receivers;
pub mod tls;
pub mod topology;

pub use collector::{
    Collector, ComponentState, ConfigSource, OverlayCheck, Readiness, ReloadError, ReloadReport, StartError, bind,
    listener_tls, refuse_insecure_listeners,
};
pub use own_metrics::{OwnMetricsError, attribute, registry_request};
pub use server::{API_HEADER_TIMEOUT, spawn_server};
pub use store::{BackendUnusable, OfflineStore, StoreRegistry, reader_store};
