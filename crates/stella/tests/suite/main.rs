//! Whole-binary tests: each module starts the real `stella` as a child process on free loopback ports
//! (see `common`), talks to it over real sockets and stops it with real signals. One test binary, so the
//! workspace links the world once for all of them.
#![allow(clippy::unwrap_used)]

mod common;

mod auth;
mod bad_input;
mod cli;
mod crash;
mod dora;
mod durability;
mod egress;
mod evidence;
mod faults;
mod federation;
mod loadbalancing;
mod metrics;
mod monitoring;
mod offline_kit;
mod otlp_http;
mod overload;
mod redaction;
mod relay;
mod reload;
mod sampling;
mod sigterm;
mod state;
mod store;
mod store_shards;
mod tls;
