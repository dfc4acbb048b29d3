//! The `resourcedetection` processor: adds to every resource what the collector can tell about where it runs.
//!
//! Detection happens once, when the stage is built from its config and a [`HostFacts`] snapshot (the
//! environment and a few files, read by the caller), so the stage itself is a cheap merge per request.
//! Detectors, with the OpenTelemetry semantic-convention keys they set:
//! - `env`: `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, percent-decoded) and `OTEL_SERVICE_NAME` (`service.name`);
//! - `system`: `host.name`, `host.id` (from `/etc/machine-id`), `host.arch`, `os.type`;
//! - `container`: `container.id` from `/proc/self/cgroup` or `/proc/self/mountinfo`;
//! - `k8s`: the downward-API variables `K8S_POD_NAME`, `K8S_POD_UID`, `K8S_NAMESPACE_NAME`, `K8S_NODE_NAME`,
//!   `K8S_CONTAINER_NAME`, `K8S_DEPLOYMENT_NAME` as `k8s.*`.
//!
//! The top-level `environment` of the config becomes `deployment.environment.name`.
mod config;
mod detect;

pub use config::{Detector, ResourceDetectionConfig};
pub use detect::{HostFacts, detect};

use stella_otlp::Batch;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};

use crate::{Dropped, Stage};

/// The built stage: the detected attributes and whether they replace what the sender set.
#[derive(Debug, Clone)]
pub struct ResourceDetection {
    id: String,
    attributes: Vec<(String, String)>,
    override_existing: bool,
}

impl ResourceDetection {
    /// A stage that adds `attributes` (detected with [`detect`]) to every resource.
    pub fn new(id: String, attributes: Vec<(String, String)>, override_existing: bool) -> Self {
        ResourceDetection { id, attributes, override_existing }
    }

    /// The attributes this stage adds.
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }
}

impl Stage for ResourceDetection {
    fn id(&self) -> &str {
        &self.id
    }

    fn process(&self, batch: &mut Batch) -> Vec<Dropped> {
        for resource in batch.request.resources_mut() {
            for (key, value) in &self.attributes {
                let string_value = || Some(AnyValue { value: Some(any_value::Value::StringValue(value.clone())) });
                match resource.attributes.iter_mut().find(|attribute| &attribute.key == key) {
                    Some(existing) if self.override_existing => existing.value = string_value(),
                    Some(_) => {}
                    None => resource.attributes.push(KeyValue {
                        key: key.clone(),
                        value: string_value(),
                        ..Default::default()
                    }),
                }
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests;
