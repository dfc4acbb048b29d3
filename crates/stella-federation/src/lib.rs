//! Federation: sites share aggregated vulnerability-noise statistics with a hub only under a signed,
//! unexpired, unrevoked consent, and the hub can prove where every number came from.
//!
//! - [`Consent`] and [`Revocation`] are DSSE-signed statements; a consent is named by its
//!   [`consent_digest`] (`sha256:` + hex SHA-256 of the envelope's RFC 8785 bytes).
//! - [`aggregate`] turns observations into per-CVE buckets with k-anonymity; [`privacy`] adds optional
//!   Laplace noise from a keyed deterministic generator and keeps the per-consent epsilon budget.
//! - [`build_bundle`] signs the buckets with the consent linkage; [`verify_bundle`] checks digests,
//!   payload types, signatures, linkage, expiry and revocation, each failure with a stable code.
//! - [`service`]: all of it on a server, over the record repository (the tables and their rules).
#![deny(missing_docs)]

mod aggregate;
mod bundle;
mod consent;
mod error;
pub mod privacy;
pub mod service;
mod signer;

pub use aggregate::{Bucket, Buckets, Observation, aggregate, parse_observation};
pub use bundle::{
    BundleFile, BundleInput, BundlePayload, Privacy, VerifiedBundle, WindowText, build_bundle, verify_bundle,
};
pub use consent::{
    Consent, Revocation, consent_digest, envelope_digest, revoked_digest, sign_consent, sign_revocation, verify_consent,
};
pub use error::FederationError;
pub use signer::{FederationSigner, UNSIGNED_KEYID};

/// DSSE payload type of a consent.
pub const CONSENT_PAYLOAD_TYPE: &str = "application/vnd.stellaops.federation.consent+json";
/// DSSE payload type of a revocation.
pub const REVOCATION_PAYLOAD_TYPE: &str = "application/vnd.stellaops.federation.revocation+json";
/// DSSE payload type of a bundle.
pub const BUNDLE_PAYLOAD_TYPE: &str = "application/vnd.stellaops.federation.bundle+json";

#[cfg(test)]
mod tests;
