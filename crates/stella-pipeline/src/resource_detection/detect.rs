use std::collections::BTreeMap;

use super::Detector;

/// What detection reads, gathered by the caller (so detection itself is pure and testable).
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// The process environment.
    pub env: BTreeMap<String, String>,
    /// Contents of `/proc/sys/kernel/hostname` (or the `HOSTNAME` fallback).
    pub hostname: Option<String>,
    /// Contents of `/etc/machine-id`.
    pub machine_id: Option<String>,
    /// Contents of `/proc/self/cgroup`.
    pub cgroup: Option<String>,
    /// Contents of `/proc/self/mountinfo`.
    pub mountinfo: Option<String>,
    /// `std::env::consts::ARCH`.
    pub arch: String,
    /// `std::env::consts::OS`.
    pub os: String,
}

impl HostFacts {
    /// Reads the facts of the running process. Missing files are simply absent facts.
    pub fn of_this_process() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok().map(|text| text.trim().to_string());
        HostFacts {
            // `vars()` panics on a variable that is not UTF-8; such a variable names no attribute anyway.
            env: std::env::vars_os()
                .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
                .collect(),
            hostname: read("/proc/sys/kernel/hostname").or_else(|| std::env::var("HOSTNAME").ok()),
            machine_id: read("/etc/machine-id"),
            cgroup: read("/proc/self/cgroup"),
            mountinfo: read("/proc/self/mountinfo"),
            arch: std::env::consts::ARCH.to_string(),
            os: std::env::consts::OS.to_string(),
        }
    }
}

/// The attributes `detectors` find in `facts`, plus `deployment.environment.name` when `environment` is set.
/// The first detector to set a key wins.
pub fn detect(detectors: &[Detector], facts: &HostFacts, environment: Option<&str>) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut add = |key: &str, value: String| {
        if !value.is_empty() && !found.iter().any(|(existing, _)| existing == key) {
            found.push((key.to_string(), value));
        }
    };
    if let Some(environment) = environment {
        add("deployment.environment.name", environment.to_string());
    }
    for detector in detectors {
        match detector {
            Detector::Env => {
                if let Some(name) = facts.env.get("OTEL_SERVICE_NAME") {
                    add("service.name", name.clone());
                }
                for (key, value) in
                    parse_resource_attributes(facts.env.get("OTEL_RESOURCE_ATTRIBUTES").map_or("", String::as_str))
                {
                    add(&key, value);
                }
            }
            Detector::System => {
                if let Some(hostname) = &facts.hostname {
                    add("host.name", hostname.clone());
                }
                if let Some(machine_id) = &facts.machine_id {
                    add("host.id", machine_id.clone());
                }
                add("host.arch", host_arch(&facts.arch).to_string());
                add("os.type", facts.os.clone());
            }
            Detector::Container => {
                let id = facts
                    .cgroup
                    .as_deref()
                    .and_then(container_id)
                    .or_else(|| facts.mountinfo.as_deref().and_then(container_id));
                if let Some(id) = id {
                    add("container.id", id);
                }
            }
            Detector::K8s => {
                for (variable, key) in K8S_DOWNWARD_API {
                    if let Some(value) = facts.env.get(*variable) {
                        add(key, value.clone());
                    }
                }
            }
        }
    }
    found
}

const K8S_DOWNWARD_API: &[(&str, &str)] = &[
    ("K8S_POD_NAME", "k8s.pod.name"),
    ("K8S_POD_UID", "k8s.pod.uid"),
    ("K8S_NAMESPACE_NAME", "k8s.namespace.name"),
    ("K8S_NODE_NAME", "k8s.node.name"),
    ("K8S_CONTAINER_NAME", "k8s.container.name"),
    ("K8S_DEPLOYMENT_NAME", "k8s.deployment.name"),
];

/// The semantic-convention `host.arch` value for a Rust target architecture.
fn host_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key1=value1,key2=value2`, values percent-encoded
/// (<https://opentelemetry.io/docs/specs/otel/resource/sdk/#specifying-resource-information-via-an-environment-variable>).
/// Malformed pairs are skipped.
fn parse_resource_attributes(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            if key.is_empty() {
                return None;
            }
            Some((key.to_string(), percent_decode(value.trim())))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let decoded = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first 64-hex-digit token in cgroup or mountinfo text: a container id in docker, containerd,
/// CRI-O and podman layouts (`/docker/<id>`, `cri-containerd-<id>.scope`, `/containers/<id>/hostname`).
fn container_id(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_hexdigit()).find(|token| token.len() == 64).map(str::to_ascii_lowercase)
}
