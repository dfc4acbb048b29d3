//! `storage.backend`: S3-compatible object storage for sealed chunks, so chunk storage can outgrow one
//! disk (the chunks themselves are in `stella-store`; these are the config's words for where they go).
//!
//! ```yaml
//! storage:
//!   backend:
//!     type: s3
//!     endpoint: https://s3.eu-west-1.amazonaws.com     # or http://127.0.0.1:9000 with allow_http: true
//!     bucket: stella-chunks
//!     prefix: production                               # optional key prefix
//!     region: eu-west-1                                # default us-east-1
//!     access_key_id_env: STELLA_S3_ACCESS_KEY_ID       # or access_key_id: inline
//!     secret_access_key_env: STELLA_S3_SECRET_KEY      # or secret_access_key: inline
//!     local_cache_bytes: 10737418240                   # absent: keep every chunk on disk too; 0: upload only
//! ```
//! The endpoint asks the egress policy like every outbound connection: an endpoint `egress.allow` does
//! not cover is a config error; with `egress.sealed: true` a non-loopback endpoint is inert (the config
//! starts, chunks stay on local disk, the start-up warns and counts it).
use serde::Deserialize;
use serde_json::Value;
use stella_export::egress::{EgressDenied, EgressPolicy};
use stella_export::object_storage::S3Options;
use stella_store::chunks::LocalCache;

use super::validate::{Problems, typed};
use super::{EnvVars, Secret};

/// The key path of the section.
const PATH: &str = "storage.backend";

/// Where a credential comes from, and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Written in the config (`access_key_id`, `secret_access_key`).
    Inline(Secret),
    /// Read from the environment variable `variable` (`access_key_id_env`, `secret_access_key_env`)
    /// when the config was loaded.
    Env {
        /// The variable's name.
        variable: String,
        /// Its value.
        value: Secret,
    },
}

impl Credential {
    /// The value.
    fn value(&self) -> &str {
        match self {
            Credential::Inline(Secret(value)) | Credential::Env { value: Secret(value), .. } => value,
        }
    }
}

/// `storage.backend` with `type: s3`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Backend {
    /// `endpoint`: the S3 endpoint URL.
    pub endpoint: String,
    /// `bucket`.
    pub bucket: String,
    /// `prefix`: key prefix of every object (default none; no leading or trailing `/`).
    pub prefix: String,
    /// `region` (default `us-east-1`).
    pub region: String,
    /// `access_key_id` or `access_key_id_env`.
    pub access_key_id: Credential,
    /// `secret_access_key` or `secret_access_key_env`.
    pub secret_access_key: Credential,
    /// `allow_http`: accept a plain `http://` endpoint (a loopback test server; default false).
    pub allow_http: bool,
    /// `local_cache_bytes`: uploaded chunk files kept on local disk (absent: all; 0: none).
    pub local_cache: LocalCache,
    /// Why egress keeps this backend inert (`egress.sealed` and a non-loopback endpoint); `None` when it
    /// may be used.
    pub sealed: Option<EgressDenied>,
}

