//! What the Tempo and Loki APIs share: errors answered as plain text (as both answer them) and the
//! current time their default ranges end at.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A refused request: a status and a plain-text message (`text/plain; charset=utf-8`).
pub(crate) struct Refusal(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

/// A refusal with `status`.
pub(crate) fn refusal(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal(status, message.into())
}

/// Now, in unix nanoseconds.
pub(crate) fn now_nanos() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(u64::MAX)
}
