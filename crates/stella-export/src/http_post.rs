//! What the HTTP exporters share: a client with the configured TLS material, and one POST with the
//! retry policy of push APIs (Prometheus remote-write, Loki):
//!
//! - 2xx: taken;
//! - connection failures, timeouts, 429, 502, 503 and 504: the backend cannot take it *now*; the
//!   consumer retries the same batch with backoff (honouring `Retry-After`) for as long as it takes;
//! - 500 and other 5xx: the backend failed on this body, which may fail the same way forever (a real
//!   Prometheus answers 500 for a series with a duplicate label), so it is retried here a few times
//!   with capped backoff, then dropped and counted;
//! - other 4xx: refused for good, dropped and counted, never retried.
use std::time::Duration;

use bytes::Bytes;

use crate::ExportError;
use crate::otlp::{ClientTls, TlsMaterial};

/// The first wait before retrying a 5xx; it doubles per attempt up to [`MAX_SERVER_ERROR_BACKOFF`].
const FIRST_SERVER_ERROR_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two attempts after a 5xx.
const MAX_SERVER_ERROR_BACKOFF: Duration = Duration::from_secs(5);

/// An HTTP client for `endpoint` (named in errors) with the CA and client identity of `tls`.
pub(crate) fn client(tls: &ClientTls, endpoint: &str) -> Result<reqwest::Client, ExportError> {
    let fail =
        |message: String| ExportError::Rejected { reason: "client".into(), endpoint: endpoint.to_string(), message };
    let TlsMaterial { ca, identity } = tls.load().map_err(&fail)?;
    let roots = match ca {
        Some(ca) => {
            Some(reqwest::Certificate::from_pem_bundle(&ca).map_err(|error| fail(format!("tls.ca_file: {error}")))?)
        }
        None => None,
    };
    let identity = match identity {
        Some((mut cert, key)) => {
            cert.extend_from_slice(&key);
            let identity =
                reqwest::Identity::from_pem(&cert).map_err(|error| fail(format!("tls.cert_file/key_file: {error}")))?;
            Some(identity)
        }
        None => None,
    };
    crate::http_client::build(|mut builder| {
        if let Some(roots) = &roots {
            builder = builder.tls_certs_only(roots.clone());
        }
        if let Some(identity) = &identity {
            builder = builder.identity(identity.clone());
        }
        builder
    })
    .map_err(|error| fail(format!("cannot build the HTTP client: {error}")))
}

/// The wait a `Retry-After` header (in seconds) asks for.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get("retry-after")?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// One push endpoint and how to call it.
pub(crate) struct Poster {
    /// The client.
    pub client: reqwest::Client,
    /// The URL posted to.
    pub url: String,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Configured headers (authorization, tenant), sent with every request.
    pub headers: Vec<(String, String)>,
    /// Attempts after the first for a 500 or other non-transient 5xx.
    pub server_error_retries: u32,
}

impl Poster {
    /// POSTs `body` with `content_headers`, under the policy in the module docs.
    pub async fn post(&self, body: Bytes, content_headers: &[(&str, &str)]) -> Result<(), ExportError> {
        let mut backoff = FIRST_SERVER_ERROR_BACKOFF;
        let mut attempt = 0;
        loop {
            match self.attempt(body.clone(), content_headers).await {
                Err(ExportError::Rejected { reason, endpoint, message })
                    if reason.starts_with("http_5") && attempt < self.server_error_retries =>
                {
                    attempt += 1;
                    tracing::warn!(%endpoint, reason, message, attempt, retry_in = ?backoff, "server error; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_SERVER_ERROR_BACKOFF);
                }
                Err(ExportError::Rejected { reason, endpoint, message }) if reason.starts_with("http_5") => {
                    return Err(ExportError::Rejected {
                        reason: format!("{reason}_retries_exhausted"),
                        endpoint,
                        message: format!("{message} (after {} attempts)", attempt + 1),
                    });
                }
                outcome => return outcome,
            }
        }
    }

    async fn attempt(&self, body: Bytes, content_headers: &[(&str, &str)]) -> Result<(), ExportError> {
        let mut call = self.client.post(&self.url).timeout(self.timeout);
        for (name, value) in content_headers {
            call = call.header(*name, *value);
        }
        for (name, value) in &self.headers {
            call = call.header(name, value);
        }
        let response = call.body(body).send().await.map_err(|error| {
            let reason = if error.is_timeout() { "timeout" } else { "connection" };
            ExportError::Retryable { reason, endpoint: self.url.clone(), message: error.to_string(), retry_after: None }
        })?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        if (200..300).contains(&status) {
            return Ok(());
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let message = format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).trim());
        match status {
            429 | 502 | 503 | 504 => Err(ExportError::Retryable {
                reason: if status == 429 { "throttled" } else { "unavailable" },
                endpoint: self.url.clone(),
                message,
                retry_after,
            }),
            _ => Err(ExportError::Rejected { reason: format!("http_{status}"), endpoint: self.url.clone(), message }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A loopback server answering every request with `status`; counts the requests.
    async fn answering(status: u16) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|error| panic!("{error}"));
        let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap_or_else(|error| panic!("{error}")));
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    // Headers, then a body of Content-Length bytes.
                    loop {
                        let Ok(read) = socket.read(&mut buffer).await else { return };
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|line| line.strip_prefix("content-length:"))
                                .and_then(|value| value.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope");
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        (url, count)
    }

    fn poster(url: String) -> Poster {
        Poster {
            client: client(&ClientTls::default(), &url).unwrap_or_else(|error| panic!("{error}")),
            url,
            timeout: Duration::from_secs(5),
            headers: Vec::new(),
            server_error_retries: 2,
        }
    }

    #[tokio::test]
    async fn a_500_is_retried_a_capped_number_of_times_then_dropped() {
        let (url, count) = answering(500).await;
        let outcome = poster(url).post(Bytes::from_static(b"body"), &[]).await;
        match outcome {
            Err(ExportError::Rejected { reason, message, .. }) => {
                assert_eq!(reason, "http_500_retries_exhausted");
                assert!(message.contains("after 3 attempts") && message.contains("nope"), "{message}");
            }
            other => panic!("expected a final rejection, got {other:?}"),
        }
        assert_eq!(count.load(Ordering::SeqCst), 3, "the first attempt and two retries");
    }

    #[tokio::test]
    async fn other_4xx_are_never_retried_and_429_and_503_go_back_to_the_consumer() {
        let (url, count) = answering(400).await;
        let outcome = poster(url).post(Bytes::from_static(b"body"), &[]).await;
        assert!(
            matches!(outcome, Err(ExportError::Rejected { ref reason, .. }) if reason == "http_400"),
            "{outcome:?}"
        );
        assert_eq!(count.load(Ordering::SeqCst), 1);
        for (status, expected) in [(429, "throttled"), (503, "unavailable")] {
            let (url, count) = answering(status).await;
            let outcome = poster(url).post(Bytes::from_static(b"body"), &[]).await;
            assert!(
                matches!(outcome, Err(ExportError::Retryable { reason, .. }) if reason == expected),
                "{status}: {outcome:?}"
            );
            assert_eq!(count.load(Ordering::SeqCst), 1, "{status} is retried by the consumer, not here");
        }
    }
}
