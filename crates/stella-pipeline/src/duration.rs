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

/// Serde for a duration as a friendly string (`#[serde(with = "crate::duration::text")]`).
pub mod text {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Writes the duration as [`super::format`] does.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*duration))
    }

    /// Reads a friendly or ISO 8601 duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        super::deserialize(deserializer)
    }
}

/// Serde for an optional duration as a friendly string.
pub mod optional_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the duration as [`super::format`] does, or nothing.
    pub fn serialize<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_str(&super::format(*duration)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an optional friendly or ISO 8601 duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        text.map(|text| super::parse(&text).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Serde for a list of durations as friendly strings.
pub mod text_list {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes each duration as [`super::format`] does.
    pub fn serialize<S: Serializer>(durations: &[Duration], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(durations.iter().map(|duration| super::format(*duration)))
    }

    /// Reads a list of friendly or ISO 8601 durations.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
        let texts: Vec<String> = Vec::deserialize(deserializer)?;
        texts.iter().map(|text| super::parse(text).map_err(serde::de::Error::custom)).collect()
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
