//! Cross-resource analysis, as `istioctl analyze` does it: problems no single
//! resource shows (a route to an undefined subset, a host nobody serves, dead rules,
//! conflicting VirtualServices, Sidecars or Gateways, unverified server certificates), and
//! with Kubernetes kinds among the files, Service ports, Deployments behind several
//! Services, sidecar injection, and policies or subsets that select no workload.
//!
//! Each analyzer family lives in its own module and adds [`Finding`]s with Istio's
//! message code, name and level (`pkg/config/analysis/msg/messages.yaml`); weft's own
//! checks use `WEFT` codes. [`analyze`] runs them all and drops findings a resource
//! suppresses with `galley.istio.io/analyze-suppress`.

mod annotation_values;
mod annotations;
mod application_uid;
mod authz;
mod conditions;
mod deployment;
mod deprecation;
mod destinationrule;
mod gateway;
mod gateway_selector;
mod http_route;
mod ingress;
mod injection;
mod jwt_routing;
mod references;
mod registry;
mod service;
mod serviceentry;
mod sidecar;
mod subset;
mod suppress;
mod telemetry;
mod virtualservice;
mod workloads;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use weft_api::diag::{Diagnostic, ResourceRef, Severity};
use weft_api::load::LocatedResource;

pub use suppress::{BadSuppression, Suppression};

use registry::Registry;

/// How serious a finding is, as Istio grades its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    /// Worth knowing; nothing is wrong yet.
    Info,
    /// Accepted, but probably not what the author meant.
    Warning,
    /// Traffic will not flow as written.
    Error,
}

impl Level {
    /// Istio's spelling: `Info`, `Warning`, `Error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Error => "Error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    /// Case-insensitive `info`, `warning` or `error`, as istioctl's thresholds take them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Level::Info),
            "warning" => Ok(Level::Warning),
            "error" => Ok(Level::Error),
            _ => Err(format!("unknown level {s:?}: use Info, Warning or Error")),
        }
    }
}

/// A resource involved in a finding, with where it is written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Involved {
    /// The resource.
    pub resource: ResourceRef,
    /// File.
    pub file: String,
    /// Line of the relevant field.
    pub line: usize,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Istio's message code (`IST0101`) or weft's (`WEFT...`).
    pub code: &'static str,
    /// Istio's message name.
    pub name: &'static str,
    /// Info, warning or error.
    pub level: Level,
    /// What is wrong.
    pub message: String,
    /// Resources involved, the first being the one to fix.
    pub resources: Vec<Involved>,
}

impl fmt::Display for Finding {
    /// istioctl's log line: `Error [IST0101] (VirtualService default/reviews f.yaml:3) message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] ", self.level, self.code)?;
        let places: Vec<String> = self
            .resources
            .iter()
            .map(|r| format!("{} {}:{}", r.resource, r.file, r.line))
            .collect();
        if !places.is_empty() {
            write!(f, "({}) ", places.join(", "))?;
        }
        f.write_str(&self.message)
    }
}

/// A message type: code, name and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// `IST0101` or `WEFT0001`.
    pub code: &'static str,
    /// `ReferencedResourceNotFound`.
    pub name: &'static str,
    /// The level every finding of this type has.
    pub level: Level,
}

const fn code(code: &'static str, name: &'static str, level: Level) -> Code {
    Code { code, name, level }
}

/// The message types weft reports, with Istio's codes, names and levels.
pub mod codes {
    use super::{Code, Level, code};

