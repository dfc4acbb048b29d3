//! OTLP/HTTP (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>): `POST /v1/traces|metrics|logs`,
//! protobuf (`application/x-protobuf`) or JSON (`application/json`) on the same port, `gzip`/`zstd`
//! bodies, answers encoded like the request, failures as `google.rpc.Status`.
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, Limited};
use prost::Message;
use stella_otlp::validate::Rejection;
use stella_otlp::{OtlpRequest, RpcStatus, Signal};

use super::decompress::{DecompressError, Encoding, decompress};
use super::{OtlpService, Protocol, response};

/// Bodies larger than this (decompressed) are decoded off the async workers.
const DECODE_INLINE_MAX: usize = 256 * 1024;

/// Limits of one HTTP receiver.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Cap on the body as sent.
    pub max_request_body_size: usize,
    /// Cap on the body after decompression.
    pub max_decompressed_bytes: usize,
}

#[derive(Clone)]
struct HttpState {
    service: OtlpService,
    limits: HttpLimits,
}

/// The OTLP/HTTP routes of one receiver.
pub fn router(service: OtlpService, limits: HttpLimits) -> Router {
    let state = HttpState { service, limits };
    Router::new()
        .route(
            "/v1/traces",
            post(|state: State<HttpState>, headers: HeaderMap, body: Body| {
                export(state, Signal::Traces, headers, body)
            }),
        )
        .route(
            "/v1/metrics",
            post(|state: State<HttpState>, headers: HeaderMap, body: Body| {
                export(state, Signal::Metrics, headers, body)
            }),
        )
        .route(
            "/v1/logs",
            post(|state: State<HttpState>, headers: HeaderMap, body: Body| export(state, Signal::Logs, headers, body)),
        )
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Protobuf,
    Json,
}

impl BodyFormat {
    fn from_headers(headers: &HeaderMap) -> Option<BodyFormat> {
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media_type.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(BodyFormat::Protobuf),
            "application/json" => Some(BodyFormat::Json),
            _ => None,
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            BodyFormat::Protobuf => Protocol::HttpProtobuf,
            BodyFormat::Json => Protocol::HttpJson,
        }
    }

    fn content_type(self) -> HeaderValue {
        match self {
            BodyFormat::Protobuf => HeaderValue::from_static("application/x-protobuf"),
            BodyFormat::Json => HeaderValue::from_static("application/json"),
        }
    }
}

async fn export(State(state): State<HttpState>, signal: Signal, headers: HeaderMap, body: Body) -> Response {
    let format = BodyFormat::from_headers(&headers);
    let protocol = format.map_or(Protocol::HttpProtobuf, BodyFormat::protocol);
    let response = match format {
        Some(format) => export_body(&state, signal, format, &headers, body).await,
        None => failure(
            BodyFormat::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            3,
            "unsupported Content-Type; send application/x-protobuf or application/json".to_string(),
        ),
    };
    state.service.metrics().answered(state.service.receiver_id(), signal, protocol, response.status().as_u16());
    response
}

async fn export_body(
    state: &HttpState,
    signal: Signal,
    format: BodyFormat,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let limits = state.limits;
    let encoding_header = headers.get(header::CONTENT_ENCODING).and_then(|value| value.to_str().ok());
    let Some(encoding) = Encoding::from_header(encoding_header) else {
        let message = format!(
            "unsupported Content-Encoding {:?}; send gzip, zstd or no encoding",
            encoding_header.unwrap_or_default()
        );
        return failure(format, StatusCode::UNSUPPORTED_MEDIA_TYPE, 3, message);
    };
    let too_large = || {
        let message = format!(
            "the body is larger than {} bytes (max_request_body_size); send smaller requests",
            limits.max_request_body_size
        );
        failure(format, StatusCode::PAYLOAD_TOO_LARGE, 8, message)
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limits.max_request_body_size) {
        return too_large();
    }
    let wire = match Limited::new(body, limits.max_request_body_size).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(error) => {
            return failure(format, StatusCode::BAD_REQUEST, 3, format!("could not read the request body: {error}"));
        }
    };
    let _inflight = state.service.metrics().hold(wire.len());
    state.service.metrics().size(signal, format.protocol(), wire.len());
    let cap = limits.max_decompressed_bytes;
    let decoded = if wire.len() > DECODE_INLINE_MAX || encoding != Encoding::Identity {
        let decoding = tokio::task::spawn_blocking(move || decode(signal, format, encoding, wire, cap));
        decoding.await.unwrap_or_else(|_| {
            let message = "decoding the request failed unexpectedly".to_string();
            Err(Failure { status: StatusCode::INTERNAL_SERVER_ERROR, code: 13, message })
        })
    } else {
        decode(signal, format, encoding, wire, cap)
    };
    let request = match decoded {
        Ok(request) => request,
        Err(Failure { status, code, message }) => return failure(format, status, code, message),
    };
    match state.service.export(format.protocol(), request).await {
        Ok(rejection) => success(format, signal, &rejection),
        Err(refusal) => {
            let (status, code) =
                if refusal.retryable() { (StatusCode::SERVICE_UNAVAILABLE, 14) } else { (StatusCode::NOT_FOUND, 12) };
            let mut response = failure(format, status, code, refusal.to_string());
            if refusal.retryable() {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            response
        }
    }
}

/// A request refused before it reaches the service: HTTP status, gRPC code, message.
struct Failure {
    status: StatusCode,
    code: i32,
    message: String,
}

fn decode(
    signal: Signal,
    format: BodyFormat,
    encoding: Encoding,
    wire: Bytes,
    cap: usize,
) -> Result<OtlpRequest, Failure> {
    let invalid = |message| Failure { status: StatusCode::BAD_REQUEST, code: 3, message };
    let body = decompress(encoding, wire, cap).map_err(|error| match error {
        DecompressError::TooLarge { .. } => {
            Failure { status: StatusCode::PAYLOAD_TOO_LARGE, code: 8, message: error.to_string() }
        }
        DecompressError::Corrupt { .. } => invalid(error.to_string()),
    })?;
    match format {
        BodyFormat::Protobuf => OtlpRequest::decode_protobuf(signal, &body)
            .map_err(|error| invalid(format!("{error}; check that the body is an OTLP {signal} request"))),
        BodyFormat::Json => stella_otlp::json::decode(signal, &body)
            .map_err(|error| invalid(format!("invalid OTLP/JSON {signal} request at {error}"))),
    }
}

fn success(format: BodyFormat, signal: Signal, rejection: &Rejection) -> Response {
    let body = match format {
        BodyFormat::Json => stella_otlp::json::encode_response(signal, rejection.count, &rejection.message),
        BodyFormat::Protobuf => protobuf_response(signal, rejection),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// The protobuf `Export*ServiceResponse` of `signal`.
fn protobuf_response(signal: Signal, rejection: &Rejection) -> Vec<u8> {
    match signal {
        Signal::Traces => response::traces(rejection).encode_to_vec(),
        Signal::Metrics => response::metrics(rejection).encode_to_vec(),
        Signal::Logs => response::logs(rejection).encode_to_vec(),
    }
}

fn failure(format: BodyFormat, status: StatusCode, code: i32, message: String) -> Response {
    let rpc_status = RpcStatus { code, message };
    let body = match format {
        BodyFormat::Json => rpc_status.to_json(),
        BodyFormat::Protobuf => rpc_status.encode_to_vec(),
    };
    (status, [(header::CONTENT_TYPE, format.content_type())], body).into_response()
}
