//! OTLP/gRPC (<https://opentelemetry.io/docs/specs/otlp/#otlpgrpc>): the three unary `Export` methods,
//! served by our own thin gRPC layer over the HTTP/2 server so that every failure gets the code the OTLP
//! spec asks for (tonic answers a malformed message with INTERNAL and an oversized one with OUT_OF_RANGE).
//!
//! Wire format (<https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md>):
//! ```text
//! request   POST /opentelemetry.proto.collector.<signal>.v1.<Kind>Service/Export
//!           content-type: application/grpc[+proto]   grpc-encoding: identity | gzip | zstd
//!           body: [compressed flag: u8][length: u32 big-endian][message]   (exactly one message)
//! success   200, content-type: application/grpc, body: [0][length][Export*ServiceResponse],
//!           trailers: grpc-status: 0
//! failure   200 "Trailers-Only": grpc-status: <code>, grpc-message: <percent-encoded message>, no body
//! ```
//! Codes: malformed message INVALID_ARGUMENT (3), over a size cap RESOURCE_EXHAUSTED (8), no pipeline
//! UNIMPLEMENTED (12), not delivered UNAVAILABLE (14, the client retries), unknown encoding UNIMPLEMENTED.
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body::Frame;
use stella_otlp::Signal;
use stella_otlp::validate::Rejection;

use crate::server::PeerIdentity;

use super::body::{self, BodyError};
use super::decompress::Encoding;
use super::status::{Status, grpc as code};
use super::{OtlpService, Overloaded, Protocol, ProtocolAdmission, Refusal, response};

/// Limits of one gRPC receiver.
#[derive(Debug, Clone, Copy)]
pub struct GrpcLimits {
    /// Cap on the message as sent (`max_recv_msg_size_mib`).
    pub max_message_bytes: usize,
    /// Cap on the message after decompression (`max_decompressed_size_mib`).
    pub max_decompressed_bytes: usize,
    /// Time to receive the whole message (`read_timeout`).
    pub read_timeout: std::time::Duration,
}

#[derive(Clone)]
struct GrpcState {
    service: OtlpService,
    limits: GrpcLimits,
    admission: ProtocolAdmission,
}

/// The OTLP/gRPC routes of one receiver (serve them over HTTP/2).
pub fn router(service: OtlpService, limits: GrpcLimits, admission: ProtocolAdmission) -> Router {
    let state = GrpcState { service, limits, admission };
    let route = |signal: Signal| {
        post(move |state: State<GrpcState>, peer: Option<Extension<PeerIdentity>>, headers: HeaderMap, body: Body| {
            export(state, signal, peer, headers, body)
        })
    };
    Router::new()
        .route("/opentelemetry.proto.collector.trace.v1.TraceService/Export", route(Signal::Traces))
        .route("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", route(Signal::Metrics))
        .route("/opentelemetry.proto.collector.logs.v1.LogsService/Export", route(Signal::Logs))
        .fallback(|| async {
            trailers_only(code::UNIMPLEMENTED, "unknown method; this server implements the OTLP Export services")
        })
        .with_state(state)
}

async fn export(
    State(state): State<GrpcState>,
    signal: Signal,
    peer: Option<Extension<PeerIdentity>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let service = &state.service;
    let (http_status, response) = match receive(&state, signal, peer.as_deref(), &headers, body).await {
        Ok(rejection) => (200, success(signal, &rejection)),
        Err(Failure { http_status, code, message }) => (http_status, trailers_only(code, &message)),
    };
    service.metrics().answered(service.receiver_id(), signal, Protocol::Grpc, http_status);
    response
}

/// A failed call: the gRPC code and message, and the HTTP status it counts as in metrics.
struct Failure {
    http_status: u16,
    code: u16,
    message: String,
}

impl Failure {
    fn new(status: Status, message: String) -> Self {
        Failure { http_status: status.http, code: status.grpc, message }
    }
}

impl From<Overloaded> for Failure {
    fn from(overloaded: Overloaded) -> Self {
        Failure::new(overloaded.status(), overloaded.to_string())
    }
}

impl From<BodyError> for Failure {
    fn from(error: BodyError) -> Self {
        Failure::new(error.status(), error.message())
    }
}