    /// A deprecated Istio field.
    pub const DEPRECATED: Code = code("IST0002", "Deprecated", Level::Warning);
    /// A gateway, host, host:port, host+subset, egress host or Sidecar selector that nothing defines.
    pub const REFERENCED_RESOURCE_NOT_FOUND: Code =
        code("IST0101", "ReferencedResourceNotFound", Level::Error);
    /// A Namespace with neither injection label.
    pub const NAMESPACE_NOT_INJECTED: Code = code("IST0102", "NamespaceNotInjected", Level::Info);
    /// A Pod in an injected namespace without the sidecar.
    pub const POD_MISSING_PROXY: Code = code("IST0103", "PodMissingProxy", Level::Warning);
    /// A validation error in one resource.
    pub const SCHEMA_VALIDATION_ERROR: Code =
        code("IST0106", "SchemaValidationError", Level::Error);
    /// An Istio annotation on a kind it does not apply to.
    pub const MISPLACED_ANNOTATION: Code = code("IST0107", "MisplacedAnnotation", Level::Warning);
    /// An `istio.io` annotation Istio does not know.
    pub const UNKNOWN_ANNOTATION: Code = code("IST0108", "UnknownAnnotation", Level::Warning);
    /// Two mesh VirtualServices for one host.
    pub const CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS: Code = code(
        "IST0109",
        "ConflictingMeshGatewayVirtualServiceHosts",
        Level::Error,
    );
    /// Two Sidecars selecting one workload.
    pub const CONFLICTING_SIDECAR_WORKLOAD_SELECTORS: Code = code(
        "IST0110",
        "ConflictingSidecarWorkloadSelectors",
        Level::Error,
    );
    /// Two Sidecars without a selector in one namespace.
    pub const MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS: Code = code(
        "IST0111",
        "MultipleSidecarsWithoutWorkloadSelectors",
        Level::Error,
    );
    /// A gateway route to a multi-port service without a port.
    pub const VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED: Code = code(
        "IST0112",
        "VirtualServiceDestinationPortSelectorRequired",
        Level::Error,
    );
    /// A Deployment behind Services that use one port with different protocols.
    pub const DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES: Code = code(
        "IST0116",
        "DeploymentAssociatedToMultipleServices",
        Level::Warning,
    );
    /// A Service port whose protocol neither its name nor its `appProtocol` gives.
    pub const PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION: Code =
        code("IST0118", "PortNameIsNotUnderNamingConvention", Level::Info);
    /// A Namespace with both `istio-injection` and `istio.io/rev`.
    pub const NAMESPACE_MULTIPLE_INJECTION_LABELS: Code = code(
        "IST0123",
        "NamespaceMultipleInjectionLabels",
        Level::Warning,
    );
    /// An Istio annotation with a value the injector refuses.
    pub const INVALID_ANNOTATION: Code = code("IST0125", "InvalidAnnotation", Level::Warning);
    /// A policy that selects no workload.
    pub const NO_MATCHING_WORKLOADS_FOUND: Code =
        code("IST0127", "NoMatchingWorkloadsFound", Level::Warning);
    /// Client TLS without CA certificates (whole DestinationRule).
    pub const NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL: Code = code(
        "IST0128",
        "NoServerCertificateVerificationDestinationLevel",
        Level::Warning,
    );
    /// Client TLS without CA certificates (one port).
    pub const NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL: Code = code(
        "IST0129",
        "NoServerCertificateVerificationPortLevel",
        Level::Warning,
    );
    /// A rule that can never match.
    pub const VIRTUAL_SERVICE_UNREACHABLE_RULE: Code =
        code("IST0130", "VirtualServiceUnreachableRule", Level::Warning);
    /// A match that an earlier rule already takes.
    pub const VIRTUAL_SERVICE_INEFFECTIVE_MATCH: Code =
        code("IST0131", "VirtualServiceIneffectiveMatch", Level::Info);
    /// A VirtualService host that none of its Gateways' servers accepts.
    pub const VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY: Code = code(
        "IST0132",
        "VirtualServiceHostNotFoundInGateway",
        Level::Warning,
    );
    /// A validation warning in one resource.
    pub const SCHEMA_WARNING: Code = code("IST0133", "SchemaWarning", Level::Warning);
    /// A TCP ServiceEntry without addresses.
    pub const SERVICE_ENTRY_ADDRESSES_REQUIRED: Code =
        code("IST0134", "ServiceEntryAddressesRequired", Level::Warning);
    /// A deprecated Istio annotation.
    pub const DEPRECATED_ANNOTATION: Code = code("IST0135", "DeprecatedAnnotation", Level::Info);
    /// A Deployment's target port reached through different service ports.
    pub const DEPLOYMENT_CONFLICTING_PORTS: Code =
        code("IST0137", "DeploymentConflictingPorts", Level::Warning);
    /// One certificate served by several Gateways on the same workloads.
    pub const GATEWAY_DUPLICATE_CERTIFICATE: Code =
        code("IST0138", "GatewayDuplicateCertificate", Level::Warning);
    /// A Gateway server's `credentialName` naming no Secret with a valid certificate in
    /// the gateway's namespace.
    pub const INVALID_GATEWAY_CREDENTIAL: Code =
        code("IST0161", "InvalidGatewayCredential", Level::Error);
    /// A gateway route that bypasses another VirtualService's subset split.
    pub const INGRESS_ROUTE_RULES_NOT_AFFECTED: Code =
        code("IST0140", "IngressRouteRulesNotAffected", Level::Warning);
    /// An application container running as the sidecar's user ID.
    pub const INVALID_APPLICATION_UID: Code =
        code("IST0144", "InvalidApplicationUID", Level::Warning);
    /// Gateways with one selector, one port and overlapping hosts.
    pub const CONFLICTING_GATEWAYS: Code = code("IST0145", "ConflictingGateways", Level::Error);
    /// A Deployment with the `image: auto` sidecar whose pods will not be injected.
    pub const IMAGE_AUTO_WITHOUT_INJECTION_WARNING: Code = code(
        "IST0146",
        "ImageAutoWithoutInjectionWarning",
        Level::Warning,
    );
    /// A Pod with the `image: auto` sidecar, never injected.
    pub const IMAGE_AUTO_WITHOUT_INJECTION_ERROR: Code =
        code("IST0147", "ImageAutoWithoutInjectionError", Level::Error);
    /// An ExternalName Service port named `tcp` or without a protocol.
    pub const EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME: Code = code(
        "IST0150",
        "ExternalNameServiceTypeInvalidPortName",
        Level::Warning,
    );
    /// A Gateway port that no Service of its workloads targets.
    pub const GATEWAY_PORT_NOT_DEFINED_ON_SERVICE: Code =
        code("IST0162", "GatewayPortNotDefinedOnService", Level::Warning);
    /// A policy selector that selects a Kubernetes Gateway's pods.
    pub const INEFFECTIVE_SELECTOR: Code = code("IST0166", "IneffectiveSelector", Level::Warning);
    /// Claim-based routing on a gateway no RequestAuthentication covers.
    pub const JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN: Code = code(
        "IST0149",
        "JwtClaimBasedRoutingWithoutRequestAuthN",
        Level::Error,
    );
    /// A status condition Istio's condition analyzer reports.
    pub const NEGATIVE_CONDITION_STATUS: Code =
        code("IST0171", "NegativeConditionStatus", Level::Warning);
    /// A policy that applies to nothing (a Sidecar for ambient workloads).
    pub const INEFFECTIVE_POLICY: Code = code("IST0167", "IneffectivePolicy", Level::Warning);
    /// A subset that selects none of its Kubernetes Service's workloads.
    pub const DESTINATION_RULE_SUBSET_NOT_SELECT_PODS: Code = code(
        "IST0173",
        "DestinationRuleSubsetNotSelectPods",
        Level::Error,
    );
    /// Telemetries of one namespace selecting the same workload.
    pub const CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS: Code = code(
        "IST0159",
        "ConflictingTelemetryWorkloadSelectors",
        Level::Error,
    );
    /// A Telemetry entry naming no provider where the mesh config has no default one.
    pub const INVALID_TELEMETRY_PROVIDER: Code =
        code("IST0157", "InvalidTelemetryProvider", Level::Warning);
    /// Several Telemetries without a selector in one namespace.
    pub const MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS: Code = code(
        "IST0160",
        "MultipleTelemetriesWithoutWorkloadSelectors",
        Level::Error,
    );
    /// A DestinationRule host no service declares.
    pub const UNKNOWN_DESTINATION_RULE_HOST: Code =
        code("IST0174", "UnknownDestinationRuleHost", Level::Warning);
    /// A subset whose labels select no endpoint of its service.
    pub const SUBSET_SELECTS_NO_ENDPOINTS: Code =
        code("WEFT0001", "SubsetSelectsNoEndpoints", Level::Warning);
    /// A DestinationRule that sends no mesh mTLS to workloads whose PeerAuthentication is STRICT.
    pub const MTLS_POLICY_CONFLICT: Code = code("WEFT0002", "MTLSPolicyConflict", Level::Error);
    /// A mesh VirtualService for a host an HTTPRoute attached to its Service also routes.
    pub const HTTP_ROUTE_OVERRIDES_VIRTUAL_SERVICE: Code = code(
        "WEFT0003",
        "HTTPRouteOverridesVirtualService",
        Level::Warning,
    );
    /// An HTTPRoute a Gateway API Gateway of weft's does not accept (its listeners do not
    /// admit it, no listener matches its sectionName or port, or no hostname intersects).
    pub const HTTP_ROUTE_NOT_ACCEPTED: Code =
        code("WEFT0004", "HTTPRouteNotAccepted", Level::Warning);

