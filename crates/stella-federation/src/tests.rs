use std::collections::BTreeSet;

use jiff::Timestamp;
use stella_evidence::dsse::Envelope;
use stella_evidence::{SigningKey, TrustStore};

use super::privacy::Budget;
use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|error| panic!("{error}"))
}

fn ed25519(seed: u8) -> SigningKey {
    SigningKey::from_ed25519_seed(&[seed; 32])
}

fn trust(keys: &[&SigningKey]) -> TrustStore {
    let mut store = TrustStore::default();
    for key in keys {
        store.insert(key.trusted_key());
    }
    store
}

fn terms() -> Consent {
    Consent {
        federation_id: "fed-eu".into(),
        site_alias: "site-a".into(),
        scope: "vuln-noise-aggregates".into(),
        purpose: "triage benchmarking".into(),
        not_before: at("2026-11-01T00:00:00Z"),
        expires_at: at("2026-12-01T00:00:00Z"),
        granted_by: "admin@site-a".into(),
    }
}

/// `artifacts` distinct artifacts observing `cve`, the first `noisy` of them noise.
fn observations(cve: &str, artifacts: usize, noisy: usize) -> Vec<Observation> {
    (0..artifacts)
        .map(|n| Observation {
            cve_id: cve.into(),
            artifact_digest: format!("sha256:{n:064x}"),
            noisy: n < noisy,
            observed_at: at("2026-11-10T12:00:00Z"),
        })
        .collect()
}

fn sample() -> Vec<Observation> {
    [observations("CVE-2026-0002", 6, 2), observations("CVE-2026-0001", 5, 5), observations("CVE-2026-0003", 4, 1)]
        .concat()
}

fn build(
    signer: &FederationSigner,
    observations: &[Observation],
    epsilon: Option<f64>,
) -> (BundleFile, BundlePayload, Envelope) {
    let consent = sign_consent(&terms(), signer).unwrap_or_else(|error| panic!("{error}"));
    let input = BundleInput {
        consent: &consent,
        terms: &terms(),
        observations,
        window: (at("2026-11-08T00:00:00Z"), at("2026-11-15T00:00:00Z")),
        k: 5,
        epsilon,
        noise_key: b"noise key",
    };
    let (file, payload) = build_bundle(&input, signer).unwrap_or_else(|error| panic!("{error}"));
    (file, payload, consent)
}

fn code(result: Result<VerifiedBundle, FederationError>) -> &'static str {
    result.err().map_or("ok", |error| error.code())
}

#[test]
fn a_bundle_verifies_and_keeps_k_anonymous_buckets_in_order() {
    let key = ed25519(1);
    let signer = FederationSigner::key(key.clone());
    let (file, payload, consent) = build(&signer, &sample(), None);
    let cves: Vec<&str> = payload.buckets.iter().map(|bucket| bucket.cve_id.as_str()).collect();
    assert_eq!(cves, ["CVE-2026-0001", "CVE-2026-0002"], "k = 5: 4 artifacts suppressed, 5 kept (the boundary)");
    assert_eq!(payload.privacy.suppressed_buckets, 1);
    assert_eq!(
        (payload.buckets[1].noisy_count, payload.buckets[1].artifact_count, payload.buckets[1].observation_count),
        (2, 6, 6)
    );
    assert_eq!(payload.consent_digest, consent_digest(&consent));
    assert_eq!(payload.site_alias, "site-a", "the alias, never the tenant id");
    let verified = verify_bundle(&file.to_json(), &trust(&[&key]), &BTreeSet::new(), false)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!((verified.bundle_id, verified.unsigned), (file.bundle_id, false));
}

#[test]
fn identical_inputs_give_the_identical_bundle_id_and_envelope_digest() {
    for signer in [
        FederationSigner::key(ed25519(2)),
        FederationSigner::key(SigningKey::from_hmac_secret(&[7; 32]).unwrap_or_else(|error| panic!("{error}"))),
    ] {
        let (first, _, _) = build(&signer, &sample(), Some(1.0));
        let (again, _, _) = build(&signer, &sample(), Some(1.0));
        assert_eq!(
            (first.bundle_id.as_str(), first.bundle_digest.as_str()),
            (again.bundle_id.as_str(), again.bundle_digest.as_str())
        );
        assert_eq!(first.to_json(), again.to_json());
        let (other, _, _) = build(&signer, &sample()[1..], Some(1.0));
        assert_ne!(first.bundle_id, other.bundle_id);
    }
}

