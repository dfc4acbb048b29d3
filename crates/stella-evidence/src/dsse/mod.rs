//! DSSE, the Dead Simple Signing Envelope (<https://github.com/secure-systems-lab/dsse>, protocol v1,
//! JSON envelope v1.0.0).
//!
//! What is signed is the pre-authentication encoding of the payload type and the raw payload bytes
//! (protocol.md: "Sign PAE(UTF8(PAYLOAD_TYPE), SERIALIZED_BODY)"):
//!
//! ```text
//! PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
//!   SP     = one ASCII space (0x20)
//!   LEN(s) = "ASCII decimal encoding of the byte length of s, with no leading zeros"
//!
//! "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
//! ```
//!
//! The envelope carries the payload as standard padded base64 and one signature per key:
//!
//! ```text
//! {"payload":"<base64(body)>","payloadType":"<type>","signatures":[{"keyid":"<keyid>","sig":"<base64(sig)>"}]}
//! ```
//!
//! Invariants kept here:
//! - [`Envelope::to_json`] writes RFC 8785 bytes, so an envelope of the same payload and key is the same file.
//! - Parsing follows the envelope's rules: "Consumers MUST ignore unrecognized fields", an unset `keyid` is
//!   "the same as set-but-empty", and "verifiers MUST accept either" standard or URL-safe base64.
//! - Verification checks the signature first, then the payload type (the protocol's order), and only then
//!   hands the payload out; the keyid only narrows which trusted keys are tried ("It MUST NOT be used for
//!   security decisions").
//!
//! Ed25519 signatures verify with third-party DSSE tools (`securesystemslib`, `go-securesystemslib/dsse`);
//! HMAC-SHA256 signatures prove integrity between holders of one secret, not origin, and every
//! [`Signer`] says which one verified.
mod envelope;
mod error;
mod pae;

pub use envelope::{Envelope, MAX_ENVELOPE_BYTES, Signature, Signer, Verified};
pub use error::DsseError;
pub use pae::pae;