    /// Every message type weft reports, in code order.
    pub const ALL: &[Code] = &[
        DEPRECATED,
        REFERENCED_RESOURCE_NOT_FOUND,
        NAMESPACE_NOT_INJECTED,
        POD_MISSING_PROXY,
        SCHEMA_VALIDATION_ERROR,
        MISPLACED_ANNOTATION,
        UNKNOWN_ANNOTATION,
        CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
        CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
        MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
        VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
        DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES,
        PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
        NAMESPACE_MULTIPLE_INJECTION_LABELS,
        INVALID_ANNOTATION,
        NO_MATCHING_WORKLOADS_FOUND,
        NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
        NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
        VIRTUAL_SERVICE_UNREACHABLE_RULE,
        VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
        VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
        SCHEMA_WARNING,
        SERVICE_ENTRY_ADDRESSES_REQUIRED,
        DEPRECATED_ANNOTATION,
        DEPLOYMENT_CONFLICTING_PORTS,
        GATEWAY_DUPLICATE_CERTIFICATE,
        INVALID_GATEWAY_CREDENTIAL,
        INGRESS_ROUTE_RULES_NOT_AFFECTED,
        INVALID_APPLICATION_UID,
        CONFLICTING_GATEWAYS,
        IMAGE_AUTO_WITHOUT_INJECTION_WARNING,
        IMAGE_AUTO_WITHOUT_INJECTION_ERROR,
        EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME,
        INVALID_TELEMETRY_PROVIDER,
        CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS,
        MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
        GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
        INEFFECTIVE_SELECTOR,
        INEFFECTIVE_POLICY,
        NEGATIVE_CONDITION_STATUS,
        JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
        DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
        UNKNOWN_DESTINATION_RULE_HOST,
        SUBSET_SELECTS_NO_ENDPOINTS,
        MTLS_POLICY_CONFLICT,
        HTTP_ROUTE_OVERRIDES_VIRTUAL_SERVICE,
        HTTP_ROUTE_NOT_ACCEPTED,
    ];
}

