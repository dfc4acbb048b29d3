//! RFC 8785 canonical JSON: the bytes every manifest and envelope is stored and signed as, so the same value
//! always gives the same bytes and digest, whoever writes it.
//!
//! <https://www.rfc-editor.org/rfc/rfc8785>, section 3.2: "the JSON data MUST be serialized according to
//! [the ECMAScript] JSON.stringify() method with the following additions: whitespace between JSON tokens
//! MUST NOT be emitted; ... JSON object properties MUST be sorted ... based on their names formatted as
//! arrays of UTF-16 code units".
//!
//! Numbers are written as IEEE doubles, as the RFC requires: integers above 2^53 lose precision, which is why
//! every manifest here writes nanosecond timestamps as decimal strings.
use serde::Serialize;

/// The value cannot be written as canonical JSON (a non-finite float, a map with non-string keys).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the value as RFC 8785 JSON: {source}")]
pub struct CanonicalError {
    /// The serializer's error.
    #[from]
    source: serde_json::Error,
}

impl CanonicalError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        "evidence.canonical_json"
    }
}

/// The RFC 8785 bytes of `value` (UTF-8, no trailing newline).
pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    Ok(serde_json_canonicalizer::to_vec(value)?)
}

#[cfg(test)]
mod tests {
    use super::to_vec;

    #[test]
    fn keys_are_sorted_and_whitespace_removed() {
        let value = serde_json::json!({ "b": [1, 2.5, "x"], "a": { "d": null, "c": true } });
        assert_eq!(to_vec(&value).unwrap(), br#"{"a":{"c":true,"d":null},"b":[1,2.5,"x"]}"#);
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        assert!(to_vec(&f64::NAN).is_err());
    }
}
