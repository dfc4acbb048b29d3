use std::sync::Arc;

use stella_otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use stella_otlp::proto::resource::v1::Resource;
use stella_otlp::proto::trace::v1::ResourceSpans;
use stella_otlp::{Ack, Batch, OtlpRequest};

use super::*;

const CONTAINER: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

fn facts() -> HostFacts {
    HostFacts {
        env: [
            ("OTEL_RESOURCE_ATTRIBUTES".to_string(), "team=payments,region=eu%2Dwest,broken".to_string()),
            ("OTEL_SERVICE_NAME".to_string(), "checkout".to_string()),
            ("K8S_POD_NAME".to_string(), "checkout-7d9f".to_string()),
            ("K8S_NAMESPACE_NAME".to_string(), "shop".to_string()),
        ]
        .into_iter()
        .collect(),
        hostname: Some("node-1".into()),
        machine_id: Some("abc123".into()),
        cgroup: Some(format!("0::/system.slice/cri-containerd-{CONTAINER}.scope")),
        mountinfo: None,
        arch: "x86_64".into(),
        os: "linux".into(),
    }
}

fn value(attributes: &[(String, String)], key: &str) -> Option<String> {
    attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

#[test]
fn every_detector_reads_its_source() {
    let found = detect(&[Detector::Env, Detector::System, Detector::Container, Detector::K8s], &facts(), Some("prod"));
    assert_eq!(value(&found, "deployment.environment.name").as_deref(), Some("prod"));
    assert_eq!(value(&found, "service.name").as_deref(), Some("checkout"));
    assert_eq!(value(&found, "team").as_deref(), Some("payments"));
    assert_eq!(value(&found, "region").as_deref(), Some("eu-west"));
    assert_eq!(value(&found, "host.name").as_deref(), Some("node-1"));
    assert_eq!(value(&found, "host.arch").as_deref(), Some("amd64"));
    assert_eq!(value(&found, "os.type").as_deref(), Some("linux"));
    assert_eq!(value(&found, "container.id").as_deref(), Some(CONTAINER));
    assert_eq!(value(&found, "k8s.pod.name").as_deref(), Some("checkout-7d9f"));
    assert_eq!(value(&found, "k8s.namespace.name").as_deref(), Some("shop"));
}

#[test]
fn container_id_also_comes_from_mountinfo() {
    let mut facts = facts();
    facts.cgroup = Some("0::/".into());
    facts.mountinfo = Some(format!("1 2 0:3 /var/lib/docker/containers/{CONTAINER}/hostname /etc/hostname rw"));
    let found = detect(&[Detector::Container], &facts, None);
    assert_eq!(value(&found, "container.id").as_deref(), Some(CONTAINER));
}

fn batch_with_host(host: &str) -> Batch {
    let attribute = KeyValue {
        key: "host.name".into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(host.into())) }),
        ..Default::default()
    };
    let request = OtlpRequest::Traces(ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(Resource { attributes: vec![attribute], ..Default::default() }),
                ..Default::default()
            },
            ResourceSpans::default(),
        ],
    });
    let (ack, _receiver) = Ack::new();
    Batch::new(Arc::from("default"), request, ack)
}

fn hosts(batch: &mut Batch) -> Vec<String> {
    batch
        .request
        .resources_mut()
        .into_iter()
        .map(|resource| {
            let found = resource.attributes.iter().find(|a| a.key == "host.name");
            match found.and_then(|a| a.value.as_ref()).and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(text)) => text.clone(),
                _ => String::new(),
            }
        })
        .collect()
}

#[test]
fn override_decides_whether_the_sender_or_the_collector_wins() {
    let detected = vec![("host.name".to_string(), "collector".to_string())];
    let mut batch = batch_with_host("app");
    ResourceDetection::new("resourcedetection".into(), detected.clone(), true).process(&mut batch);
    assert_eq!(hosts(&mut batch), vec!["collector", "collector"]);
    let mut batch = batch_with_host("app");
    ResourceDetection::new("resourcedetection".into(), detected, false).process(&mut batch);
    assert_eq!(hosts(&mut batch), vec!["app", "collector"]);
    batch.settle(Ok(()));
}