/// The annotation with which a resource silences codes (comma-separated, `*` for all).
pub const SUPPRESS_ANNOTATION: &str = "galley.istio.io/analyze-suppress";

/// What every analyzer reads: the resources and the service registry they declare.
struct Context<'r> {
    resources: &'r [LocatedResource],
    registry: Registry<'r>,
    /// The mesh config the resources are analyzed against, when one was given.
    mesh: Option<&'r weft_api::mesh_config::MeshConfig>,
}

fn involved(r: &LocatedResource, path: &str) -> Involved {
    Involved {
        resource: r.reference(),
        file: r.file.clone(),
        line: r.pos_of(path).line,
    }
}

fn finding(code: Code, message: String, resources: Vec<Involved>) -> Finding {
    Finding {
        code: code.code,
        name: code.name,
        level: code.level,
        message,
        resources,
    }
}

/// Every finding for `resources` taken together.
pub fn analyze(resources: &[LocatedResource]) -> Vec<Finding> {
    analyze_with_mesh(resources, None)
}

/// Every finding for `resources` taken together, with the analyzers that need the mesh
/// config (IST0157) when `mesh` is given.
pub fn analyze_with_mesh(
    resources: &[LocatedResource],
    mesh: Option<&weft_api::mesh_config::MeshConfig>,
) -> Vec<Finding> {
    let ctx = Context {
        resources,
        registry: Registry::new(resources),
        mesh,
    };
    let mut out = Vec::new();
    references::check(&ctx, &mut out);
    virtualservice::check(&ctx, &mut out);
    ingress::check(&ctx, &mut out);
    destinationrule::check(&ctx, &mut out);
    gateway::check(&ctx, &mut out);
    sidecar::check(&ctx, &mut out);
    serviceentry::check(&ctx, &mut out);
    annotations::check(&ctx, &mut out);
    service::check(&ctx, &mut out);
    deployment::check(&ctx, &mut out);
    application_uid::check(&ctx, &mut out);
    injection::check(&ctx, &mut out);
    authz::check(&ctx, &mut out);
    subset::check(&ctx, &mut out);
    deprecation::check(&ctx, &mut out);
    gateway_selector::check(&ctx, &mut out);
    conditions::check(&ctx, &mut out);
    jwt_routing::check(&ctx, &mut out);
    telemetry::check(&ctx, &mut out);
    http_route::check(&ctx, &mut out);
    out.retain(|f| !suppressed_by_annotation(f, resources));
    out
}

/// True when the resource to fix carries `galley.istio.io/analyze-suppress` naming the code.
fn suppressed_by_annotation(f: &Finding, resources: &[LocatedResource]) -> bool {
    let Some(first) = f.resources.first() else {
        return false;
    };
    resources
        .iter()
        .filter(|r| r.reference() == first.resource)
        .filter_map(|r| r.resource.metadata().annotations.get(SUPPRESS_ANNOTATION))
        .any(|codes| {
            codes
                .split(',')
                .map(str::trim)
                .any(|c| c == "*" || c == f.code)
        })
}

/// Validation diagnostics about a resource as findings: errors are IST0106
/// SchemaValidationError, warnings IST0133 SchemaWarning. Diagnostics outside any
/// resource (YAML syntax, unknown kinds) are not findings and are left out.
pub fn schema_findings(diagnostics: &[Diagnostic]) -> Vec<Finding> {
    diagnostics
        .iter()
        .filter_map(|d| {
            let resource = d.resource.clone()?;
            let (code, prefix) = match d.severity {
                Severity::Error => (codes::SCHEMA_VALIDATION_ERROR, "Schema validation error"),
                Severity::Warning => (codes::SCHEMA_WARNING, "Schema validation warning"),
            };
            let detail = match &d.field {
                Some(field) => format!("{field}: {}", d.message),
                None => d.message.clone(),
            };
            Some(finding(
                code,
                format!("{prefix}: {detail}"),
                vec![Involved {
                    resource,
                    file: d.file.clone(),
                    line: d.line,
                }],
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests;
