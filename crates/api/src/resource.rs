//! The resource kinds weft understands, and a typed resource of any kind.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use crate::policy::RateLimit;
use crate::security::{AuthorizationPolicy, PeerAuthentication};
use crate::validate::{Issue, Validate, Validator};

/// API versions accepted for every kind; all share one schema.
pub const API_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];

/// A resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// networking.istio.io VirtualService
    VirtualService,
    /// networking.istio.io DestinationRule
    DestinationRule,
    /// networking.istio.io ServiceEntry
    ServiceEntry,
    /// networking.istio.io Gateway
    Gateway,
    /// networking.istio.io Sidecar
    Sidecar,
    /// networking.istio.io WorkloadEntry
    WorkloadEntry,
    /// security.istio.io PeerAuthentication
    PeerAuthentication,
    /// security.istio.io AuthorizationPolicy
    AuthorizationPolicy,
    /// policy.weft.dev RateLimit (weft's own)
    RateLimit,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 9] = [
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::ServiceEntry,
        Kind::Gateway,
        Kind::Sidecar,
        Kind::WorkloadEntry,
        Kind::PeerAuthentication,
        Kind::AuthorizationPolicy,
        Kind::RateLimit,
    ];

    /// The kind's name as written in `kind:`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::Gateway => "Gateway",
            Kind::Sidecar => "Sidecar",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::RateLimit => "RateLimit",
        }
    }

    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            Kind::PeerAuthentication | Kind::AuthorizationPolicy => "security.istio.io",
            Kind::RateLimit => "policy.weft.dev",
            _ => "networking.istio.io",
        }
    }

    /// The versions Istio serves for the kind (security.istio.io never had v1alpha3).
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Kind::PeerAuthentication | Kind::AuthorizationPolicy => &API_VERSIONS[..2],
            Kind::RateLimit => &["v1alpha1"],
            _ => API_VERSIONS,
        }
    }

    /// The lower-case plural used in API paths (`virtualservices`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::VirtualService => "virtualservices",
            Kind::DestinationRule => "destinationrules",
            Kind::ServiceEntry => "serviceentries",
            Kind::Gateway => "gateways",
            Kind::Sidecar => "sidecars",
            Kind::WorkloadEntry => "workloadentries",
            Kind::PeerAuthentication => "peerauthentications",
            Kind::AuthorizationPolicy => "authorizationpolicies",
            Kind::RateLimit => "ratelimits",
        }
    }

    /// The kind named `name` (as in `kind:`).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Kubernetes-style object: type fields, metadata and a spec of type `S`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<S> {
    /// `group/version`, e.g. `networking.istio.io/v1`.
    pub api_version: String,
    /// The kind's name.
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The Istio spec.
    #[serde(default)]
    pub spec: S,
    /// Status as written by a cluster; kept, never interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// A resource of any kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Resource {
    /// A VirtualService.
    VirtualService(Object<VirtualService>),
    /// A DestinationRule.
    DestinationRule(Object<DestinationRule>),
    /// A ServiceEntry.
    ServiceEntry(Object<ServiceEntry>),
    /// A Gateway.
    Gateway(Object<Gateway>),
    /// A Sidecar.
    Sidecar(Object<Sidecar>),
    /// A WorkloadEntry.
    WorkloadEntry(Object<WorkloadEntry>),
    /// A PeerAuthentication.
    PeerAuthentication(Object<PeerAuthentication>),
    /// An AuthorizationPolicy.
    AuthorizationPolicy(Object<AuthorizationPolicy>),
    /// A RateLimit (weft's own kind).
    RateLimit(Object<RateLimit>),
}

macro_rules! each_resource {
    ($self:expr, $obj:ident => $body:expr) => {
        match $self {
            Resource::VirtualService($obj) => $body,
            Resource::DestinationRule($obj) => $body,
            Resource::ServiceEntry($obj) => $body,
            Resource::Gateway($obj) => $body,
            Resource::Sidecar($obj) => $body,
            Resource::WorkloadEntry($obj) => $body,
            Resource::PeerAuthentication($obj) => $body,
            Resource::AuthorizationPolicy($obj) => $body,
            Resource::RateLimit($obj) => $body,
        }
    };
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::VirtualService(_) => Kind::VirtualService,
            Resource::DestinationRule(_) => Kind::DestinationRule,
            Resource::ServiceEntry(_) => Kind::ServiceEntry,
            Resource::Gateway(_) => Kind::Gateway,
            Resource::Sidecar(_) => Kind::Sidecar,
            Resource::WorkloadEntry(_) => Kind::WorkloadEntry,
            Resource::PeerAuthentication(_) => Kind::PeerAuthentication,
            Resource::AuthorizationPolicy(_) => Kind::AuthorizationPolicy,
            Resource::RateLimit(_) => Kind::RateLimit,
        }
    }

    /// The resource's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        each_resource!(self, o => &o.metadata)
    }

    /// The resource's metadata, for the control plane to stamp versions.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each_resource!(self, o => &mut o.metadata)
    }

    /// The resource's name.
    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// The resource's namespace, defaulted.
    pub fn namespace(&self) -> &str {
        self.metadata().namespace()
    }

    /// Every validation issue of this resource (metadata and spec).
    pub fn validate(&self) -> Vec<Issue> {
        let mut v = Validator::new("");
        v.field("metadata", |v| self.metadata().validate(v));
        v.field("spec", |v| each_resource!(self, o => o.spec.validate(v)));
        if matches!(
            self,
            Resource::ServiceEntry(_) | Resource::DestinationRule(_)
        ) {
            v.field("metadata", |v| {
                v.field("annotations", |v| {
                    v.field(crate::extensions::HEALTH_CHECK_ANNOTATION, |v| {
                        crate::extensions::validate_health_check_annotation(
                            &self.metadata().annotations,
                            v,
                        )
                    })
                })
            });
        }
        if let Resource::VirtualService(vs) = self {
            v.field("metadata", |v| {
                v.field("annotations", |v| {
                    v.field(crate::extensions::TCP_FAULT_ANNOTATION, |v| {
                        crate::extensions::validate_tcp_fault_annotation(vs, v)
                    })
                })
            });
        }
        v.into_issues()
    }
}
