//! The ways verification of a signed artifact can fail, each with a stable code and a process exit code.

/// Why a bundle, file set or envelope was refused; mapped once to a stable code and a CLI exit code.
///
/// | class | code | exit code |
/// |---|---|---|
/// | [`DigestMismatch`](Self::DigestMismatch) | `bundle.digest_mismatch` | 10 |
/// | [`SignatureInvalid`](Self::SignatureInvalid) | `bundle.signature_invalid` | 11 |
/// | [`UntrustedKey`](Self::UntrustedKey) | `bundle.untrusted_key` | 12 |
/// | [`PayloadType`](Self::PayloadType) | `bundle.payload_type` | 13 |
/// | [`Malformed`](Self::Malformed) | `bundle.malformed` | 14 |
/// | [`Io`](Self::Io) | `bundle.io` | 15 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// A file's bytes differ from the digest or size the signed manifest declares.
    DigestMismatch,
    /// No signature verifies with a trusted key (or there is no signature at all).
    SignatureInvalid,
    /// No signature names a key of the trust store.
    UntrustedKey,
    /// The signature is valid but the envelope carries another kind of payload.
    PayloadType,
    /// The archive, envelope or manifest is not well-formed, or holds something refused as unsafe.
    Malformed,
    /// A local read or write failed (the input could not be read, the spool could not be written):
    /// nothing is known about the bundle itself.
    Io,
}

impl ErrorClass {
    /// Every class, in exit-code order.
    pub const ALL: [ErrorClass; 6] = [
        ErrorClass::DigestMismatch,
        ErrorClass::SignatureInvalid,
        ErrorClass::UntrustedKey,
        ErrorClass::PayloadType,
        ErrorClass::Malformed,
        ErrorClass::Io,
    ];

    /// The stable code printed by the CLI and returned in API error bodies.
    pub fn code(self) -> &'static str {
        match self {
            ErrorClass::DigestMismatch => "bundle.digest_mismatch",
            ErrorClass::SignatureInvalid => "bundle.signature_invalid",
            ErrorClass::UntrustedKey => "bundle.untrusted_key",
            ErrorClass::PayloadType => "bundle.payload_type",
            ErrorClass::Malformed => "bundle.malformed",
            ErrorClass::Io => "bundle.io",
        }
    }

    /// The process exit code of `stella telemetry verify` (and `offline-kit verify`) for this class.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::DigestMismatch => 10,
            ErrorClass::SignatureInvalid => 11,
            ErrorClass::UntrustedKey => 12,
            ErrorClass::PayloadType => 13,
            ErrorClass::Malformed => 14,
            ErrorClass::Io => 15,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorClass;

    #[test]
    fn every_class_has_a_distinct_code_and_exit_code() {
        let codes: std::collections::BTreeSet<_> = ErrorClass::ALL.iter().map(|class| class.code()).collect();
        let exits: std::collections::BTreeSet<_> = ErrorClass::ALL.iter().map(|class| class.exit_code()).collect();
        assert_eq!(codes.len(), ErrorClass::ALL.len());
        assert_eq!(exits.len(), ErrorClass::ALL.len());
        assert!(exits.iter().all(|code| (10..=15).contains(code)));
    }
}
