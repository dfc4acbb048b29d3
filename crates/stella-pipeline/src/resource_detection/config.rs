use serde::Deserialize;

/// One source of resource attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detector {
    /// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`.
    Env,
    /// Host name, machine id, architecture, OS type.
    System,
    /// Container id from the cgroup files.
    Container,
    /// Kubernetes downward-API environment variables.
    K8s,
}

/// `processors.resourcedetection`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDetectionConfig {
    /// Detectors to run, in order; a later detector does not replace a key an earlier one set.
    /// Default `[env, system]`.
    #[serde(default = "default_detectors")]
    pub detectors: Vec<Detector>,
    /// Whether detected attributes replace attributes the sender already set. Default `true`, as upstream.
    #[serde(default = "default_override", rename = "override")]
    pub override_existing: bool,
}

fn default_detectors() -> Vec<Detector> {
    vec![Detector::Env, Detector::System]
}

fn default_override() -> bool {
    true
}

impl Default for ResourceDetectionConfig {
    fn default() -> Self {
        ResourceDetectionConfig { detectors: default_detectors(), override_existing: default_override() }
    }
}
