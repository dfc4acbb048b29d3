use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::{Deserialize, Serialize};

use super::error::DsseError;
use super::pae::pae;
use crate::keys::{SigningKey, TrustStore, TrustedKey};

/// Envelopes larger than this (16 MiB) are refused before they are parsed.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024 * 1024;

/// Decoders that accept what the spec allows: standard or URL-safe alphabet, padded or not.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// A DSSE envelope: one payload of one type, signed by one or more keys.
///
/// Build one with [`Envelope::sign`] or [`Envelope::from_json`]; the payload of a parsed envelope is only
/// trustworthy once [`Envelope::verify`] returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    payload_type: String,
    payload: Vec<u8>,
    signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Which key made it (an unauthenticated hint; empty when the producer left it unset).
    pub keyid: String,
    /// The raw signature bytes (64 for Ed25519, 32 for HMAC-SHA256).
    pub sig: Vec<u8>,
}

/// Who made the signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The keyid of the trusted key that verified the signature.
    pub keyid: String,
    /// True for HMAC-SHA256: the signature proves the content is unchanged between holders of a shared
    /// secret, not who made it. Every output that reports a signer must say so.
    pub integrity_only: bool,
}

/// A payload whose signature and type were verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The raw payload bytes.
    pub payload: Vec<u8>,
    /// Who signed it.
    pub signer: Signer,
}

/// The JSON envelope exactly as the spec names its fields.
#[derive(Serialize, Deserialize)]
struct WireEnvelope {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<WireSignature>,
}

#[derive(Serialize, Deserialize)]
struct WireSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

impl Envelope {
    /// Signs `payload` as `payload_type` with `key`: one signature over the PAE, carrying the key's keyid.
    pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
        let sig = key.sign(&pae(payload_type, payload));
        Envelope {
            payload_type: payload_type.to_string(),
            payload: payload.to_vec(),
            signatures: vec![Signature { keyid: key.keyid().to_string(), sig }],
        }
    }

    /// An envelope of the given parts, as they are (e.g. a placeholder signature a verifier must refuse
    /// unless told otherwise); [`Envelope::sign`] makes real ones.
    pub fn from_parts(payload_type: &str, payload: Vec<u8>, signatures: Vec<Signature>) -> Envelope {
        Envelope { payload_type: payload_type.to_string(), payload, signatures }
    }

    /// The payload type (authenticated only once [`Envelope::verify`] succeeded).
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }

    /// The payload bytes, not yet verified: use [`Envelope::verify`] before acting on them.
    pub fn unverified_payload(&self) -> &[u8] {
        &self.payload
    }

    /// The signatures, in envelope order.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// The envelope as RFC 8785 JSON with standard padded base64: the bytes stored in `*.dsse.json` files.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireEnvelope {
            payload: STANDARD.encode(&self.payload),
            payload_type: self.payload_type.clone(),
            signatures: self
                .signatures
                .iter()
                .map(|signature| WireSignature { keyid: signature.keyid.clone(), sig: STANDARD.encode(&signature.sig) })
                .collect(),
        };
        // Only strings are written, and serializing a string cannot fail.
        crate::canonical::to_vec(&wire).expect("an envelope holds only strings")
    }

    /// Parses a JSON envelope of at most [`MAX_ENVELOPE_BYTES`]; does not verify it.
    pub fn from_json(json: &[u8]) -> Result<Envelope, DsseError> {
        if json.len() > MAX_ENVELOPE_BYTES {
            return Err(DsseError::TooLarge { size: json.len(), limit: MAX_ENVELOPE_BYTES });
        }
        let wire: WireEnvelope = serde_json::from_slice(json).map_err(|source| DsseError::Json { source })?;
        let payload = decode_base64(&wire.payload).map_err(|source| DsseError::Base64 { field: "payload", source })?;
        let mut signatures = Vec::with_capacity(wire.signatures.len());
        for signature in wire.signatures {
            let sig = decode_base64(&signature.sig).map_err(|source| DsseError::Base64 { field: "sig", source })?;
            signatures.push(Signature { keyid: signature.keyid, sig });
        }
        Ok(Envelope { payload_type: wire.payload_type, payload, signatures })
    }

    /// Verifies the envelope against `trust` and checks its payload type is `expected_payload_type`.
    ///
    /// The first signature that verifies with a trusted key wins (a threshold of one). A signature with a
    /// keyid is tried against that key only; one without is tried against every trusted key.
    pub fn verify(&self, trust: &TrustStore, expected_payload_type: &str) -> Result<Verified, DsseError> {
        if self.signatures.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        let signed_bytes = pae(&self.payload_type, &self.payload);
        let mut first_failed_keyid = None;
        for signature in &self.signatures {
            for key in candidate_keys(trust, &signature.keyid) {
                if key.verify(&signed_bytes, &signature.sig) {
                    return self.accept(key, expected_payload_type);
                }
                first_failed_keyid.get_or_insert_with(|| key.keyid().to_string());
            }
        }
        match first_failed_keyid {
            Some(keyid) => Err(DsseError::SignatureInvalid { keyid }),
            None => Err(DsseError::UntrustedKey {
                keyids: self.signatures.iter().map(|signature| signature.keyid.clone()).collect(),
            }),
        }
    }

    fn accept(&self, key: &TrustedKey, expected_payload_type: &str) -> Result<Verified, DsseError> {
        if self.payload_type != expected_payload_type {
            return Err(DsseError::PayloadType {
                expected: expected_payload_type.to_string(),
                found: self.payload_type.clone(),
            });
        }
        Ok(Verified {
            payload: self.payload.clone(),
            signer: Signer { keyid: key.keyid().to_string(), integrity_only: key.integrity_only() },
        })
    }
}