impl S3Backend {
    /// The object store client's options.
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.value().to_string(),
            secret_access_key: self.secret_access_key.value().to_string(),
            allow_http: self.allow_http,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct S3Raw {
    #[serde(rename = "type")]
    _kind: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    prefix: String,
    #[serde(default = "default_region")]
    region: String,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    access_key_id_env: Option<String>,
    #[serde(default)]
    secret_access_key: Option<String>,
    #[serde(default)]
    secret_access_key_env: Option<String>,
    #[serde(default)]
    allow_http: bool,
    #[serde(default)]
    local_cache_bytes: Option<u64>,
}

fn default_region() -> String {
    "us-east-1".into()
}

/// Validates `storage.backend` against the `egress` policy; `None` (with problems) when invalid.
pub(super) fn backend(
    value: &Value,
    egress: &EgressPolicy,
    env_vars: &EnvVars,
    problems: &mut Problems,
) -> Option<S3Backend> {
    match value.get("type").and_then(Value::as_str) {
        Some("s3") => {}
        Some(other) => {
            problems.add(
                format!("{PATH}.type"),
                format!("unknown backend type `{other}`; use s3, or remove storage.backend to keep chunks on local disk only"),
            );
            return None;
        }
        None => {
            problems.add(format!("{PATH}.type"), "missing; set type: s3 (the only backend), or remove storage.backend");
            return None;
        }
    }
    let raw: S3Raw = typed(value, PATH, problems)?;
    let before = problems.len();
    let endpoint = endpoint(raw.endpoint, raw.allow_http, problems);
    let sealed = endpoint.as_deref().and_then(|endpoint| match egress.check(endpoint) {
        Ok(_) => None,
        Err(denied @ EgressDenied::Sealed { .. }) => Some(denied),
        Err(denied) => {
            problems.add(format!("{PATH}.endpoint"), denied.to_string());
            None
        }
    });
    let bucket = bucket(raw.bucket, problems);
    let prefix = prefix(&raw.prefix, problems);
    if raw.region.trim().is_empty() {
        problems.add(format!("{PATH}.region"), "is empty; set the bucket's region, e.g. us-east-1");
    }
    let access_key_id = credential(("access_key_id", raw.access_key_id), raw.access_key_id_env, env_vars, problems);
    let secret_access_key =
        credential(("secret_access_key", raw.secret_access_key), raw.secret_access_key_env, env_vars, problems);
    if problems.len() > before {
        return None;
    }
    Some(S3Backend {
        endpoint: endpoint?,
        bucket: bucket?,
        prefix: prefix?,
        region: raw.region,
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        allow_http: raw.allow_http,
        local_cache: raw.local_cache_bytes.map_or(LocalCache::KeepAll, LocalCache::UpTo),
        sealed,
    })
}

/// `endpoint`: an `http(s)://host[:port]` URL without a path; plain http only with `allow_http`.
fn endpoint(endpoint: Option<String>, allow_http: bool, problems: &mut Problems) -> Option<String> {
    let key = format!("{PATH}.endpoint");
    let Some(endpoint) = endpoint.filter(|endpoint| !endpoint.trim().is_empty()) else {
        problems.add(key, "missing; set the S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com");
        return None;
    };
    let endpoint = endpoint.trim().trim_end_matches('/').to_string();
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        problems.add(key, format!("{endpoint:?} has no scheme; write it like https://s3.eu-west-1.amazonaws.com"));
        return None;
    };
    if rest.contains('/') {
        problems.add(
            key,
            format!("{endpoint:?} has a path; give scheme, host and port only, and the bucket under bucket:"),
        );
        return None;
    }
    match scheme {
        "https" => Some(endpoint),
        "http" if allow_http => Some(endpoint),
        "http" => {
            problems.add(
                format!("{PATH}.allow_http"),
                format!("{endpoint} is plain http; use https://, or set allow_http: true (for a loopback test server)"),
            );
            None
        }
        other => {
            problems.add(key, format!("unknown scheme `{other}`; use https:// (or http:// with allow_http: true)"));
            None
        }
    }
}

/// `bucket`: an S3 bucket name (3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with
/// a letter or digit).
fn bucket(bucket: Option<String>, problems: &mut Problems) -> Option<String> {
    let key = format!("{PATH}.bucket");
    let Some(bucket) = bucket else {
        problems.add(key, "missing; name the bucket chunks go to (create it first)");
        return None;
    };
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(bucket.chars().next())
        && edge(bucket.chars().last());
    if !valid {
        problems.add(
            key,
            format!("{bucket:?} is not an S3 bucket name; use 3 to 63 lowercase letters, digits, . and -, starting and ending with a letter or digit"),
        );
        return None;
    }
    Some(bucket)
}

/// `prefix`: `/`-separated segments of letters, digits, `.`, `-` and `_` (outer slashes are dropped).
fn prefix(prefix: &str, problems: &mut Problems) -> Option<String> {
    let trimmed = prefix.trim_matches('/');
    let valid = trimmed.is_empty()
        || trimmed.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        });
    if !valid {
        problems.add(
            format!("{PATH}.prefix"),
            format!("{prefix:?} is not a key prefix; use segments of letters, digits, ., - and _ separated by /, e.g. stella/production"),
        );
        return None;
    }
    Some(trimmed.to_string())
}

