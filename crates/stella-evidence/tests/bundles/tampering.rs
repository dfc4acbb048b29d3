//! Every way a bundle can be changed after signing gives its own stable code and exit code.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use stella_evidence::dsse::Envelope;
use stella_evidence::{BundleError, ErrorClass, KeyKind, Limits, SigningKey, TrustStore, verify_bundle};

use crate::fixtures::*;

fn verify(bundle: &[u8]) -> BundleError {
    verify_bundle(bundle, &trust(), &Limits::default()).unwrap_err()
}

#[test]
fn a_changed_payload_byte_is_a_digest_mismatch_naming_the_file() {
    let bundle = rebuilt(|entries| {
        let traces = position(entries, "otlp/traces.pb");
        entries[traces].data[100] ^= 1;
    });
    let error = verify(&bundle);
    assert!(matches!(&error, BundleError::DigestMismatch { file, .. } if file == "otlp/traces.pb"), "{error}");
    assert_eq!((error.code(), error.exit_code()), ("bundle.digest_mismatch", 10));
    assert!(error.to_string().contains("otlp/traces.pb"));
}

#[test]
fn a_payload_of_another_size_is_refused_before_it_is_read() {
    let bundle = rebuilt(|entries| {
        let logs = position(entries, "otlp/logs.pb");
        entries[logs].data.push(0);
        entries[logs].declared_size += 1;
    });
    let error = verify(&bundle);
    assert!(matches!(&error, BundleError::SizeMismatch { file, expected: 192, actual: 193 } if file == "otlp/logs.pb"));
    assert_eq!(error.class(), ErrorClass::DigestMismatch);
}

#[test]
fn a_manifest_copy_that_differs_from_the_signed_payload_is_a_digest_mismatch() {
    let bundle = rebuilt(|entries| {
        let manifest = position(entries, "manifest.json");
        let text = String::from_utf8(entries[manifest].data.clone()).unwrap().replace("acme", "evil");
        entries[manifest] = RawEntry::file("manifest.json", text.as_bytes());
    });
    let error = verify(&bundle);
    assert!(matches!(&error, BundleError::DigestMismatch { file, .. } if file == "manifest.json"), "{error}");
}

#[test]
fn a_changed_signed_manifest_is_an_invalid_signature() {
    let bundle = rebuilt(|entries| {
        let manifest = position(entries, "manifest.json");
        let text = String::from_utf8(entries[manifest].data.clone()).unwrap().replace("acme", "evil");
        let envelope = position(entries, "manifest.dsse.json");
        let mut json: serde_json::Value = serde_json::from_slice(&entries[envelope].data).unwrap();
        json["payload"] = STANDARD.encode(&text).into();
        entries[envelope] = RawEntry::file("manifest.dsse.json", &serde_json::to_vec(&json).unwrap());
        entries[manifest] = RawEntry::file("manifest.json", text.as_bytes());
    });
    let error = verify(&bundle);
    assert_eq!((error.code(), error.exit_code()), ("bundle.signature_invalid", 11), "{error}");
}

#[test]
fn a_key_outside_the_trust_store_is_untrusted() {
    let other = TrustStore::from_iter([SigningKey::generate(KeyKind::Ed25519).unwrap().trusted_key()]);
    let error = verify_bundle(bundle().as_slice(), &other, &Limits::default()).unwrap_err();
    assert_eq!((error.code(), error.exit_code()), ("bundle.untrusted_key", 12), "{error}");
    let error = verify_bundle(bundle().as_slice(), &TrustStore::default(), &Limits::default()).unwrap_err();
    assert_eq!(error.class(), ErrorClass::UntrustedKey);
}

#[test]
fn a_validly_signed_envelope_of_another_type_is_a_payload_type_error() {
    let bundle = rebuilt(|entries| {
        let manifest = entries[position(entries, "manifest.json")].data.clone();
        let config_envelope = Envelope::sign(stella_evidence::payload_types::CONFIG_YAML, &manifest, &key());
        let envelope = position(entries, "manifest.dsse.json");
        entries[envelope] = RawEntry::file("manifest.dsse.json", &config_envelope.to_json());
    });
    let error = verify(&bundle);
    assert_eq!((error.code(), error.exit_code()), ("bundle.payload_type", 13), "{error}");
}

#[test]
fn a_removed_payload_file_is_missing() {
    let bundle = rebuilt(|entries| entries.retain(|entry| entry.name() != "otlp/logs.pb"));
    let error = verify(&bundle);
    assert!(matches!(&error, BundleError::MissingEntry { name } if name == "otlp/logs.pb"), "{error}");
    assert_eq!((error.code(), error.exit_code()), ("bundle.malformed", 14));
}

#[test]
fn an_envelope_without_signatures_is_an_invalid_signature() {
    let bundle = rebuilt(|entries| {
        let envelope = position(entries, "manifest.dsse.json");
        let mut json: serde_json::Value = serde_json::from_slice(&entries[envelope].data).unwrap();
        json["signatures"] = serde_json::json!([]);
        entries[envelope] = RawEntry::file("manifest.dsse.json", &serde_json::to_vec(&json).unwrap());
    });
    assert_eq!(verify(&bundle).class(), ErrorClass::SignatureInvalid);
}

#[test]
fn an_envelope_changed_where_the_signature_does_not_reach_is_a_digest_mismatch() {
    // Found by the mutation property: `"keyid"` renamed reads as a signature without keyid, which every
    // trusted key is tried against, so the changed bytes verified. The payload without its base64 padding
    // (which the reader accepts) is the same kind of change.
    let renamed = rebuilt(|entries| {
        let envelope = position(entries, "manifest.dsse.json");
        let text = String::from_utf8(entries[envelope].data.clone()).unwrap();
        entries[envelope].data = text.replacen("\"keyid\"", "\"#eyid\"", 1).into_bytes();
        entries[envelope].declared_size = entries[envelope].data.len() as _;
    });
    let unpadded = rebuilt(|entries| {
        let envelope = position(entries, "manifest.dsse.json");
        let parsed = Envelope::from_json(&entries[envelope].data).unwrap();
        let padded = STANDARD.encode(parsed.unverified_payload());
        let bare = padded.trim_end_matches('=');
        assert_ne!(padded, bare, "the fixture's payload is padded");
        let text = String::from_utf8(entries[envelope].data.clone()).unwrap();
        entries[envelope].data = text.replacen(&padded, bare, 1).into_bytes();
        entries[envelope].declared_size = entries[envelope].data.len() as _;
    });
    for bundle in [renamed, unpadded] {
        let error = verify(&bundle);
        assert!(
            matches!(&error, BundleError::EnvelopeNotCanonical { file } if file == "manifest.dsse.json"),
            "{error}"
        );
        assert_eq!((error.code(), error.exit_code()), ("bundle.digest_mismatch", 10));
    }
}