#[test]
fn tampering_wrong_keys_payload_types_and_digests_fail_with_their_codes() {
    let key = ed25519(3);
    let signer = FederationSigner::key(key.clone());
    let (file, _, _) = build(&signer, &sample(), None);
    let trusted = trust(&[&key]);
    let none = BTreeSet::new();
    // Payload tamper: the recorded digest no longer matches.
    let text = String::from_utf8(file.to_json()).unwrap_or_default();
    let payload = file.bundle.unverified_payload().to_vec();
    let mut changed = payload.clone();
    let position = changed.windows(4).position(|window| window == b"\"noi").unwrap_or(0);
    changed[position + 14] ^= 1;
    let tampered = BundleFile {
        bundle: Envelope::from_parts(BUNDLE_PAYLOAD_TYPE, changed.clone(), file.bundle.signatures().to_vec()),
        ..file.clone()
    };
    assert_eq!(code(verify_bundle(&tampered.to_json(), &trusted, &none, false)), "federation.dsse.digest_mismatch");
    // ... and with the digest recomputed, the signature fails.
    let redigested = BundleFile { bundle_digest: envelope_digest(&tampered.bundle), ..tampered };
    assert_eq!(code(verify_bundle(&redigested.to_json(), &trusted, &none, false)), "federation.dsse.verify_failed");
    // Signature tamper.
    let mut signatures = file.bundle.signatures().to_vec();
    signatures[0].sig[0] ^= 1;
    let bad_sig = Envelope::from_parts(BUNDLE_PAYLOAD_TYPE, payload.clone(), signatures);
    let bad = BundleFile { bundle_digest: envelope_digest(&bad_sig), bundle: bad_sig, ..file.clone() };
    assert_eq!(code(verify_bundle(&bad.to_json(), &trusted, &none, false)), "federation.dsse.verify_failed");
    // Wrong key.
    assert_eq!(
        code(verify_bundle(text.as_bytes(), &trust(&[&ed25519(4)]), &none, false)),
        "federation.dsse.untrusted_key"
    );
    // Payload type.
    let retyped = Envelope::sign("application/vnd.other+json", &payload, &key);
    let other = BundleFile { bundle_digest: envelope_digest(&retyped), bundle: retyped, ..file.clone() };
    assert_eq!(code(verify_bundle(&other.to_json(), &trusted, &none, false)), "federation.dsse.payload_type_mismatch");
    // Another consent carried than the one named.
    let mut other_terms = terms();
    other_terms.purpose = "something else".into();
    let swapped = BundleFile {
        consent: sign_consent(&other_terms, &signer).unwrap_or_else(|error| panic!("{error}")),
        ..file.clone()
    };
    assert_eq!(code(verify_bundle(&swapped.to_json(), &trusted, &none, false)), "federation.consent.digest_mismatch");
}

