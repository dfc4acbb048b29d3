//! How the manifest writes values JSON would get wrong: signals by name, nanosecond times as decimal strings
//! (RFC 8785 numbers are doubles, exact only up to 2^53).
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use crate::Signal;

pub(super) mod signal_name {
    use super::*;

    pub(in crate::bundle) fn serialize<S: Serializer>(signal: &Signal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(signal.as_str())
    }

    pub(in crate::bundle) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Signal, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(D::Error::custom)
    }
}

pub(super) mod signal_names {
    use super::*;

    pub(in crate::bundle) fn serialize<S: Serializer>(signals: &[Signal], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(signals.iter().map(|signal| signal.as_str()))
    }

    pub(in crate::bundle) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Signal>, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        names.iter().map(|name| name.parse().map_err(D::Error::custom)).collect()
    }
}

pub(super) mod decimal {
    use super::*;

    pub(in crate::bundle) fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub(in crate::bundle) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        let digits_only = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
        let value = if digits_only { text.parse().ok() } else { None };
        value.ok_or_else(|| D::Error::custom(format!("{text:?} is not a decimal unix nanosecond time")))
    }
}
