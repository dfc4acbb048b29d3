//! `docs/configuration.md` against the config parser: every documented key is accepted, and every key the
//! parser accepts is documented. The parser itself is the oracle: for each map the reference documents
//! keys of, a config with an unknown key `zz_unknown` there is validated, and the error lists the keys
//! that map accepts (serde's "expected one of ..." for every section, which all refuse unknown keys).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use stella_collector::config::Config;

const PROBE: &str = "zz_unknown";

/// The tail sampler's policy list: each entry is one of several shapes chosen by its `type`, and the
/// reference documents the keys of all of them together.
const POLICIES: &str = "processors.tail_sampling.policies[]";

/// What a probe at `parent` needs besides the unknown key so that the parser reaches it: the keys its
/// ancestors require before their own fields are read (a policy's `type`, a balancer's resolver).
fn seed(parent: &str, policy_type: Option<&str>) -> Value {
    if let Some(rest) = parent.strip_prefix(POLICIES) {
        let kind = rest.trim_start_matches('.').split(['.', '[']).next().unwrap_or_default();
        let kind = policy_type.unwrap_or(if kind.is_empty() { "always_sample" } else { kind });
        return serde_json::json!({"processors": {"tail_sampling": {"policies": [{"name": "probe", "type": kind}]}}});
    }
    if parent.starts_with("storage.backend") {
        return serde_json::json!({"storage": {"backend": {"type": "s3"}}});
    }
    if parent.starts_with("exporters.loadbalancing.") {
        return serde_json::json!({"exporters": {"loadbalancing": {
            "protocol": {"otlp": {}},
            "resolver": {"static": {"hostnames": ["backend:4317"]}},
        }}});
    }
    Value::Object(Map::new())
}

/// Every key path of the reference's tables, `<id>` replaced by the component type of its `###` heading
/// (or `traces` for pipelines).
fn documented() -> BTreeSet<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md")).unwrap();
    let mut keys = BTreeSet::new();
    let (mut section, mut kind) = (String::new(), String::new());
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading.trim().to_string();
            kind.clear();
            continue;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            kind = heading.trim().to_string();
            continue;
        }
        let Some(rest) = line.strip_prefix("| `") else { continue };
        let Some(key) = rest.split('`').next() else { continue };
        if !key.contains('.') && !key.contains('[') && key != section {
            continue;
        }
        if matches!(section.as_str(), "receivers" | "processors" | "exporters") {
            keys.insert(section.clone());
        }
        let key = match section.as_str() {
            "receivers" | "processors" | "exporters" => key.replacen("<id>", &kind, 1),
            _ => key.replace("<id>", "traces"),
        };
        keys.insert(key);
    }
    keys
}

/// The segments of a key path: `a.b[].c` -> `a`, `b[]`, `c`.
fn segments(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

/// The [`seed`] config with `{zz_unknown: 1}` added at `parent` (in a list: its first entry).
fn probe_config(parent: &str, policy_type: Option<&str>) -> Value {
    fn place(node: &mut Value, segments: &[&str]) {
        let Some((first, rest)) = segments.split_first() else {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            if let Value::Object(map) = node {
                map.insert(PROBE.to_string(), Value::from(1));
            }
            return;
        };
        let (name, list) = match first.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (*first, false),
        };
        let Value::Object(map) = node else { unreachable!("probe nodes are objects") };
        let child = map.entry(name.to_string()).or_insert(Value::Null);
        if list {
            if !matches!(child, Value::Array(entries) if !entries.is_empty()) {
                *child = Value::Array(vec![Value::Object(Map::new())]);
            }
            if let Value::Array(entries) = child {
                place(&mut entries[0], rest);
            }
        } else {
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            place(child, rest);
        }
    }
    let mut root = seed(parent, policy_type);
    if parent.is_empty() {
        place(&mut root, &[]);
    } else {
        place(&mut root, &segments(parent));
    }
    root
}

