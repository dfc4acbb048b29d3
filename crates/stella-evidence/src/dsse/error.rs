use crate::ErrorClass;

/// Why an envelope could not be parsed or was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DsseError {
    /// The envelope is larger than [`MAX_ENVELOPE_BYTES`](super::MAX_ENVELOPE_BYTES).
    #[error("DSSE envelope is {size} bytes, more than the {limit} accepted")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The envelope is not JSON of the envelope's shape.
    #[error("DSSE envelope is not a JSON envelope (payload, payloadType, signatures[].sig): {source}")]
    Json {
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A base64 field does not decode.
    #[error("DSSE envelope field {field} is not standard or URL-safe base64: {source}")]
    Base64 {
        /// `payload` or `sig`.
        field: &'static str,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
    /// The envelope has no signature.
    #[error("DSSE envelope has no signature")]
    NoSignatures,
    /// No signature names a trusted key.
    #[error(
        "DSSE envelope is signed by keyids {keyids:?}, none of them trusted; add the signer's public key to the trusted keys"
    )]
    UntrustedKey {
        /// The keyids of the envelope's signatures.
        keyids: Vec<String>,
    },
    /// A trusted key was tried and its signature does not verify: the payload or its type changed.
    #[error("DSSE signature of trusted key {keyid} does not verify; the payload or its type was changed after signing")]
    SignatureInvalid {
        /// The trusted key whose signature failed.
        keyid: String,
    },
    /// The signature is valid, but for another kind of payload.
    #[error("DSSE payload type is {found:?}, expected {expected:?}")]
    PayloadType {
        /// The type the caller accepts.
        expected: String,
        /// The type in the envelope.
        found: String,
    },
}

impl DsseError {
    /// What kind of failure this is.
    pub fn class(&self) -> ErrorClass {
        match self {
            DsseError::TooLarge { .. } | DsseError::Json { .. } | DsseError::Base64 { .. } => ErrorClass::Malformed,
            DsseError::NoSignatures | DsseError::SignatureInvalid { .. } => ErrorClass::SignatureInvalid,
            DsseError::UntrustedKey { .. } => ErrorClass::UntrustedKey,
            DsseError::PayloadType { .. } => ErrorClass::PayloadType,
        }
    }

    /// A stable code (`dsse.malformed`, `dsse.signature_invalid`, `dsse.untrusted_key`, `dsse.payload_type`).
    pub fn code(&self) -> &'static str {
        match self.class() {
            ErrorClass::SignatureInvalid => "dsse.signature_invalid",
            ErrorClass::UntrustedKey => "dsse.untrusted_key",
            ErrorClass::PayloadType => "dsse.payload_type",
            _ => "dsse.malformed",
        }
    }
}
