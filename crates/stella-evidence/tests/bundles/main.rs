#![allow(clippy::unwrap_used)]
//! Forensic bundles through the public API: round trips, determinism, tampering, hostile archives and
//! properties over arbitrary and mutated input.
mod fixtures;
mod hostile;
mod properties;
#[path = "../common/raw_tar.rs"]
mod raw_tar;
mod round_trip;
mod tampering;
