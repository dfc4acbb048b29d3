//! The OTLP/JSON codec, written by hand to follow the specification exactly:
//! <https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>.
//!
//! > - Trace and span ids are base16 (hex) encoded strings, not base64.
//! > - Keys of JSON objects are field names converted to lowerCamelCase; receivers also accept the
//! >   original field names.
//! > - Enum values are integers, not enum name strings.
//! > - Receivers ignore unknown fields.
//!
//! The rest follows the proto3 JSON mapping: 64-bit integers are decimal strings (numbers are also
//! accepted), doubles may be `"NaN"`, `"Infinity"` or `"-Infinity"` (and numeric strings), `bytes`
//! fields other than ids are base64, `null` means the default value.
//!
//! Decoding parses the body into a [`serde_json::Value`] and walks it while tracking the path, so an
//! error says exactly where the input is wrong ([`JsonError`]). Encoding writes straight into the output
//! buffer with keys in a fixed (sorted) order, omits default values, writes non-finite doubles as strings and never loses
//! a value silently, the profiles dictionary references (`keyStrindex`, `stringValueStrindex`) included.

mod decode;
mod decode_metrics;
mod encode;
mod encode_metrics;
mod walk;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_full;

use crate::{OtlpRequest, Signal};

/// What is wrong in an OTLP/JSON body and where.
///
/// Displays as `"{path}: {reason}"`, for example
/// `resourceSpans[0].scopeSpans[0].spans[0].name: expected a string, found number`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct JsonError {
    /// Where the problem is: field names joined by `.` with `[index]` for array items, relative to
    /// the top-level object; `$` for the whole body (for example invalid JSON syntax).
    pub path: String,
    /// What is wrong, for example `expected a string, found number`.
    pub reason: String,
}

/// Decodes an OTLP/JSON export request body of the given signal.
pub fn decode(signal: Signal, body: &[u8]) -> Result<OtlpRequest, JsonError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| JsonError { path: "$".to_string(), reason: error.to_string() })?;
    decode::request(signal, &value)
}

/// Encodes a request as compact OTLP/JSON (one line, no trailing newline).
pub fn encode(request: &OtlpRequest) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    encode_into(&mut out, request);
    out
}

/// Appends the compact OTLP/JSON of `request` to `out` (no trailing newline).
pub fn encode_into(out: &mut Vec<u8>, request: &OtlpRequest) {
    encode::request(out, request);
}

/// Encodes the `Export*ServiceResponse` of a signal: `{}` when nothing was rejected and there is no
/// message, else `{"partialSuccess":{"errorMessage":"...","rejectedSpans":"<n>"}}` (the count field
/// is `rejectedSpans`, `rejectedDataPoints` or `rejectedLogRecords`; an int64, so a string).
pub fn encode_response(signal: Signal, rejected: i64, error_message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode::response(&mut out, signal, rejected, error_message);
    out
}
