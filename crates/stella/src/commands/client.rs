//! Calls to a running server's API, shared by the client commands.
use anyhow::Context;

use crate::exit::ServerError;

/// The command line's HTTP client (one that starts even on a machine without CA certificates).
pub fn http() -> anyhow::Result<reqwest::Client> {
    stella_export::http_client::plain().context("cannot set up an HTTP client")
}

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
    let mut request = http()?.request(method, &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{url} is unreachable; is `stella telemetry serve` running there?"))?;
    let status = response.status();
    let bytes = response.bytes().await.with_context(|| format!("cannot read the answer of {url}"))?;
    if !status.is_success() {
        return Err(refused(&url, status, &bytes));
    }
    Ok(bytes.to_vec())
}

/// The [`ServerError`] of a refused call: the server's `{"code","field","message"}` (at the top, under
/// `error`, or of each refused item of a batch answer's `results`), or its raw answer when it sent none.
pub fn refused(url: &str, status: reqwest::StatusCode, body: &[u8]) -> anyhow::Error {
    ServerError { message: format!("{url} refused ({status}): {}", refusal_reasons(body)) }.into()
}

/// What a refusal body says, as `code field: message` lines (the raw body when it is not that JSON).
fn refusal_reasons(body: &[u8]) -> String {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let reason = |value: &serde_json::Value| {
        let code = value["code"].as_str()?;
        let message = value["message"].as_str().unwrap_or_default();
        Some(match value["field"].as_str() {
            Some(field) => format!("{code} ({field}): {message}"),
            None => format!("{code}: {message}"),
        })
    };
    let mut reasons: Vec<String> = reason(&answer).into_iter().chain(reason(&answer["error"])).collect();
    if let Some(results) = answer["results"].as_array() {
        reasons.extend(results.iter().filter(|result| result["status"] == "refused").filter_map(|result| {
            let item = result["id"].as_str().map(|id| format!("{id}: ")).unwrap_or_default();
            reason(result).map(|reason| format!("{item}{reason}"))
        }));
    }
    if reasons.is_empty() {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        return if text.is_empty() { "no reason given".to_string() } else { text.chars().take(500).collect() };
    }
    reasons.join("; ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_shows_code_field_and_message_wherever_the_server_put_them() {
        let top = br#"{"code":"query.invalid_parameter","message":"limit=0"}"#;
        assert_eq!(refusal_reasons(top), "query.invalid_parameter: limit=0");
        let batch = br#"{"refused":1,"results":[{"index":0,"id":"d1","status":"refused","code":"dora.invalid_event","field":"finished","message":"finished is before started"}]}"#;
        assert_eq!(refusal_reasons(batch), "d1: dora.invalid_event (finished): finished is before started");
        assert_eq!(refusal_reasons(b"Bad Gateway"), "Bad Gateway");
        assert_eq!(refusal_reasons(b""), "no reason given");
    }
}
