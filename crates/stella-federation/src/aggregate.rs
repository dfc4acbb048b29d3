//! Observations and their per-CVE buckets.
use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::FederationError;

/// Longest CVE id or artifact digest accepted.
const MAX_FIELD: usize = 256;

/// One tenant's observation: was this CVE's finding on this artifact noise?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// `CVE-2026-12345`.
    pub cve_id: String,
    /// `sha256:<hex>` of the artifact.
    pub artifact_digest: String,
    /// Whether the finding was noise.
    pub noisy: bool,
    /// When.
    pub observed_at: Timestamp,
}

/// An observation from its JSON form `{cve_id, artifact_digest, noisy, observed_at}`.
pub fn parse_observation(value: &Value) -> Result<Observation, FederationError> {
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty() && text.len() <= MAX_FIELD)
            .ok_or_else(|| {
                FederationError::Malformed(format!("{key}: missing, empty or longer than {MAX_FIELD} bytes"))
            })
    };
    let cve_id = text("cve_id")?.to_string();
    let artifact_digest = text("artifact_digest")?.to_string();
    let noisy = value
        .get("noisy")
        .and_then(Value::as_bool)
        .ok_or_else(|| FederationError::Malformed("noisy: missing; give true or false".into()))?;
    let observed_at = text("observed_at")?
        .parse::<Timestamp>()
        .map_err(|error| FederationError::Malformed(format!("observed_at: not an RFC 3339 time ({error})")))?;
    Ok(Observation { cve_id, artifact_digest, noisy, observed_at })
}

/// One CVE's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// The CVE.
    pub cve_id: String,
    /// Observations that were noise.
    pub noisy_count: u64,
    /// Distinct artifacts.
    pub artifact_count: u64,
    /// Observations.
    pub observation_count: u64,
}

/// Buckets of a window, and how many were suppressed by k-anonymity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    /// Kept buckets, ordered by `cveId` (ordinal), then `noisyCount` descending, then `artifactCount`,
    /// then `observationCount`.
    pub buckets: Vec<Bucket>,
    /// Buckets with fewer than `k` distinct artifacts, left out.
    pub suppressed: u64,
}

/// The buckets of the observations in `[from, to)`; buckets of fewer than `k` distinct artifacts are
/// suppressed and counted.
pub fn aggregate(observations: &[Observation], (from, to): (Timestamp, Timestamp), k: u64) -> Buckets {
    let mut per_cve: BTreeMap<&str, (u64, BTreeSet<&str>, u64)> = BTreeMap::new();
    for observation in
        observations.iter().filter(|observation| from <= observation.observed_at && observation.observed_at < to)
    {
        let entry = per_cve.entry(&observation.cve_id).or_default();
        entry.0 += u64::from(observation.noisy);
        entry.1.insert(&observation.artifact_digest);
        entry.2 += 1;
    }
    let mut suppressed = 0;
    let mut buckets: Vec<Bucket> = per_cve
        .into_iter()
        .filter_map(|(cve, (noisy, artifacts, observations))| {
            let artifact_count = artifacts.len() as u64;
            if artifact_count < k {
                suppressed += 1;
                return None;
            }
            Some(Bucket {
                cve_id: cve.to_string(),
                noisy_count: noisy,
                artifact_count,
                observation_count: observations,
            })
        })
        .collect();
    sort(&mut buckets);
    Buckets { buckets, suppressed }
}

/// The bundle order.
pub(crate) fn sort(buckets: &mut [Bucket]) {
    buckets.sort_by(|a, b| {
        a.cve_id
            .as_bytes()
            .cmp(b.cve_id.as_bytes())
            .then(b.noisy_count.cmp(&a.noisy_count))
            .then(a.artifact_count.cmp(&b.artifact_count))
            .then(a.observation_count.cmp(&b.observation_count))
    });
}
