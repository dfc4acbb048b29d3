//! OTLP/HTTP (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>): `POST /v1/traces|metrics|logs`,
//! protobuf (`application/x-protobuf`) or JSON (`application/json`) on the same port, `gzip`/`zstd`
//! bodies, answers encoded like the request, failures as `google.rpc.Status`.
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use stella_otlp::validate::Rejection;
use stella_otlp::{RpcStatus, Signal};

use crate::server::PeerIdentity;

use super::body::{self, BodyError, Format};
use super::decompress::Encoding;
use super::status::Status;
use super::{OtlpService, Overloaded, Protocol, ProtocolAdmission, Refusal, response};

/// Limits of one HTTP receiver.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Cap on the body as sent (`max_request_body_size`).
    pub max_request_body_size: usize,
    /// Cap on the body after decompression (`max_decompressed_size_mib`).
    pub max_decompressed_bytes: usize,
    /// Time to receive the whole body (`read_timeout`).
    pub read_timeout: std::time::Duration,
}

#[derive(Clone)]
struct HttpState {
    service: OtlpService,
    limits: HttpLimits,
    admission: ProtocolAdmission,
}

/// The OTLP/HTTP routes of one receiver.
pub fn router(service: OtlpService, limits: HttpLimits, admission: ProtocolAdmission) -> Router {
    let state = HttpState { service, limits, admission };
    let route = |signal: Signal| {
        post(move |state: State<HttpState>, peer: Option<Extension<PeerIdentity>>, headers: HeaderMap, body: Body| {
            export(state, signal, peer, headers, body)
        })
    };
    Router::new()
        .route("/v1/traces", route(Signal::Traces))
        .route("/v1/metrics", route(Signal::Metrics))
        .route("/v1/logs", route(Signal::Logs))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The body format named by `Content-Type` (parameters such as `charset` are ignored).
fn format_of(headers: &HeaderMap) -> Option<Format> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match media_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Some(Format::Protobuf),
        "application/json" => Some(Format::Json),
        _ => None,
    }
}

fn protocol_of(format: Format) -> Protocol {
    match format {
        Format::Protobuf => Protocol::HttpProtobuf,
        Format::Json => Protocol::HttpJson,
    }
}

fn content_type_of(format: Format) -> HeaderValue {
    match format {
        Format::Protobuf => HeaderValue::from_static("application/x-protobuf"),
        Format::Json => HeaderValue::from_static("application/json"),
    }
}

async fn export(
    State(state): State<HttpState>,
    signal: Signal,
    peer: Option<Extension<PeerIdentity>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = format_of(&headers);
    let response = match format {
        Some(format) => export_body(&state, signal, format, peer.as_deref(), &headers, body).await,
        None => {
            let message = "unsupported Content-Type; send application/x-protobuf or application/json".to_string();
            body_failure(Format::Json, BodyError::Unsupported(message))
        }
    };
    let protocol = protocol_of(format.unwrap_or(Format::Protobuf));
    state.service.metrics().answered(state.service.receiver_id(), signal, protocol, response.status().as_u16());
    response
}

async fn export_body(
    state: &HttpState,
    signal: Signal,
    format: Format,
    peer: Option<&PeerIdentity>,
    headers: &HeaderMap,
    request_body: Body,
) -> Response {
    let limits = state.limits;
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let tenant = match state.service.authorize(authorization, peer) {
        Ok(tenant) => tenant,
        Err(refusal) => return refused(format, refusal),
    };
    let mut admitted = match state.admission.enter() {
        Ok(admitted) => admitted,
        Err(overloaded) => return too_busy(format, overloaded),
    };
    let encoding_header = headers.get(header::CONTENT_ENCODING).and_then(|value| value.to_str().ok());
    let Some(encoding) = Encoding::from_header(encoding_header) else {
        let message = format!(
            "unsupported Content-Encoding {:?}; send gzip, zstd or no encoding",
            encoding_header.unwrap_or_default()
        );
        return body_failure(format, BodyError::Unsupported(message));
    };
    let wire_cap = limits.max_request_body_size;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    // The body is charged before it is read when its length is declared (twice: the frames as they arrive,
    // and the one buffer they are joined into), else once read.
    if let Some(length) = declared.filter(|length| *length <= wire_cap)
        && let Err(overloaded) = admitted.reserve(2 * length)
    {
        return too_busy(format, overloaded);
    }
    let wire = if declared.is_some_and(|length| length > wire_cap) {
        Err(body::too_large(wire_cap, "max_request_body_size"))
    } else {
        body::read_limited(request_body, wire_cap, "max_request_body_size", limits.read_timeout).await
    };
    let decoded = match wire {
        Ok(wire) => {
            if declared.is_none()
                && let Err(overloaded) = admitted.reserve(2 * wire.len())
            {
                return too_busy(format, overloaded);
            }
            let _inflight = state.service.metrics().hold(wire.len());
            state.service.metrics().size(signal, protocol_of(format), wire.len());
            body::decode(signal, format, encoding, wire, limits.max_decompressed_bytes, admitted).await
        }
        Err(error) => Err(error),
    };
    // The admission's permits are held until the request is answered.
    let (request, _admitted) = match decoded {
        Ok(decoded) => decoded,
        Err(error) => return body_failure(format, error),
    };
    match state.service.export(protocol_of(format), tenant, request).await {
        Ok(rejection) => success(format, signal, &rejection),
        Err(refusal) => refused(format, refusal),
    }
}

/// The answer to a request the service refused.
fn refused(format: Format, refusal: Refusal) -> Response {
    failure(format, refusal.status(), refusal.to_string())
}

fn body_failure(format: Format, error: BodyError) -> Response {
    failure(format, error.status(), error.message())
}

fn success(format: Format, signal: Signal, rejection: &Rejection) -> Response {
    let body = match format {
        Format::Json => stella_otlp::json::encode_response(signal, rejection.count, &rejection.message),
        Format::Protobuf => response::protobuf(signal, rejection),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type_of(format))], body).into_response()
}

/// 429 + Retry-After: the receiver is at a limit; the client retries.
fn too_busy(format: Format, overloaded: Overloaded) -> Response {
    failure(format, overloaded.status(), overloaded.to_string())
}

/// A refusal with its `Status` body, HTTP status and headers from the one table.
fn failure(format: Format, status: Status, message: String) -> Response {
    let rpc_status = RpcStatus { code: i32::from(status.grpc), message };
    let body = match format {
        Format::Json => rpc_status.to_json(),
        Format::Protobuf => rpc_status.encode_to_vec(),
    };
    let http = StatusCode::from_u16(status.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (http, [(header::CONTENT_TYPE, content_type_of(format))], body).into_response();
    if let Some(seconds) = status.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if status.challenge {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
