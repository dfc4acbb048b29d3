//! Walking a parsed [`Value`] with path tracking: the [`Path`] of the value being decoded, the
//! [`Obj`] accessor for message fields (lowerCamelCase or snake_case names, `null` = absent), and
//! the decoders of scalar JSON values shared by every message.
//!
//! Every decoder has the shape `fn(&Value, &Path) -> Result<T, JsonError>` so the generic helpers
//! ([`Obj::get`], [`Obj::opt`], [`Obj::list`], [`array`]) can apply any of them.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::JsonError;

/// One step from the parent value.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// The top-level value.
    Root,
    /// A field of an object.
    Key(&'a str),
    /// An item of an array.
    Index(usize),
}

/// Where a value sits in the body, as a linked list of steps on the stack: it costs nothing until
/// an error renders it.
#[derive(Clone, Copy)]
pub(super) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Step<'a>,
}

/// The path of the top-level value.
pub(super) const ROOT: Path<'static> = Path { parent: None, step: Step::Root };

impl<'a> Path<'a> {
    /// The field `key` of this object.
    pub(super) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path { parent: Some(self), step: Step::Key(key) }
    }

    /// The item `index` of this array.
    pub(super) fn index(&'a self, index: usize) -> Path<'a> {
        Path { parent: Some(self), step: Step::Index(index) }
    }

    /// An error at this path.
    pub(super) fn error(&self, reason: impl Into<String>) -> JsonError {
        JsonError { path: self.render(), reason: reason.into() }
    }

    /// `a.b[2].c`, or `$` for the top-level value.
    fn render(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            steps.push(path.step);
            at = path.parent;
        }
        let mut text = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Root => {}
                Step::Key(key) if text.is_empty() => text.push_str(key),
                Step::Key(key) => {
                    text.push('.');
                    text.push_str(key);
                }
                Step::Index(index) => text.push_str(&format!("[{index}]")),
            }
        }
        if text.is_empty() { "$".to_string() } else { text }
    }
}

/// The JSON type of a value, for "expected X, found Y" reasons.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The error for a value of the wrong JSON type.
fn wrong_type(value: &Value, path: &Path<'_>, expected: &str) -> JsonError {
    path.error(format!("expected {expected}, found {}", kind(value)))
}

/// A JSON object being decoded as a protobuf message.
pub(super) struct Obj<'v, 'p> {
    map: &'v Map<String, Value>,
    path: &'p Path<'p>,
}

impl<'v, 'p> Obj<'v, 'p> {
    /// The object at `path`, or an error if `value` is not an object.
    pub(super) fn new(value: &'v Value, path: &'p Path<'p>) -> Result<Self, JsonError> {
        match value {
            Value::Object(map) => Ok(Obj { map, path }),
            other => Err(wrong_type(other, path, "an object")),
        }
    }

    /// The field named `camel` (or its snake_case proto name) with the key as written; `None` if
    /// absent or `null`.
    fn lookup(&self, camel: &str) -> Option<(&'v str, &'v Value)> {
        let found = self.map.get_key_value(camel).or_else(|| {
            let has_upper = camel.bytes().any(|byte| byte.is_ascii_uppercase());
            has_upper.then(|| self.map.iter().find(|(key, _)| is_snake_of(key, camel))).flatten()
        });
        found.and_then(|(key, value)| (!value.is_null()).then_some((key.as_str(), value)))
    }

