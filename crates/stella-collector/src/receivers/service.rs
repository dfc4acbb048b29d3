use std::sync::Arc;

use stella_otlp::validate::{self, Rejection};
use stella_otlp::{Ack, AckError, Batch, OtlpRequest, Signal};

use super::{OverQuota, Quotas, ReceiverMetrics};
use crate::auth::{AuthError, Scope, TokenStore};
use crate::server::PeerIdentity;
use crate::topology::TopologyHandle;

/// The transport a request came over (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a protobuf body.
    HttpProtobuf,
    /// OTLP/HTTP with a JSON body.
    HttpJson,
}

impl Protocol {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http_protobuf",
            Protocol::HttpJson => "http_json",
        }
    }
}

/// Why a whole request was refused (nothing of it was accepted; the client may retry where it says so).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No pipeline takes this signal from this receiver.
    #[error("no pipeline takes {signal} from receiver {receiver}; add one under service.pipelines")]
    NoPipeline {
        /// The signal sent.
        signal: Signal,
        /// The receiver's id.
        receiver: String,
    },
    /// The collector is stopping.
    #[error("the collector is shutting down; retry against another instance or later")]
    ShuttingDown,
    /// A sink did not take the data; the client should retry.
    #[error("not stored: {0}")]
    NotDelivered(#[source] AckError),
    /// The credential is missing, invalid, or lacks the `ingest` scope.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// The tenant is over its ingest quota; the client retries later.
    #[error(transparent)]
    OverQuota(#[from] OverQuota),
    /// The credential names a tenant the config does not declare: its data would have nowhere to go.
    #[error(
        "tenant {tenant:?} is not declared under tenants: in the config; declare it (and reload) or use a token of a declared tenant"
    )]
    UndeclaredTenant {
        /// The tenant the credential named.
        tenant: String,
    },
}

impl Refusal {
    /// A stable code (also the `reason` metric label).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoPipeline { .. } => "no_pipeline",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::NotDelivered(_) => "not_delivered",
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::OverQuota(_) => "quota",
            Refusal::UndeclaredTenant { .. } => "undeclared_tenant",
        }
    }

    /// Whether the client should retry the same request.
    pub fn retryable(&self) -> bool {
        !matches!(self, Refusal::NoPipeline { .. } | Refusal::Unauthorized(_) | Refusal::UndeclaredTenant { .. })
    }
}

/// The one OTLP export service behind both transports: validate, route to every pipeline that takes the
/// signal from this receiver, and answer once every sink has taken the items.
#[derive(Clone)]
pub struct OtlpService {
    receiver_id: Arc<str>,
    default_tenant: Arc<str>,
    topology: TopologyHandle,
    metrics: ReceiverMetrics,
    tokens: Option<Arc<TokenStore>>,
    quotas: Arc<Quotas>,
    certificate_tenants: Arc<Vec<(String, String)>>,
}

impl OtlpService {
    /// The service of receiver `receiver_id`, routing through `topology`; with `tokens`, every request needs
    /// a bearer token with the `ingest` scope and its tenant is the token's; `quotas` limit tenants.
    pub fn new(
        receiver_id: &str,
        topology: TopologyHandle,
        metrics: ReceiverMetrics,
        tokens: Option<Arc<TokenStore>>,
        quotas: Arc<Quotas>,
        certificate_tenants: Arc<Vec<(String, String)>>,
    ) -> Self {
        OtlpService {
            receiver_id: Arc::from(receiver_id),
            default_tenant: Arc::from("default"),
            topology,
            metrics,
            tokens,
            quotas,
            certificate_tenants,
        }
    }

    /// The tenant a request acts for: from its bearer token when it sends one, else from its verified
    /// client certificate through `auth.client_certificates`, else `default` while auth is off.
    /// Checked before the body is read.
    pub fn authorize(&self, authorization: Option<&str>, peer: Option<&PeerIdentity>) -> Result<Arc<str>, Refusal> {
        let tenant = self.credential_tenant(authorization, peer)?;
        // Every tenant with data has consumers: data of a tenant the config does not declare is refused
        // here, before anything is acknowledged, rather than kept in a log nobody reads.
        let declared = self.topology.current().is_none_or(|topology| topology.declares(&tenant));
        if !declared {
            return Err(Refusal::UndeclaredTenant { tenant: tenant.to_string() });
        }
        Ok(tenant)
    }

    fn credential_tenant(&self, authorization: Option<&str>, peer: Option<&PeerIdentity>) -> Result<Arc<str>, Refusal> {
        if let (Some(tokens), Some(_)) = (&self.tokens, authorization) {
            return Ok(Arc::from(tokens.authorize(authorization, Scope::Ingest)?.tenant));
        }
        let mapped = peer.and_then(|peer| {
            self.certificate_tenants.iter().find(|(name, _)| peer.names.iter().any(|peer_name| peer_name == name))
        });
        match (mapped, &self.tokens) {
            (Some((_, tenant)), _) => Ok(Arc::from(tenant.as_str())),
            (None, None) => Ok(Arc::clone(&self.default_tenant)),
            (None, Some(_)) => Err(Refusal::Unauthorized(AuthError::Missing)),
        }
    }

