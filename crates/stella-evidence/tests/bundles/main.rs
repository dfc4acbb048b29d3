#![allow(clippy::unwrap_used)]
//! Forensic bundles through the public API: round trips, determinism, tampering, hostile archives and
//! properties over arbitrary and mutated input.
mod fixtures;
mod hostile;
mod properties;
mod round_trip;
mod tampering;
