//! Federation failures, each with the stable code the specification fixes.

/// Why signing, verifying or building failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FederationError {
    /// Signing failed.
    #[error("signing failed: {0}")]
    SignFailed(String),
    /// No key to sign with and the unsigned fallback is off.
    #[error(
        "no federation signing key is available and federation.allow_unsigned_fallback is false; configure a key (Ed25519 or an HMAC key in federation.trusted_keys)"
    )]
    SignerUnavailable,
    /// A signature does not verify (or the envelope carries only the unsigned fallback).
    #[error("signature does not verify: {0}")]
    VerifyFailed(String),
    /// The signer's key is not trusted.
    #[error("signed by untrusted key(s) {0:?}; add the site's key to federation.trusted_keys")]
    UntrustedKey(Vec<String>),
    /// The envelope carries another payload type.
    #[error("payload type {found:?}, expected {expected:?}")]
    PayloadTypeMismatch {
        /// Expected.
        expected: String,
        /// Found.
        found: String,
    },
    /// A recorded digest or bundle id does not match the bytes.
    #[error("{what}: recorded {recorded}, computed {computed}; the file was changed")]
    DigestMismatch {
        /// Which digest.
        what: &'static str,
        /// The recorded value.
        recorded: String,
        /// The value of the bytes.
        computed: String,
    },
    /// The consent is not valid at the window's end.
    #[error("consent {digest} is valid from {not_before} until {expires_at}, not at the window end {at}")]
    ConsentExpired {
        /// The consent digest.
        digest: String,
        /// Its start.
        not_before: String,
        /// Its end.
        expires_at: String,
        /// The instant checked.
        at: String,
    },
    /// The consent was revoked.
    #[error("consent {0} was revoked")]
    ConsentRevoked(String),
    /// The bundle names another consent than the one it carries.
    #[error("the bundle names consent {named}, but carries consent {carried}")]
    ConsentDigestMismatch {
        /// The payload's `consentDigest`.
        named: String,
        /// The carried consent's digest.
        carried: String,
    },
    /// The consent's epsilon budget is spent.
    #[error("the privacy budget of consent {consent} is spent ({spent} of {budget}); a new bundle needs {needed}")]
    BudgetExhausted {
        /// The consent digest.
        consent: String,
        /// Spent so far.
        spent: f64,
        /// The budget.
        budget: f64,
        /// What the bundle would cost.
        needed: f64,
    },
    /// The input is malformed (JSON, fields).
    #[error("{0}")]
    Malformed(String),
}

impl FederationError {
    /// The verification failure class (and so the CLI's exit code, 10-15) of a refused bundle or statement;
    /// `None` for failures that are not about what was verified (signing, budget, validity in time).
    pub fn class(&self) -> Option<stella_evidence::ErrorClass> {
        use stella_evidence::ErrorClass;
        Some(match self {
            FederationError::DigestMismatch { .. } | FederationError::ConsentDigestMismatch { .. } => {
                ErrorClass::DigestMismatch
            }
            FederationError::VerifyFailed(_) => ErrorClass::SignatureInvalid,
            FederationError::UntrustedKey(_) => ErrorClass::UntrustedKey,
            FederationError::PayloadTypeMismatch { .. } => ErrorClass::PayloadType,
            FederationError::Malformed(_) => ErrorClass::Malformed,
            _ => return None,
        })
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            FederationError::SignFailed(_) => "federation.dsse.sign_failed",
            FederationError::SignerUnavailable => "federation.dsse.signer_unavailable",
            FederationError::VerifyFailed(_) => "federation.dsse.verify_failed",
            FederationError::UntrustedKey(_) => "federation.dsse.untrusted_key",
            FederationError::PayloadTypeMismatch { .. } => "federation.dsse.payload_type_mismatch",
            FederationError::DigestMismatch { .. } => "federation.dsse.digest_mismatch",
            FederationError::ConsentExpired { .. } => "federation.consent.expired",
            FederationError::ConsentRevoked(_) => "federation.consent.revoked",
            FederationError::ConsentDigestMismatch { .. } => "federation.consent.digest_mismatch",
            FederationError::BudgetExhausted { .. } => "federation.privacy.budget_exhausted",
            FederationError::Malformed(_) => "federation.malformed",
        }
    }

    pub(crate) fn from_dsse(error: stella_evidence::dsse::DsseError) -> FederationError {
        use stella_evidence::dsse::DsseError;
        match error {
            DsseError::UntrustedKey { keyids } => FederationError::UntrustedKey(keyids),
            DsseError::PayloadType { expected, found } => FederationError::PayloadTypeMismatch { expected, found },
            DsseError::SignatureInvalid { .. } | DsseError::NoSignatures => {
                FederationError::VerifyFailed(error.to_string())
            }
            other => FederationError::Malformed(other.to_string()),
        }
    }
}
