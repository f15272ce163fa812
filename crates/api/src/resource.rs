//! The resource kinds weft understands, and a typed resource of any kind.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::gateway_api::{
    self, GatewayClass, GrpcRoute, HttpRoute, ReferenceGrant, TcpRoute, TlsRoute,
};
use crate::kube::{self, KubeObject, KubeView};
use crate::meta::ObjectMeta;
use crate::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use crate::policy::RateLimit;
use crate::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use crate::telemetry::Telemetry;
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
    /// security.istio.io RequestAuthentication
    RequestAuthentication,
    /// telemetry.istio.io Telemetry
    Telemetry,
    /// gateway.networking.k8s.io HTTPRoute (the Gateway API)
    HttpRoute,
    /// gateway.networking.k8s.io GRPCRoute
    GrpcRoute,
    /// gateway.networking.k8s.io TCPRoute (experimental channel)
    TcpRoute,
    /// gateway.networking.k8s.io TLSRoute (experimental channel)
    TlsRoute,
    /// gateway.networking.k8s.io GatewayClass (cluster-scoped)
    GatewayClass,
    /// gateway.networking.k8s.io Gateway (named `Gateway`, as Istio's; told apart by group)
    KubernetesGateway,
    /// gateway.networking.k8s.io ReferenceGrant
    ReferenceGrant,
    /// policy.weft.dev RateLimit (weft's own)
    RateLimit,
    /// core/v1 Namespace (cluster-scoped)
    Namespace,
    /// core/v1 Service
    Service,
    /// core/v1 Pod
    Pod,
    /// discovery.k8s.io/v1 EndpointSlice
    EndpointSlice,
    /// apps/v1 Deployment
    Deployment,
    /// core/v1 Secret (a gateway's certificates)
    Secret,
    /// core/v1 ConfigMap (a gateway's CA bundles for client certificates)
    ConfigMap,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 25] = [
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::ServiceEntry,
        Kind::Gateway,
        Kind::Sidecar,
        Kind::WorkloadEntry,
        Kind::PeerAuthentication,
        Kind::AuthorizationPolicy,
        Kind::RequestAuthentication,
        Kind::Telemetry,
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::TcpRoute,
        Kind::TlsRoute,
        Kind::GatewayClass,
        Kind::KubernetesGateway,
        Kind::ReferenceGrant,
        Kind::RateLimit,
        Kind::Namespace,
        Kind::Service,
        Kind::Pod,
        Kind::EndpointSlice,
        Kind::Deployment,
        Kind::Secret,
        Kind::ConfigMap,
    ];

    /// Kubernetes' own kinds, which weft reads for its registry and analysis.
    pub const KUBERNETES: [Kind; 7] = [
        Kind::Namespace,
        Kind::Service,
        Kind::Pod,
        Kind::EndpointSlice,
        Kind::Deployment,
        Kind::Secret,
        Kind::ConfigMap,
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
            Kind::RequestAuthentication => "RequestAuthentication",
            Kind::Telemetry => "Telemetry",
            Kind::HttpRoute => "HTTPRoute",
            Kind::GrpcRoute => "GRPCRoute",
            Kind::TcpRoute => "TCPRoute",
            Kind::TlsRoute => "TLSRoute",
            Kind::GatewayClass => "GatewayClass",
            Kind::KubernetesGateway => "Gateway",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::RateLimit => "RateLimit",
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Deployment => "Deployment",
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
        }
    }

    /// The API group (`""` for Kubernetes' core group).
    pub fn group(self) -> &'static str {
        match self {
            Kind::PeerAuthentication | Kind::AuthorizationPolicy | Kind::RequestAuthentication => {
                "security.istio.io"
            }
            Kind::Telemetry => "telemetry.istio.io",
            Kind::HttpRoute
            | Kind::GrpcRoute
            | Kind::TcpRoute
            | Kind::TlsRoute
            | Kind::GatewayClass
            | Kind::KubernetesGateway
            | Kind::ReferenceGrant => gateway_api::GROUP,
            Kind::RateLimit => "policy.weft.dev",
            Kind::Namespace | Kind::Service | Kind::Pod | Kind::Secret | Kind::ConfigMap => "",
            Kind::EndpointSlice => "discovery.k8s.io",
            Kind::Deployment => "apps",
            _ => "networking.istio.io",
        }
    }

    /// `apiVersion` for `version`: `group/version`, or `version` alone in the core group.
    pub fn api_version(self, version: &str) -> String {
        match self.group() {
            "" => version.to_string(),
            group => format!("{group}/{version}"),
        }
    }

    /// True for Kubernetes' own kinds (see [`Kind::KUBERNETES`]).
    pub fn is_kubernetes(self) -> bool {
        Kind::KUBERNETES.contains(&self)
    }

    /// The API path of the kind's objects, in Kubernetes' layout: `/apis/<group>/<version>`
    /// (`/api/v1` for the core group), then `namespaces/<ns>/` for a namespaced kind, the
    /// plural, and the name. A namespace given for a cluster-scoped kind is not part of it.
    pub fn api_path(self, namespace: Option<&str>, name: Option<&str>) -> String {
        let version = self.api_versions()[0];
        let mut path = match self.group() {
            "" => format!("/api/{version}"),
            group => format!("/apis/{group}/{version}"),
        };
        if let Some(ns) = namespace.filter(|_| self.is_namespaced()) {
            path.push_str("/namespaces/");
            path.push_str(ns);
        }
        path.push('/');
        path.push_str(self.plural());
        if let Some(name) = name {
            path.push('/');
            path.push_str(name);
        }
        path
    }

    /// `word.group`, as Kubernetes names a resource type in messages and kubectl in its
    /// output (`virtualservices.networking.istio.io`, `deployment.apps`); the core group
    /// adds nothing (`services`).
    pub fn qualify(self, word: &str) -> String {
        match self.group() {
            "" => word.to_string(),
            group => format!("{word}.{group}"),
        }
    }

    /// False for cluster-scoped kinds (Namespace).
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::GatewayClass)
    }

    /// The versions Istio serves for the kind (security.istio.io never had v1alpha3).
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Kind::PeerAuthentication | Kind::AuthorizationPolicy | Kind::RequestAuthentication => {
                &API_VERSIONS[..2]
            }
            Kind::Telemetry => &["v1", "v1alpha1"],
            Kind::HttpRoute | Kind::GatewayClass | Kind::KubernetesGateway => &["v1", "v1beta1"],
            Kind::ReferenceGrant => &["v1beta1"],
            Kind::GrpcRoute => &["v1"],
            Kind::TcpRoute => &["v1alpha2"],
            Kind::TlsRoute => &["v1alpha2", "v1alpha3"],
            Kind::RateLimit => &["v1alpha1"],
            k if k.is_kubernetes() => &["v1"],
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
            Kind::RequestAuthentication => "requestauthentications",
            Kind::Telemetry => "telemetries",
            Kind::HttpRoute => "httproutes",
            Kind::GrpcRoute => "grpcroutes",
            Kind::TcpRoute => "tcproutes",
            Kind::TlsRoute => "tlsroutes",
            Kind::GatewayClass => "gatewayclasses",
            Kind::KubernetesGateway => "gateways",
            Kind::ReferenceGrant => "referencegrants",
            Kind::RateLimit => "ratelimits",
            Kind::Namespace => "namespaces",
            Kind::Service => "services",
            Kind::Pod => "pods",
            Kind::EndpointSlice => "endpointslices",
            Kind::Deployment => "deployments",
            Kind::Secret => "secrets",
            Kind::ConfigMap => "configmaps",
        }
    }

    /// The kind named `name` (as in `kind:`); of two kinds of one name (Istio's and the
    /// Gateway API's `Gateway`), the first (Istio's).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind named `name` in API group `group`, else the kind named `name`.
    pub fn from_name_in(name: &str, group: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == name && k.group() == group)
            .or_else(|| Kind::from_name(name))
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
    /// A RequestAuthentication.
    RequestAuthentication(Object<RequestAuthentication>),
    /// A Telemetry.
    Telemetry(Object<Telemetry>),
    /// A Gateway API HTTPRoute.
    HttpRoute(Object<HttpRoute>),
    /// A Gateway API GRPCRoute.
    GrpcRoute(Object<GrpcRoute>),
    /// A Gateway API TCPRoute.
    TcpRoute(Object<TcpRoute>),
    /// A Gateway API TLSRoute.
    TlsRoute(Object<TlsRoute>),
    /// A Gateway API GatewayClass.
    GatewayClass(Object<GatewayClass>),
    /// A Gateway API Gateway.
    KubernetesGateway(Object<gateway_api::Gateway>),
    /// A Gateway API ReferenceGrant.
    ReferenceGrant(Object<ReferenceGrant>),
    /// A RateLimit (weft's own kind).
    RateLimit(Object<RateLimit>),
    /// A Kubernetes Namespace.
    Namespace(KubeObject<kube::Namespace>),
    /// A Kubernetes Service.
    Service(KubeObject<kube::Service>),
    /// A Kubernetes Pod.
    Pod(KubeObject<kube::Pod>),
    /// A Kubernetes EndpointSlice.
    EndpointSlice(KubeObject<kube::EndpointSlice>),
    /// A Kubernetes Deployment.
    Deployment(KubeObject<kube::Deployment>),
    /// A Kubernetes Secret.
    Secret(KubeObject<kube::Secret>),
    /// A Kubernetes ConfigMap.
    ConfigMap(KubeObject<kube::ConfigMap>),
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
            Resource::RequestAuthentication($obj) => $body,
            Resource::Telemetry($obj) => $body,
            Resource::HttpRoute($obj) => $body,
            Resource::GrpcRoute($obj) => $body,
            Resource::TcpRoute($obj) => $body,
            Resource::TlsRoute($obj) => $body,
            Resource::GatewayClass($obj) => $body,
            Resource::KubernetesGateway($obj) => $body,
            Resource::ReferenceGrant($obj) => $body,
            Resource::RateLimit($obj) => $body,
            Resource::Namespace($obj) => $body,
            Resource::Service($obj) => $body,
            Resource::Pod($obj) => $body,
            Resource::EndpointSlice($obj) => $body,
            Resource::Deployment($obj) => $body,
            Resource::Secret($obj) => $body,
            Resource::ConfigMap($obj) => $body,
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
            Resource::RequestAuthentication(_) => Kind::RequestAuthentication,
            Resource::Telemetry(_) => Kind::Telemetry,
            Resource::HttpRoute(_) => Kind::HttpRoute,
            Resource::GrpcRoute(_) => Kind::GrpcRoute,
            Resource::TcpRoute(_) => Kind::TcpRoute,
            Resource::TlsRoute(_) => Kind::TlsRoute,
            Resource::GatewayClass(_) => Kind::GatewayClass,
            Resource::KubernetesGateway(_) => Kind::KubernetesGateway,
            Resource::ReferenceGrant(_) => Kind::ReferenceGrant,
            Resource::RateLimit(_) => Kind::RateLimit,
            Resource::Namespace(_) => Kind::Namespace,
            Resource::Service(_) => Kind::Service,
            Resource::Pod(_) => Kind::Pod,
            Resource::EndpointSlice(_) => Kind::EndpointSlice,
            Resource::Deployment(_) => Kind::Deployment,
            Resource::Secret(_) => Kind::Secret,
            Resource::ConfigMap(_) => Kind::ConfigMap,
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

    /// The resource's namespace, defaulted; empty for a cluster-scoped kind.
    pub fn namespace(&self) -> &str {
        if self.kind().is_namespaced() {
            self.metadata().namespace()
        } else {
            ""
        }
    }

    /// Every validation issue of this resource (metadata and spec).
    pub fn validate(&self) -> Vec<Issue> {
        let mut v = Validator::new("");
        v.field("metadata", |v| self.metadata().validate(v));
        match self {
            Resource::Namespace(o) => {
                if let Some(ns) = &o.metadata.namespace {
                    v.field("metadata", |v| {
                        v.error_at("namespace", format!("Forbidden: not allowed on this type (a Namespace is cluster-scoped; got {ns:?})"))
                    });
                }
                o.view.validate(&mut v)
            }
            Resource::Service(o) => {
                // A Service's name is a DNS label starting with a letter (RFC 1035).
                let name = &o.metadata.name;
                if !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_lowercase()) {
                    v.field("metadata", |v| {
                        v.error_at("name", format!("Invalid value: {name:?}: a DNS-1035 label must start with an alphabetic character"))
                    });
                }
                o.view.validate(&mut v)
            }
            Resource::Pod(o) => o.view.validate(&mut v),
            Resource::EndpointSlice(o) => o.view.validate(&mut v),
            Resource::Deployment(o) => o.view.validate(&mut v),
            Resource::Secret(o) => o.view.validate(&mut v),
            Resource::ConfigMap(o) => o.view.validate(&mut v),
            Resource::VirtualService(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::DestinationRule(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::ServiceEntry(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::Gateway(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::Sidecar(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::WorkloadEntry(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::PeerAuthentication(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::AuthorizationPolicy(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::RequestAuthentication(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::Telemetry(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::HttpRoute(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::GrpcRoute(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::TcpRoute(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::TlsRoute(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::GatewayClass(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::KubernetesGateway(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::ReferenceGrant(o) => v.field("spec", |v| o.spec.validate(v)),
            Resource::RateLimit(o) => v.field("spec", |v| o.spec.validate(v)),
        }
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