/// A credential given inline (`name`) or by environment variable (`<name>_env`): exactly one of them,
/// and the variable set.
fn credential(
    (name, inline): (&str, Option<String>),
    variable: Option<String>,
    env_vars: &EnvVars,
    problems: &mut Problems,
) -> Option<Credential> {
    match (inline, variable) {
        (Some(_), Some(_)) => {
            problems.add(format!("{PATH}.{name}"), format!("set one of {name} and {name}_env, not both"));
            None
        }
        (Some(value), None) if value.is_empty() => {
            problems.add(
                format!("{PATH}.{name}"),
                format!("is empty; set it, or name an environment variable with {name}_env"),
            );
            None
        }
        (Some(value), None) => Some(Credential::Inline(Secret(value))),
        (None, Some(variable)) => match env_vars.get(&variable) {
            Some(value) => Some(Credential::Env { value: Secret(value.to_string()), variable }),
            None => {
                problems.add(
                    format!("{PATH}.{name}_env"),
                    format!("the environment variable {variable} is not set; export it before starting stella"),
                );
                None
            }
        },
        (None, None) => {
            problems.add(
                format!("{PATH}.{name}"),
                format!("missing; set {name}_env to the environment variable that holds it (or {name} inline)"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stella_export::egress::EgressRule;

    use super::*;

    fn valid() -> Value {
        json!({
            "type": "s3", "endpoint": "http://127.0.0.1:9000", "bucket": "stella-chunks", "prefix": "/prod/eu/",
            "access_key_id": "AKIA", "secret_access_key": "very-secret", "allow_http": true, "local_cache_bytes": 0
        })
    }

    /// The problems of `value` under `policy`, as `path: message` lines.
    fn problems(value: Value, policy: &EgressPolicy) -> (Option<S3Backend>, Vec<String>) {
        let mut problems = Problems::default();
        let built = backend(&value, policy, &EnvVars::default(), &mut problems);
        (built, problems.lines())
    }

    /// [`valid`] with the keys of `changes` set (`null`: removed).
    fn with(changes: Value) -> Value {
        let mut value = valid();
        let (Some(map), Some(changes)) = (value.as_object_mut(), changes.as_object()) else { panic!("maps") };
        for (key, change) in changes {
            match change {
                Value::Null => map.remove(key),
                other => map.insert(key.clone(), other.clone()),
            };
        }
        value
    }

    #[test]
    fn a_valid_backend_builds_with_its_defaults_and_never_prints_its_secret() {
        let (built, errors) = problems(valid(), &EgressPolicy::default());
        assert!(errors.is_empty(), "{errors:?}");
        let built = built.unwrap();
        assert_eq!((built.prefix.as_str(), built.region.as_str()), ("prod/eu", "us-east-1"));
        assert_eq!((built.local_cache, built.sealed.clone()), (LocalCache::UpTo(0), None));
        assert!(!format!("{built:?}").contains("very-secret"), "{built:?}");
        let options = built.options();
        assert_eq!(options.secret_access_key, "very-secret");
        assert!(!format!("{options:?}").contains("very-secret"));
        let (kept, _) = problems(with(json!({"local_cache_bytes": null})), &EgressPolicy::default());
        assert_eq!(kept.unwrap().local_cache, LocalCache::KeepAll, "absent: every chunk stays on disk too");
    }

    #[test]
    fn every_problem_names_its_key_and_the_fix() {
        let cases = [
            (json!({"type": "gcs"}), "storage.backend.type: unknown backend type `gcs`; use s3"),
            (json!({"endpoint": null}), "storage.backend.endpoint: missing; set the S3 endpoint URL"),
            (json!({"endpoint": "s3.example.com"}), "storage.backend.endpoint: \"s3.example.com\" has no scheme"),
            (
                json!({"endpoint": "http://127.0.0.1:9000/bucket"}),
                "storage.backend.endpoint: \"http://127.0.0.1:9000/bucket\" has a path",
            ),
            (
                json!({"allow_http": false}),
                "storage.backend.allow_http: http://127.0.0.1:9000 is plain http; use https://, or set allow_http: true",
            ),
            (json!({"bucket": "My_Bucket"}), "storage.backend.bucket: \"My_Bucket\" is not an S3 bucket name"),
            (json!({"bucket": null}), "storage.backend.bucket: missing"),
            (json!({"prefix": "a//b"}), "storage.backend.prefix: \"a//b\" is not a key prefix"),
            (json!({"region": ""}), "storage.backend.region: is empty"),
            (json!({"access_key_id": null}), "storage.backend.access_key_id: missing; set access_key_id_env"),
            (
                json!({"access_key_id_env": "X"}),
                "storage.backend.access_key_id: set one of access_key_id and access_key_id_env, not both",
            ),
            (
                json!({"secret_access_key": null, "secret_access_key_env": "STELLA_TEST_UNSET_S3_SECRET"}),
                "storage.backend.secret_access_key_env: the environment variable STELLA_TEST_UNSET_S3_SECRET is not set",
            ),
            (json!({"bukket": "x"}), "storage.backend.bukket: unknown field `bukket`"),
        ];
        for (changes, expected) in cases {
            let (built, errors) = problems(with(changes.clone()), &EgressPolicy::default());
            assert!(built.is_none(), "{changes}");
            assert!(errors.iter().any(|error| error.starts_with(expected)), "{changes}: {errors:?}");
        }
    }

    #[test]
    fn the_endpoint_asks_the_egress_policy_and_sealed_mode_keeps_it_inert() {
        let remote = with(json!({"endpoint": "https://s3.eu-west-1.amazonaws.com", "allow_http": false}));
        let (_, errors) = problems(remote.clone(), &EgressPolicy::default());
        assert_eq!(
            errors,
            vec![
                "storage.backend.endpoint: https://s3.eu-west-1.amazonaws.com:443 is not allowed by egress.allow; add `- https://s3.eu-west-1.amazonaws.com:443` under egress.allow"
            ]
        );
        let allowed = EgressPolicy::new(vec![EgressRule::parse("*.amazonaws.com").unwrap()], false);
        assert_eq!(problems(remote.clone(), &allowed).0.unwrap().sealed, None);
        let sealed = EgressPolicy::new(Vec::new(), true);
        let (built, errors) = problems(remote, &sealed);
        assert!(errors.is_empty(), "sealed mode wins over validation: {errors:?}");
        assert_eq!(built.unwrap().sealed.map(|denied| denied.reason()), Some("sealed"));
        assert_eq!(problems(valid(), &sealed).0.unwrap().sealed, None, "loopback stays usable when sealed");
    }

    #[test]
    fn a_config_file_sets_the_backend_and_its_secret_stays_out_of_reload_reports() {
        let yaml = "egress: {sealed: true}\nstorage:\n  backend: {type: s3, endpoint: 'https://s3.example.com', bucket: chunks, access_key_id: AKIA, secret_access_key: very-secret}\n";
        let mut value = crate::config::parse_yaml(crate::config::Profile::Default.yaml(), "default").unwrap();
        crate::config::merge(&mut value, crate::config::parse_yaml(yaml, "test").unwrap());
        let config = crate::config::Config::from_value(&value).unwrap();
        let backend = config.storage.backend.clone().unwrap();
        assert_eq!(backend.sealed.map(|denied| denied.reason()), Some("sealed"), "the config starts, inert");
        let settings = config.restart_settings();
        assert!(settings["storage"].contains("s3.example.com"), "a backend change needs a restart: {settings:?}");
        assert!(!settings["storage"].contains("very-secret"), "{settings:?}");
    }

    #[test]
    fn an_environment_credential_is_read_with_the_config_and_never_printed() {
        let value = with(json!({"access_key_id": null, "access_key_id_env": "KEY_ID"}));
        let env_vars: EnvVars = [("KEY_ID", "from-env")].into_iter().collect();
        let mut found = Problems::default();
        let built = backend(&value, &EgressPolicy::default(), &env_vars, &mut found).unwrap();
        assert_eq!(built.options().access_key_id, "from-env");
        assert!(!format!("{built:?}").contains("from-env"), "{built:?}");
        let (built, errors) = problems(value, &EgressPolicy::default());
        assert!(built.is_none());
        assert_eq!(
            errors,
            [
                "storage.backend.access_key_id_env: the environment variable KEY_ID is not set; export it before starting stella"
            ]
        );
    }
}
