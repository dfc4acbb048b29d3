//! Differential privacy: Laplace noise on bucket counts from a keyed deterministic generator (the same
//! inputs and key give the same noise, so a bundle re-issued is byte-identical), and the per-consent
//! epsilon budget.
use std::collections::BTreeMap;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::aggregate::{Bucket, sort};
use crate::error::FederationError;

/// A uniform draw in (0, 1) keyed by `key`, for `label`.
fn uniform(key: &[u8], label: &[u8]) -> f64 {
    let mut mac = match <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return 0.5,
    };
    mac.update(label);
    let bytes = mac.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    // 53 random bits, shifted off both ends of [0, 1).
    ((u64::from_be_bytes(first) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A Laplace(0, `scale`) draw keyed by `key` for `label` (inverse CDF of a keyed uniform).
pub fn laplace(key: &[u8], label: &[u8], scale: f64) -> f64 {
    let u = uniform(key, label) - 0.5;
    -scale * u.signum() * (1.0 - 2.0 * u.abs()).ln()
}

/// `buckets` with Laplace noise of scale 1/`epsilon` (each observation changes a count by at most one)
/// added to every count, rounded and floored at 0; `seed` (the canonical bundle input) and `key` make
/// the draws. The order is restored afterwards.
pub fn noisy(buckets: &[Bucket], epsilon: f64, key: &[u8], seed: &[u8]) -> Vec<Bucket> {
    let scale = 1.0 / epsilon;
    let noise = |cve: &str, field: &str, value: u64| {
        let label = [seed, b"\0", cve.as_bytes(), b"\0", field.as_bytes()].concat();
        (value as f64 + laplace(key, &label, scale)).round().max(0.0) as u64
    };
    let mut out: Vec<Bucket> = buckets
        .iter()
        .map(|bucket| Bucket {
            cve_id: bucket.cve_id.clone(),
            noisy_count: noise(&bucket.cve_id, "noisyCount", bucket.noisy_count),
            artifact_count: noise(&bucket.cve_id, "artifactCount", bucket.artifact_count),
            observation_count: noise(&bucket.cve_id, "observationCount", bucket.observation_count),
        })
        .collect();
    sort(&mut out);
    out
}

/// One consent's epsilon budget: what each bundle id spent. Re-issuing a bundle id costs nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    /// Epsilon spent, by bundle id.
    pub spent: BTreeMap<String, f64>,
}

impl Budget {
    /// Epsilon spent so far.
    pub fn total(&self) -> f64 {
        self.spent.values().sum()
    }

    /// Charges `epsilon` for `bundle_id` of consent `consent` against `budget`; free when the id was
    /// charged before; refused when it would exceed the budget.
    pub fn charge(&mut self, consent: &str, bundle_id: &str, epsilon: f64, budget: f64) -> Result<(), FederationError> {
        if self.spent.contains_key(bundle_id) {
            return Ok(());
        }
        let spent = self.total();
        if spent + epsilon > budget + 1e-9 {
            return Err(FederationError::BudgetExhausted { consent: consent.into(), spent, budget, needed: epsilon });
        }
        self.spent.insert(bundle_id.to_string(), epsilon);
        Ok(())
    }
}
