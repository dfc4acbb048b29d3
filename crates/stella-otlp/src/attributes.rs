//! Reading and making OTLP attributes: the lookups stages, the store and queries all do.
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// The resource attribute naming the redaction policy that cleaned the data: `name@sha256:<hex>`.
pub const REDACTION_PROFILE: &str = "stella.redaction.profile";

/// A string attribute.
pub fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

/// The value of `key` in `attributes`, if it has one.
pub fn get<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
}

/// The string value of `key` in `attributes` (`None` if absent or not a string).
pub fn get_str<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match get(attributes, key)? {
        Value::StringValue(text) => Some(text),
        _ => None,
    }
}

/// `service.name` of a resource.
pub fn service_name(resource: Option<&Resource>) -> Option<&str> {
    get_str(&resource?.attributes, "service.name")
}

/// The string form of a scalar value (string, integer, double, boolean); `None` for bytes, arrays and maps.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(text) => Some(text.clone()),
        Value::IntValue(number) => Some(number.to_string()),
        Value::DoubleValue(number) => Some(number.to_string()),
        Value::BoolValue(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A value as label text: scalars as [`scalar_text`], bytes as hex, arrays and maps in debug form,
/// nothing as the empty string. What stream labels, series labels and query answers show.
pub fn label_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(Value::BytesValue(bytes)) => hex::encode(bytes),
        Some(other) => scalar_text(other).unwrap_or_else(|| format!("{other:?}")),
        None => String::new(),
    }
}

/// A value as JSON: strings, booleans and numbers as themselves (a non-finite double as `null`), bytes as
/// hex, arrays as arrays, key-value lists as objects.
pub fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::StringValue(text) => text.clone().into(),
        Value::BoolValue(flag) => (*flag).into(),
        Value::IntValue(number) => (*number).into(),
        Value::DoubleValue(number) => serde_json::Number::from_f64(*number).map_or(serde_json::Value::Null, Into::into),
        Value::BytesValue(bytes) => hex::encode(bytes).into(),
        Value::ArrayValue(array) => {
            array.values.iter().filter_map(|value| value.value.as_ref()).map(json_value).collect()
        }
        Value::StringValueStrindex(index) => (*index).into(),
        Value::KvlistValue(list) => list
            .values
            .iter()
            .map(|pair| {
                let value = pair
                    .value
                    .as_ref()
                    .and_then(|value| value.value.as_ref())
                    .map_or(serde_json::Value::Null, json_value);
                (pair.key.clone(), value)
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}