/// The keys an "unknown field" (or unknown top-level key, or unknown component type) error lists as
/// accepted.
fn accepted_from(message: &str) -> Option<BTreeSet<String>> {
    for marker in ["valid top-level keys are ", "; available: "] {
        if let Some(list) = message.split(marker).nth(1) {
            return Some(list.split(", ").map(|key| key.trim().to_string()).collect());
        }
    }
    let expected = message.split(", expected ").nth(1)?;
    let names = expected.split('`').skip(1).step_by(2).map(str::to_string).collect::<BTreeSet<_>>();
    (!names.is_empty()).then_some(names)
}

/// The keys the parser accepts at `parent`, read from its error about a `zz_unknown` key there (with
/// `policy_type` as the type of the tail-sampling policy on the way, if any).
fn accepted_at(parent: &str, policy_type: Option<&str>) -> Result<BTreeSet<String>, String> {
    let errors = match Config::from_value(&probe_config(parent, policy_type)) {
        Ok(_) => return Err(format!("{parent}: a `{PROBE}` key there was accepted; its keys cannot be checked")),
        Err(errors) => errors,
    };
    errors
        .0
        .iter()
        .filter(|error| error.message.contains(PROBE) || error.path.ends_with(PROBE))
        .find_map(|error| accepted_from(&error.message))
        .ok_or_else(|| format!("{parent}: no error lists the keys it accepts:\n    {errors}"))
}

#[test]
fn the_configuration_reference_documents_exactly_the_accepted_keys() {
    let documented = documented();
    assert!(documented.len() > 200, "the reference was read: {} keys", documented.len());
    let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in &documented {
        let (parent, name) = match key.rsplit_once('.') {
            Some((parent, name)) => (parent.to_string(), name.to_string()),
            None => (String::new(), key.trim_end_matches("[]").to_string()),
        };
        children.entry(parent).or_default().insert(name.trim_end_matches("[]").to_string());
    }
    let mut problems = Vec::new();
    for (parent, names) in &children {
        let accepted = if parent == POLICIES {
            // Every policy type's keys, and `type` itself.
            accepted_at(parent, Some(PROBE)).and_then(|types| {
                types.iter().try_fold(BTreeSet::from(["type".to_string()]), |mut keys, kind| {
                    keys.extend(accepted_at(parent, Some(kind))?);
                    Ok(keys)
                })
            })
        } else {
            accepted_at(parent, None)
        };
        let accepted = match accepted {
            Ok(accepted) => accepted,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        for missing in accepted.difference(names) {
            problems.push(format!("{parent}.{missing}: accepted but not documented"));
        }
        for unknown in names.difference(&accepted) {
            problems.push(format!("{parent}.{unknown}: documented but not accepted"));
        }
    }
    assert!(problems.is_empty(), "docs/configuration.md and the parser disagree:\n{}", problems.join("\n"));
}

/// The ```yaml blocks of a document, in order.
fn yaml_blocks(document: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{}/../../docs/{document}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let (mut blocks, mut current): (Vec<String>, Option<String>) = (Vec::new(), None);
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn the_reference_example_validates_with_the_guides_redaction_profile() {
    let dir = tempfile::tempdir().unwrap();
    let certificate = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.pem"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(certificate.status.success(), "{}", String::from_utf8_lossy(&certificate.stderr));
    let example = yaml_blocks("configuration.md").into_iter().find(|block| block.contains("environment: production"));
    let example =
        example.expect("the reference has its example").replace("/etc/stella/", &format!("{}/", dir.path().display()));
    let profile = yaml_blocks("guide.md").into_iter().find(|block| block.starts_with("# redaction-profiles/site.yaml"));
    std::fs::create_dir(dir.path().join("redaction-profiles")).unwrap();
    std::fs::write(dir.path().join("redaction-profiles/site.yaml"), profile.expect("the guide has the site profile"))
        .unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, example).unwrap();
    let loaded = stella_collector::config::load(
        stella_collector::config::Profile::Default,
        Some(&path),
        &stella_collector::config::EnvVars::default(),
    );
    let config = loaded.unwrap_or_else(|errors| panic!("the example of docs/configuration.md: {errors}"));
    assert_eq!(config.environment.as_deref(), Some("production"));
    assert!(config.processors.contains_key("redaction"), "the site profile is in force");
}
