#![allow(clippy::unwrap_used)]
//! Offline kits through the public API: round trips, determinism, tampering, hostile archives, extraction,
//! build refusals and properties over mutated kits.
mod building;
mod extract;
mod fixtures;
mod hostile;
mod properties;
#[path = "../common/raw_tar.rs"]
mod raw_tar;
mod release;
mod round_trip;
mod tampering;
