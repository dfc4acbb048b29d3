//! Attribute keys as Prometheus/Loki label names, the way the OpenTelemetry compatibility spec maps
//! them: what the remote-write and Loki exporters and the store's Prometheus API share.
use std::collections::BTreeMap;

use crate::proto::common::v1::KeyValue;

/// Label pairs of attributes: names sanitised, colliding names' values joined with `;` in key order.
pub fn label_pairs(mut attributes: Vec<&KeyValue>) -> Vec<(String, String)> {
    attributes.sort_by(|a, b| a.key.cmp(&b.key));
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for attribute in attributes {
        let value = crate::attributes::label_text(attribute.value.as_ref());
        if value.is_empty() || attribute.key.is_empty() {
            continue;
        }
        labels
            .entry(label_name(&attribute.key))
            .and_modify(|joined| {
                joined.push(';');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    labels.into_iter().collect()
}

/// A Prometheus label name for an attribute key.
pub fn label_name(key: &str) -> String {
    let name: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{name}")
    } else if name.starts_with('_') && !name.starts_with("__") {
        format!("key{name}")
    } else {
        name
    }
}
