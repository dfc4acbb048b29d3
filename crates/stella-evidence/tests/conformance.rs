#![allow(clippy::unwrap_used)]
//! Published test data reproduced byte for byte: the RFC 8785 suite of cyberphone/json-canonicalization and
//! the Ed25519 DSSE vectors of the reference Go implementation (`tests/testdata`, copied unchanged from the
//! project's shared conformance data; see its README for their sources).
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use stella_evidence::dsse::{Envelope, pae};
use stella_evidence::{SigningKey, TrustStore, canonical};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata")
}

#[test]
fn every_jcs_input_canonicalizes_to_its_published_output() {
    let inputs = testdata().join("jcs/input");
    let mut checked = 0;
    for entry in std::fs::read_dir(&inputs).unwrap_or_else(|error| panic!("{}: {error}", inputs.display())) {
        let input_path = entry.unwrap().path();
        let output_path = testdata().join("jcs/output").join(input_path.file_name().unwrap());
        let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&input_path).unwrap()).unwrap();
        let expected = std::fs::read(&output_path).unwrap();
        assert_eq!(
            String::from_utf8(canonical::to_vec(&value).unwrap()).unwrap(),
            String::from_utf8(expected).unwrap(),
            "{}",
            input_path.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 6, "the suite has six files");
}

#[derive(serde::Deserialize)]
struct Vectors {
    test_seed_hex: String,
    public_key_pem: String,
    key_id: String,
    fixtures: Vec<Fixture>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    name: String,
    payload_type: String,
    payload_b64: String,
    pae_b64: String,
    signature_b64: String,
    envelope: serde_json::Value,
}

fn vectors() -> Vectors {
    serde_json::from_slice(&std::fs::read(testdata().join("dsse/ed25519_vectors.json")).unwrap()).unwrap()
}

fn vector_key(vectors: &Vectors) -> SigningKey {
    SigningKey::from_ed25519_seed(&hex::decode(&vectors.test_seed_hex).unwrap().try_into().unwrap())
}

#[test]
fn the_published_seed_gives_the_published_key_and_keyid() {
    let vectors = vectors();
    let key = vector_key(&vectors);
    assert_eq!(key.keyid(), vectors.key_id);
    assert_eq!(key.public_key_pem().unwrap(), vectors.public_key_pem);
}

#[test]
fn every_dsse_vector_is_reproduced_byte_for_byte() {
    let vectors = vectors();
    let key = vector_key(&vectors);
    let trust = TrustStore::from_iter([key.trusted_key()]);
    assert_eq!(vectors.fixtures.len(), 11);
    for fixture in &vectors.fixtures {
        let payload = STANDARD.decode(&fixture.payload_b64).unwrap();
        assert_eq!(
            pae(&fixture.payload_type, &payload),
            STANDARD.decode(&fixture.pae_b64).unwrap(),
            "{}",
            fixture.name
        );

        let envelope = Envelope::sign(&fixture.payload_type, &payload, &key);
        assert_eq!(envelope.signatures()[0].sig, STANDARD.decode(&fixture.signature_b64).unwrap(), "{}", fixture.name);
        let published = canonical::to_vec(&fixture.envelope).unwrap();
        assert_eq!(String::from_utf8(envelope.to_json()).unwrap(), String::from_utf8(published.clone()).unwrap());

        let parsed = Envelope::from_json(&published).unwrap();
        assert_eq!(parsed, envelope, "{}", fixture.name);
        let verified = parsed.verify(&trust, &fixture.payload_type).unwrap();
        assert_eq!(verified.payload, payload);
        assert_eq!(verified.signer.keyid, vectors.key_id);
        assert!(!verified.signer.integrity_only);
    }
}