fn candidate_keys<'a>(trust: &'a TrustStore, keyid: &str) -> Vec<&'a TrustedKey> {
    if keyid.is_empty() { trust.keys().collect() } else { trust.get(keyid).into_iter().collect() }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD_LENIENT.decode(text).or_else(|standard_error| URL_SAFE_LENIENT.decode(text).map_err(|_| standard_error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;

    fn key() -> SigningKey {
        SigningKey::from_ed25519_seed(&[1; 32])
    }

    #[test]
    fn an_envelope_survives_json_and_verifies() {
        let key = key();
        let envelope = Envelope::sign("text/plain", b"hello", &key);
        let parsed = Envelope::from_json(&envelope.to_json()).unwrap();
        assert_eq!(parsed, envelope);
        let trust = TrustStore::from_iter([key.trusted_key()]);
        let verified = parsed.verify(&trust, "text/plain").unwrap();
        assert_eq!(verified.payload, b"hello");
        assert_eq!(verified.signer, Signer { keyid: key.keyid().to_string(), integrity_only: false });
    }

    #[test]
    fn url_safe_and_unpadded_base64_and_unknown_fields_are_accepted() {
        let json = br#"{"payload":"-_8","payloadType":"t","signatures":[{"sig":"AA"}],"future":1}"#;
        let envelope = Envelope::from_json(json).unwrap();
        assert_eq!(envelope.unverified_payload(), [0xfb, 0xff]);
        assert_eq!(envelope.signatures(), [Signature { keyid: String::new(), sig: vec![0] }]);
    }

    #[test]
    fn a_signature_without_keyid_is_tried_against_every_trusted_key() {
        let key = SigningKey::generate(KeyKind::HmacSha256).unwrap();
        let mut envelope = Envelope::sign("t", b"body", &key);
        envelope.signatures[0].keyid.clear();
        let trust = TrustStore::from_iter([self::key().trusted_key(), key.trusted_key()]);
        let verified = envelope.verify(&trust, "t").unwrap();
        assert!(verified.signer.integrity_only);
        assert_eq!(verified.signer.keyid, key.keyid());
    }

    #[test]
    fn failures_are_told_apart() {
        let key = key();
        let trust = TrustStore::from_iter([key.trusted_key()]);
        let envelope = Envelope::sign("t", b"body", &key);
        assert!(matches!(envelope.verify(&trust, "other"), Err(DsseError::PayloadType { .. })));
        assert!(matches!(envelope.verify(&TrustStore::default(), "t"), Err(DsseError::UntrustedKey { .. })));
        let mut tampered = envelope.clone();
        tampered.payload.push(b'!');
        assert!(matches!(tampered.verify(&trust, "t"), Err(DsseError::SignatureInvalid { .. })));
        let mut retyped = envelope.clone();
        retyped.payload_type = "other".into();
        assert!(matches!(retyped.verify(&trust, "other"), Err(DsseError::SignatureInvalid { .. })));
        let unsigned = Envelope { signatures: Vec::new(), ..envelope };
        assert!(matches!(unsigned.verify(&trust, "t"), Err(DsseError::NoSignatures)));
    }

    #[test]
    fn oversized_and_broken_envelopes_are_refused_with_a_reason() {
        let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(Envelope::from_json(&huge), Err(DsseError::TooLarge { .. })));
        assert!(matches!(Envelope::from_json(b"{}"), Err(DsseError::Json { .. })));
        let bad_payload = br#"{"payload":"!!","payloadType":"t","signatures":[]}"#;
        assert!(matches!(Envelope::from_json(bad_payload), Err(DsseError::Base64 { field: "payload", .. })));
    }
}