    /// The field decoded by `decode`, or `None` if absent or `null`.
    pub(super) fn opt<T>(
        &self,
        camel: &str,
        decode: impl FnOnce(&Value, &Path<'_>) -> Result<T, JsonError>,
    ) -> Result<Option<T>, JsonError> {
        match self.lookup(camel) {
            None => Ok(None),
            Some((key, value)) => decode(value, &self.path.key(key)).map(Some),
        }
    }

    /// The field decoded by `decode`, or the default value if absent or `null`.
    pub(super) fn get<T: Default>(
        &self,
        camel: &str,
        decode: impl FnOnce(&Value, &Path<'_>) -> Result<T, JsonError>,
    ) -> Result<T, JsonError> {
        self.opt(camel, decode).map(Option::unwrap_or_default)
    }

    /// The repeated field, each item decoded by `decode`; empty if absent or `null`.
    pub(super) fn list<T>(
        &self,
        camel: &str,
        decode: impl Fn(&Value, &Path<'_>) -> Result<T, JsonError>,
    ) -> Result<Vec<T>, JsonError> {
        self.get(camel, |value, path| array(value, path, decode))
    }

    /// The member of a oneof group that is set, given each member's decoded field (`None` when
    /// absent); an error if more than one is set.
    pub(super) fn one_of<T, const N: usize>(
        &self,
        group: &str,
        members: [Option<T>; N],
    ) -> Result<Option<T>, JsonError> {
        let mut set = members.into_iter().flatten();
        let first = set.next();
        match set.next() {
            None => Ok(first),
            Some(_) => Err(self.path.error(format!("more than one field of the oneof `{group}` is set"))),
        }
    }
}

/// Whether `key` is the snake_case form of the lowerCamelCase `camel` (`trace_id` for `traceId`).
fn is_snake_of(key: &str, camel: &str) -> bool {
    let mut rest = key.bytes();
    for byte in camel.bytes() {
        if byte.is_ascii_uppercase() && rest.next() != Some(b'_') {
            return false;
        }
        if rest.next() != Some(byte.to_ascii_lowercase()) {
            return false;
        }
    }
    rest.next().is_none()
}

/// A JSON array, each item decoded by `decode`.
pub(super) fn array<T>(
    value: &Value,
    path: &Path<'_>,
    decode: impl Fn(&Value, &Path<'_>) -> Result<T, JsonError>,
) -> Result<Vec<T>, JsonError> {
    let Value::Array(items) = value else {
        return Err(wrong_type(value, path, "an array"));
    };
    items.iter().enumerate().map(|(index, item)| decode(item, &path.index(index))).collect()
}

/// A `string` field.
pub(super) fn string(value: &Value, path: &Path<'_>) -> Result<String, JsonError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        other => Err(wrong_type(other, path, "a string")),
    }
}

/// A `bool` field.
pub(super) fn boolean(value: &Value, path: &Path<'_>) -> Result<bool, JsonError> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        other => Err(wrong_type(other, path, "a boolean")),
    }
}

/// The largest integer an f64 holds exactly; integers written as floats beyond it may have been
/// rounded by the parser.
const MAX_EXACT_FLOAT_INT: f64 = 9_007_199_254_740_992.0;

/// Any integer field (`int32`, `uint32`, `int64`, `fixed64`, ...): a JSON number without a fraction
/// or a decimal string; an error if it does not fit in `T`.
pub(super) fn int<T: TryFrom<i128>>(value: &Value, path: &Path<'_>) -> Result<T, JsonError> {
    let wide = match value {
        Value::Number(number) => number_to_i128(number, path)?,
        Value::String(text) => text.parse::<i128>().map_err(|_| path.error(format!("invalid integer {text:?}")))?,
        other => return Err(wrong_type(other, path, "an integer (number or decimal string)")),
    };
    T::try_from(wide)
        .map_err(|_| path.error(format!("integer {wide} is out of range for {}", std::any::type_name::<T>())))
}

/// A JSON number as an integer: exact for integer literals, refused for fractions and for floats
/// too large to be exact.
fn number_to_i128(number: &serde_json::Number, path: &Path<'_>) -> Result<i128, JsonError> {
    if let Some(unsigned) = number.as_u64() {
        return Ok(i128::from(unsigned));
    }
    if let Some(signed) = number.as_i64() {
        return Ok(i128::from(signed));
    }
    let float = number.as_f64().unwrap_or(f64::NAN);
    if float.fract() != 0.0 || !float.is_finite() {
        return Err(path.error(format!("expected an integer, found {number}")));
    }
    if float.abs() > MAX_EXACT_FLOAT_INT {
        return Err(path.error(format!(
            "integer {number} is out of range or not exact as a JSON number; write it as a decimal string"
        )));
    }
    // Exact: `float` is an integer of magnitude at most 2^53.
    Ok(float as i128)
}

/// A `double` field: a JSON number, a numeric string, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub(super) fn double(value: &Value, path: &Path<'_>) -> Result<f64, JsonError> {
    match value {
        Value::Number(number) => number.as_f64().ok_or_else(|| path.error(format!("invalid number {number}"))),
        Value::String(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => text
                .parse::<f64>()
                .ok()
                .filter(|float| float.is_finite())
                .ok_or_else(|| path.error(format!("invalid number {text:?}"))),
        },
        other => Err(wrong_type(other, path, "a number, a numeric string, \"NaN\", \"Infinity\" or \"-Infinity\"")),
    }
}

/// An enum field: its integer value (unknown values are kept, proto3 enums are open) or the name of
/// one of its values, resolved by `from_name` (e.g. `SpanKind::from_str_name`).
pub(super) fn enumeration<E: Into<i32>>(
    value: &Value,
    path: &Path<'_>,
    from_name: fn(&str) -> Option<E>,
) -> Result<i32, JsonError> {
    match value {
        Value::String(name) => match from_name(name) {
            Some(known) => Ok(known.into()),
            None => int(value, path).map_err(|_| path.error(format!("unknown enum value name {name:?}"))),
        },
        Value::Number(_) => int(value, path),
        other => Err(wrong_type(other, path, "an enum value (integer or name)")),
    }
}

/// A trace, span or parent span id: hex digits of any case; any even length is accepted (length is
/// validated elsewhere) and `""` is an empty id.
pub(super) fn id(value: &Value, path: &Path<'_>) -> Result<Vec<u8>, JsonError> {
    let Value::String(text) = value else {
        return Err(wrong_type(value, path, "a hex string"));
    };
    hex::decode(text).map_err(|error| {
        let detail = match error {
            hex::FromHexError::InvalidHexCharacter { c, index } => {
                format!("character {c:?} at position {index}")
            }
            hex::FromHexError::OddLength => format!("odd number of digits: {}", text.len()),
            hex::FromHexError::InvalidStringLength => "invalid length".to_string(),
        };
        path.error(format!("invalid hex ({detail})"))
    })
}

/// Base64 with the standard alphabet, padding optional.
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 with the URL-safe alphabet, padding optional.
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A `bytes` field other than an id: base64, standard or URL-safe alphabet, padded or not.
pub(super) fn base64(value: &Value, path: &Path<'_>) -> Result<Vec<u8>, JsonError> {
    let Value::String(text) = value else {
        return Err(wrong_type(value, path, "a base64 string"));
    };
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|error| path.error(format!("invalid base64 ({error})")))
}