    /// The receiver's meta-metrics.
    pub fn metrics(&self) -> &ReceiverMetrics {
        &self.metrics
    }

    /// The receiver's id.
    pub fn receiver_id(&self) -> &str {
        &self.receiver_id
    }

    /// Exports one decoded request. `Ok` carries what was rejected item by item (partial success);
    /// the rest is in every sink when this returns.
    pub async fn export(
        &self,
        protocol: Protocol,
        tenant: Arc<str>,
        mut request: OtlpRequest,
    ) -> Result<Rejection, Refusal> {
        let signal = request.signal();
        let receiver = self.receiver_id.as_ref();
        let rejection = validate::remove_invalid(&mut request);
        if rejection.count > 0 {
            let count = usize::try_from(rejection.count).unwrap_or(usize::MAX);
            self.metrics.refused(receiver, signal, protocol, "invalid", count);
        }
        let items = request.item_count();
        if items == 0 {
            return Ok(rejection);
        }
        strip_claimed_tenant(&mut request, &tenant);
        let refuse = |refusal: Refusal| {
            self.metrics.refused(receiver, signal, protocol, refusal.code(), items);
            Err(refusal)
        };
        if self.quotas.limits(&tenant)
            && let Err(over) = self.quotas.take(&tenant, items, request.encoded_len())
        {
            self.metrics.over_quota(&tenant, over.kind);
            return refuse(Refusal::OverQuota(over));
        }
        let Some(topology) = self.topology.current() else {
            return refuse(Refusal::ShuttingDown);
        };
        let pipelines = topology.pipelines_for(receiver, signal);
        let Some((last, others)) = pipelines.split_last() else {
            return refuse(Refusal::NoPipeline { signal, receiver: receiver.to_string() });
        };
        let (ack, answer) = Ack::new();
        for pipeline in others {
            pipeline.submit(Batch::new(Arc::clone(&tenant), request.clone(), ack.clone())).await;
        }
        last.submit(Batch::new(tenant, request, ack)).await;
        drop(topology);
        match answer.wait().await {
            Ok(()) => {
                self.metrics.accepted(receiver, signal, protocol, items);
                Ok(rejection)
            }
            Err(error) => refuse(Refusal::NotDelivered(error)),
        }
    }
}

/// The resource attribute a client may use to claim a tenant. The tenant comes from the credential only:
/// the claim is removed, and kept as `stella.claimed_tenant` when it names another tenant.
pub const TENANT_ATTRIBUTE: &str = "stella.tenant";
/// Where a differing claim is kept.
pub const CLAIMED_TENANT_ATTRIBUTE: &str = "stella.claimed_tenant";

fn strip_claimed_tenant(request: &mut OtlpRequest, tenant: &str) {
    for resource in request.present_resources_mut() {
        let Some(position) = resource.attributes.iter().position(|attribute| attribute.key == TENANT_ATTRIBUTE) else {
            continue;
        };
        let mut claim = resource.attributes.remove(position);
        let claimed = match claim.value.as_ref().and_then(|value| value.value.as_ref()) {
            Some(stella_otlp::proto::common::v1::any_value::Value::StringValue(text)) => text.as_str() != tenant,
            _ => true,
        };
        if claimed {
            claim.key = CLAIMED_TENANT_ATTRIBUTE.to_string();
            resource.attributes.push(claim);
        }
    }
}

#[cfg(test)]
mod tests {
    use stella_otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
    use stella_otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
    use stella_otlp::proto::logs::v1::ResourceLogs;
    use stella_otlp::proto::resource::v1::Resource;

    use super::*;

    fn claiming(tenant: &str) -> OtlpRequest {
        let claim = KeyValue {
            key: TENANT_ATTRIBUTE.into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(tenant.into())) }),
            ..Default::default()
        };
        OtlpRequest::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource { attributes: vec![claim], ..Default::default() }),
                ..Default::default()
            }],
        })
    }

    fn keys(request: &mut OtlpRequest) -> Vec<String> {
        request.resources_mut().iter().flat_map(|resource| resource.attributes.iter().map(|a| a.key.clone())).collect()
    }

    #[test]
    fn a_claimed_tenant_is_never_trusted_and_kept_only_when_it_differs() {
        let mut other = claiming("beta");
        strip_claimed_tenant(&mut other, "acme");
        assert_eq!(keys(&mut other), vec![CLAIMED_TENANT_ATTRIBUTE]);
        let mut same = claiming("acme");
        strip_claimed_tenant(&mut same, "acme");
        assert!(keys(&mut same).is_empty());
    }
}
