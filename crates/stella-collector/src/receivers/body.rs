//! What both transports do with a request body: read it under the wire cap, decompress it under the
//! decompressed cap, decode it (protobuf or OTLP/JSON). Bodies that are compressed or large are decoded
//! off the async workers.
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::{BodyExt, Limited};
use stella_otlp::{OtlpRequest, Signal};

use super::Overloaded;
use super::admission::Admitted;
use super::decompress::{DecompressError, Encoding, decompress};

/// Plain bodies larger than this are decoded off the async workers.
const DECODE_INLINE_MAX: usize = 256 * 1024;

/// How the message bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Protobuf,
    Json,
}

/// Why a body did not become a request. Each transport maps these to its own status codes.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over a size cap (HTTP 413, gRPC RESOURCE_EXHAUSTED).
    TooLarge(String),
    /// Not what it claims to be (HTTP 400, gRPC INVALID_ARGUMENT).
    Malformed(String),
    /// Did not arrive within `read_timeout` (HTTP 408, gRPC DEADLINE_EXCEEDED): a slow or stalled client.
    Timeout(String),
    /// An encoding or media type the receiver does not take (HTTP 415, gRPC UNIMPLEMENTED).
    Unsupported(String),
    /// The memory budget cannot hold it decoded (HTTP 429 or 413, gRPC RESOURCE_EXHAUSTED).
    Overloaded(Overloaded),
}

/// Reads the whole body within `timeout`, refusing more than `cap` bytes; `cap_key` names the setting in
/// the message. A body trickling in slower than that (slowloris) frees its connection and slot.
pub(crate) async fn read_limited(body: Body, cap: usize, cap_key: &str, timeout: Duration) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(timeout, Limited::new(body, cap).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(too_large(cap, cap_key)),
        Ok(Err(error)) => Err(BodyError::Malformed(format!("could not read the request body: {error}"))),
        Err(_) => Err(BodyError::Timeout(format!(
            "the request body did not arrive within {} (receivers.<id>.read_timeout); send it faster or raise the setting",
            stella_pipeline::duration::format(timeout)
        ))),
    }
}

/// The refusal for a body over `cap` bytes.
pub(crate) fn too_large(cap: usize, cap_key: &str) -> BodyError {
    BodyError::TooLarge(format!("the body is larger than {cap} bytes ({cap_key}); send smaller requests"))
}

/// Decompresses (under `cap`) and decodes a request body, charging `admitted` (the request's share of
/// the memory budget) for what it inflates to and, before decoding, for what decoding will allocate
/// (`stella_otlp::wire::decoded_size`): memory is bounded by what a request becomes, not by what arrives.
/// Hands the admission back with the request (its permits must live as long as the request does).
pub(crate) async fn decode(
    signal: Signal,
    format: Format,
    encoding: Encoding,
    wire: Bytes,
    cap: usize,
    mut admitted: Admitted,
) -> Result<(OtlpRequest, Admitted), BodyError> {
    if wire.len() <= DECODE_INLINE_MAX && encoding == Encoding::Identity {
        return decode_now(signal, format, encoding, wire, cap, &mut admitted).map(|request| (request, admitted));
    }
    let decoding = tokio::task::spawn_blocking(move || {
        decode_now(signal, format, encoding, wire, cap, &mut admitted).map(|request| (request, admitted))
    });
    decoding.await.unwrap_or_else(|_| Err(BodyError::Malformed("decoding the request failed unexpectedly".into())))
}

fn decode_now(
    signal: Signal,
    format: Format,
    encoding: Encoding,
    wire: Bytes,
    cap: usize,
    admitted: &mut Admitted,
) -> Result<OtlpRequest, BodyError> {
    let body = decompress(encoding, wire, cap, &mut |bytes| admitted.reserve(bytes)).map_err(|error| match error {
        DecompressError::TooLarge { .. } => BodyError::TooLarge(error.to_string()),
        DecompressError::Corrupt { .. } => BodyError::Malformed(error.to_string()),
        DecompressError::Overloaded(overloaded) => BodyError::Overloaded(overloaded),
    })?;
    let decoded_size = match format {
        // A body that does not walk is refused before anything of it is decoded (decoding a malformed
        // body would allocate everything before the flaw first).
        Format::Protobuf => stella_otlp::wire::decoded_size(signal, &body).map_err(|error| {
            BodyError::Malformed(format!(
                "invalid protobuf {}: {error}; check that the body is an OTLP {signal} request",
                signal.request_name()
            ))
        })?,
        Format::Json => stella_otlp::wire::json_decoded_size(&body),
    };
    admitted.reserve(decoded_size).map_err(BodyError::Overloaded)?;
    match format {
        Format::Protobuf => OtlpRequest::decode_protobuf(signal, &body)
            .map_err(|error| BodyError::Malformed(format!("{error}; check that the body is an OTLP {signal} request"))),
        Format::Json => stella_otlp::json::decode(signal, &body)
            .map_err(|error| BodyError::Malformed(format!("invalid OTLP/JSON {signal} request at {error}"))),
    }
}
