//! The collector: config model and validation ([`config`]), the OTLP receivers ([`receivers`]), the
//! wiring of stages, the ingest logs ([`logs`]) and their consumers into pipelines ([`topology`]), and the running [`Collector`] with reload
//! and staged shutdown. Stage logic lives in `stella-pipeline`, sinks in `stella-export`.
#![deny(missing_docs)]

mod collector;
mod consumer;

pub mod logs;

pub mod config;
pub mod receivers;
pub mod topology;

pub use collector::{
    Collector, ComponentState, ConfigSource, Readiness, ReloadError, ReloadReport, StartError, spawn_http,
};
