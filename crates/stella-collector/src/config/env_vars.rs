//! The environment variables a config names (`hash_key_env`, `access_key_id_env`, `noise_key_env`, ...):
//! read once at the binary's edge and handed to config loading, so validation and the running components
//! see the same values, and tests set them without touching the process.
use std::collections::BTreeMap;
use std::sync::Arc;

/// A snapshot of environment variables. `Debug` lists names only: values are often secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvVars(Arc<BTreeMap<String, String>>);

impl EnvVars {
    /// The variables of this process. One whose name or value is not UTF-8 is left out (it could not
    /// name or hold a key a config refers to).
    pub fn of_this_process() -> Self {
        std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect()
    }

    /// The value of `name`, if it is set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EnvVars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        EnvVars(Arc::new(pairs.into_iter().map(|(name, value)| (name.into(), value.into())).collect()))
    }
}

impl std::fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A secret from the config file or the environment: compared and used, never printed (`Debug` redacts
/// it).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(crate) String);

impl Secret {
    /// The secret's text, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_unset_and_debug_shows_no_value() {
        let vars: EnvVars = [("KEY", "very-secret"), ("EMPTY", "")].into_iter().collect();
        assert_eq!(vars.get("KEY"), Some("very-secret"));
        assert_eq!(vars.get("EMPTY"), None);
        assert_eq!(vars.get("ABSENT"), None);
        let shown = format!("{vars:?}");
        assert!(shown.contains("KEY") && !shown.contains("very-secret"), "{shown}");
    }
}