async fn receive(
    state: &GrpcState,
    signal: Signal,
    peer: Option<&PeerIdentity>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Rejection, Failure> {
    let limits = state.limits;
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let tenant = state.service.authorize(authorization, peer).map_err(refusal_failure)?;
    let mut admitted = state.admission.enter()?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/grpc") || content_type.starts_with("application/grpc+json") {
        let message = format!("content-type {content_type:?} is not application/grpc (protobuf)");
        return Err(Failure { http_status: 415, code: code::INVALID_ARGUMENT, message });
    }
    let encoding_header = headers.get("grpc-encoding").and_then(|value| value.to_str().ok());
    let Some(encoding) = Encoding::from_header(encoding_header) else {
        let message = format!(
            "grpc-encoding {:?} is not supported; use gzip, zstd or identity",
            encoding_header.unwrap_or_default()
        );
        return Err(Failure { http_status: 415, code: code::UNIMPLEMENTED, message });
    };
    let frame = body::read_limited(
        body,
        limits.max_message_bytes.saturating_add(5),
        "max_recv_msg_size_mib",
        limits.read_timeout,
    )
    .await?;
    // Twice: the frames as they arrived and the one buffer they were joined into.
    admitted.reserve(2 * frame.len())?;
    let _inflight = state.service.metrics().hold(frame.len());
    let (compressed, message) = unframe(&frame)?;
    if message.len() > limits.max_message_bytes {
        return Err(body::too_large(limits.max_message_bytes, "max_recv_msg_size_mib").into());
    }
    let encoding = match (compressed, encoding) {
        (false, _) => Encoding::Identity,
        (true, Encoding::Identity) => {
            let message = "the message is flagged compressed but no grpc-encoding was sent".to_string();
            return Err(Failure { http_status: 400, code: code::INTERNAL, message });
        }
        (true, encoding) => encoding,
    };
    state.service.metrics().size(signal, Protocol::Grpc, message.len());
    // The admission's permits are held until the request is answered.
    let (request, _admitted) =
        body::decode(signal, body::Format::Protobuf, encoding, message, limits.max_decompressed_bytes, admitted)
            .await?;
    state.service.export(Protocol::Grpc, tenant, request).await.map_err(refusal_failure)
}

/// The gRPC status of a request the service refused.
fn refusal_failure(refusal: Refusal) -> Failure {
    Failure::new(refusal.status(), refusal.to_string())
}

/// Splits a unary request body into its compressed flag and message.
fn unframe(frame: &Bytes) -> Result<(bool, Bytes), Failure> {
    let malformed = |message: String| Failure { http_status: 400, code: code::INVALID_ARGUMENT, message };
    let Some((prefix, _)) = frame.split_first_chunk::<5>() else {
        return Err(malformed(format!("the body holds {} bytes, less than a gRPC message prefix (5)", frame.len())));
    };
    let compressed = match prefix[0] {
        0 => false,
        1 => true,
        flag => return Err(malformed(format!("invalid gRPC compressed flag {flag}"))),
    };
    let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    let available = frame.len() - 5;
    if length != available {
        return Err(malformed(format!(
            "the gRPC prefix announces {length} bytes but the body holds {available}; send exactly one message"
        )));
    }
    Ok((compressed, frame.slice(5..)))
}

fn success(signal: Signal, rejection: &Rejection) -> Response {
    let message = response::protobuf(signal, rejection);
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Body::new(UnaryBody { data: Some(Bytes::from(framed)), trailers: Some(trailers) });
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"))], body).into_response()
}

/// A "Trailers-Only" answer: status and message in the only HEADERS frame.
fn trailers_only(status: u16, message: &str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(status));
    if status != code::OK
        && let Ok(value) = HeaderValue::from_str(&percent_encode(message))
    {
        headers.insert("grpc-message", value);
    }
    (StatusCode::OK, headers).into_response()
}

/// `grpc-message` encoding: printable ASCII except `%` as is, everything else as `%XX` of its UTF-8 bytes.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// One data frame, then the trailers.
struct UnaryBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for UnaryBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|trailers| Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unframe_checks_the_prefix_against_the_body() {
        let good = Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1]);
        assert_eq!(unframe(&good).ok().map(|(flag, message)| (flag, message.len())), Some((false, 2)));
        for bad in [&[0u8, 0, 0][..], &[0, 0, 0, 0, 9, 1], &[7, 0, 0, 0, 0]] {
            let failure = unframe(&Bytes::copy_from_slice(bad)).err().map(|failure| failure.code);
            assert_eq!(failure, Some(code::INVALID_ARGUMENT), "{bad:?}");
        }
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("100% bad\nÿ"), "100%25 bad%0A%C3%BF");
    }
}