#[test]
fn expired_or_revoked_consents_refuse_bundles_that_are_validly_signed() {
    let key = SigningKey::from_hmac_secret(&[9; 32]).unwrap_or_else(|error| panic!("{error}"));
    let signer = FederationSigner::key(key.clone());
    let mut short = terms();
    short.expires_at = at("2026-11-10T00:00:00Z");
    let consent = sign_consent(&short, &signer).unwrap_or_else(|error| panic!("{error}"));
    let input = BundleInput {
        consent: &consent,
        terms: &short,
        observations: &[],
        window: (at("2026-11-08T00:00:00Z"), at("2026-11-15T00:00:00Z")),
        k: 5,
        epsilon: None,
        noise_key: b"",
    };
    assert_eq!(build_bundle(&input, &signer).err().map(|error| error.code()), Some("federation.consent.expired"));
    // A validly signed bundle whose window ends after the consent expired is refused by the verifier.
    let (file, payload, consent) = build(&signer, &sample(), None);
    let trusted = trust(&[&key]);
    let mut late = payload.clone();
    late.window.to = "2026-12-02T00:00:00Z".into();
    let bytes = stella_evidence::canonical::to_vec(&late).unwrap_or_default();
    let envelope = Envelope::sign(BUNDLE_PAYLOAD_TYPE, &bytes, &key);
    let late_file = BundleFile {
        bundle_id: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        bundle_digest: envelope_digest(&envelope),
        bundle: envelope,
        consent: consent.clone(),
    };
    assert_eq!(
        code(verify_bundle(&late_file.to_json(), &trusted, &BTreeSet::new(), false)),
        "federation.consent.expired"
    );
    let revocation = Revocation {
        consent_digest: consent_digest(&consent),
        revoked_at: at("2026-11-20T00:00:00Z"),
        revoked_by: "admin@site-a".into(),
        reason: "withdrawn".into(),
    };
    let statement = sign_revocation(&revocation, &signer).unwrap_or_else(|error| panic!("{error}"));
    let revoked: BTreeSet<String> = [revoked_digest(&statement, &trusted, false).unwrap_or_default()].into();
    assert_eq!(code(verify_bundle(&file.to_json(), &trusted, &revoked, false)), "federation.consent.revoked");
    assert_eq!(code(verify_bundle(&file.to_json(), &trusted, &BTreeSet::new(), false)), "ok");
}

#[test]
fn the_unsigned_fallback_is_refused_unless_accepted_and_no_signer_is_an_error() {
    let (file, _, _) = build(&FederationSigner::UnsignedFallback, &sample(), None);
    let text = String::from_utf8(file.to_json()).unwrap_or_default();
    assert!(text.contains(r#""signatures":[{"keyid":"offline-unsigned-fallback","sig":""}]"#), "{text}");
    let none = BTreeSet::new();
    assert_eq!(
        code(verify_bundle(text.as_bytes(), &TrustStore::default(), &none, false)),
        "federation.dsse.verify_failed"
    );
    let accepted =
        verify_bundle(text.as_bytes(), &TrustStore::default(), &none, true).unwrap_or_else(|error| panic!("{error}"));
    assert!(accepted.unsigned);
    assert_eq!(
        sign_consent(&terms(), &FederationSigner::Unavailable).err().map(|error| error.code()),
        Some("federation.dsse.signer_unavailable")
    );
}

#[test]
fn the_budget_refuses_new_bundles_once_spent_and_re_issues_cost_nothing() {
    let mut budget = Budget::default();
    assert!(budget.charge("c", "bundle-1", 0.6, 1.0).is_ok());
    assert!(budget.charge("c", "bundle-1", 0.6, 1.0).is_ok(), "re-issuing the same bundle id is free");
    let refused = budget.charge("c", "bundle-2", 0.6, 1.0);
    assert_eq!(refused.err().map(|error| error.code()), Some("federation.privacy.budget_exhausted"));
    assert!(budget.charge("c", "bundle-3", 0.4, 1.0).is_ok(), "exactly the rest still fits");
    assert_eq!(budget.total(), 1.0);
}

#[test]
fn laplace_noise_is_keyed_deterministic_and_centred() {
    let draws: Vec<f64> = (0..20_000u32).map(|n| privacy::laplace(b"key", &n.to_be_bytes(), 1.0)).collect();
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    let mean_abs = draws.iter().map(|draw| draw.abs()).sum::<f64>() / draws.len() as f64;
    assert!(mean.abs() < 0.05, "{mean}");
    assert!((mean_abs - 1.0).abs() < 0.05, "E|X| of Laplace(0, 1) is 1: {mean_abs}");
    assert_eq!(privacy::laplace(b"key", b"x", 1.0), privacy::laplace(b"key", b"x", 1.0));
    assert_ne!(privacy::laplace(b"key", b"x", 1.0), privacy::laplace(b"other", b"x", 1.0));
}
