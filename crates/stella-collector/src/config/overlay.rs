use serde_json::Value;

/// Overlays `overlay` onto `base`: objects merge key by key, any other value (lists included) replaces
/// what was there, and `null` removes a key the base has (so a user can drop a profile's pipeline or
/// exporter); a `null` for a new key stays, meaning "this component with its defaults".
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                if value.is_null() && base.contains_key(&key) {
                    base.remove(&key);
                    continue;
                }
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => merge(existing, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}
