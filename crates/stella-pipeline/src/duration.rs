//! Durations in config files, written the way operators write them: `200ms`, `5s`, `1m30s`, `24h`.
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Deserializes a duration from a friendly string (`200ms`, `5s`, `2h 30m`) or ISO 8601 (`PT5S`).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// Parses a friendly or ISO 8601 duration (days count 24 hours: `90d`); negative durations are refused.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid =
        |error: jiff::Error| format!("invalid duration {text:?} ({error}); write it like 200ms, 5s, 1m30s or 90d");
    let signed: jiff::SignedDuration = match text.trim().parse() {
        Ok(signed) => signed,
        Err(_) => {
            let span: jiff::Span = text.trim().parse().map_err(invalid)?;
            span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).map_err(invalid)?
        }
    };
    Duration::try_from(signed).map_err(|_| format!("invalid duration {text:?}: must not be negative"))
}

/// Formats a duration the way [`parse`] reads it (for `config show`).
pub fn format(duration: Duration) -> String {
    match jiff::SignedDuration::try_from(duration) {
        Ok(signed) => format!("{signed:#}"),
        Err(_) => format!("{}s", duration.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_durations_parse() {
        assert_eq!(parse("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert!(parse("-5s").is_err());
        assert!(parse("soon").unwrap_err().contains("write it like 200ms"));
    }
}
