//! Calls to a running server's API, shared by the client commands.
use anyhow::Context;

use crate::exit::ServerError;

/// One API call; the JSON answer, or a [`ServerError`] with the server's code and message.
pub async fn call(
    method: reqwest::Method,
    server: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let bytes = fetch(method, server, path, token, body).await?;
    Ok(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// One API call; the answer's bytes as they came (reports in Markdown, HTML, CSV), or a
/// [`ServerError`] with the server's code and message.
pub async fn fetch(
    method: reqwest::Method,
    server: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> anyhow::Result<Vec<u8>> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut request = reqwest::Client::new().request(method, &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is `stella telemetry serve` running there?"))?;
    let status = response.status();
    let bytes = response.bytes().await.with_context(|| format!("cannot read the answer of {url}"))?;
    if !status.is_success() {
        return Err(refused(&url, status, &bytes));
    }
    Ok(bytes.to_vec())
}

/// The [`ServerError`] of a refused call, with the `{"code","message"}` the server answered.
pub fn refused(url: &str, status: reqwest::StatusCode, body: &[u8]) -> anyhow::Error {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let code = answer["code"].as_str().unwrap_or("unknown");
    let message = answer["message"].as_str().unwrap_or_default();
    ServerError { message: format!("{url} refused ({status}, {code}): {message}") }.into()
}

/// Percent-encodes a query-string component (tenant ids are plain, but `*`, spaces and `=` must travel safely).
pub fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
