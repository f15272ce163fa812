//! Cross-resource analysis, as `istioctl analyze` does it: problems no single
//! resource shows (a route to an undefined subset, a host nobody serves, dead rules,
//! conflicting VirtualServices, subsets that select nothing).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use weft_api::diag::{ResourceRef, Severity};
use weft_api::load::LocatedResource;
use weft_api::networking::Destination;
use weft_api::networking::virtual_service::VirtualService;
use weft_api::{Object, Resource};

use crate::host;

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
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// Resources involved, the first being the one to fix.
    pub resources: Vec<Involved>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "Error",
            Severity::Warning => "Warning",
        };
        write!(f, "{level} [{}] ", self.code)?;
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

/// The codes weft reports.
pub mod codes {
    /// A destination host, or host+subset, that nothing defines.
    pub const REFERENCED_RESOURCE_NOT_FOUND: (&str, &str) =
        ("IST0101", "ReferencedResourceNotFound");
    /// Two mesh VirtualServices for one host.
    pub const CONFLICTING_MESH_VIRTUAL_SERVICE_HOSTS: (&str, &str) =
        ("IST0109", "ConflictingMeshGatewayVirtualServiceHosts");
    /// A rule that can never match.
    pub const VIRTUAL_SERVICE_UNREACHABLE_RULE: (&str, &str) =
        ("IST0130", "VirtualServiceUnreachableRule");
    /// A subset whose labels select no endpoint of its service.
    pub const SUBSET_SELECTS_NO_ENDPOINTS: (&str, &str) = ("WEFT0001", "SubsetSelectsNoEndpoints");
    /// A DestinationRule that sends no mesh mTLS to workloads whose PeerAuthentication is STRICT.
    pub const MTLS_POLICY_CONFLICT: (&str, &str) = ("IST0113", "MTLSPolicyConflict");
}

fn involved(r: &LocatedResource, path: &str) -> Involved {
    Involved {
        resource: r.reference(),
        file: r.file.clone(),
        line: r.pos_of(path).line,
    }
}

fn finding(
    code: (&'static str, &'static str),
    severity: Severity,
    message: String,
    resources: Vec<Involved>,
) -> Finding {
    Finding {
        code: code.0,
        name: code.1,
        severity,
        message,
        resources,
    }
}

/// Service hosts declared by ServiceEntries, with the endpoint label sets when endpoints are listed.
struct Known<'r> {
    hosts: BTreeMap<String, Option<Vec<&'r BTreeMap<String, String>>>>,
    subsets: BTreeMap<String, Vec<&'r str>>,
}

impl Known<'_> {
    fn has_host(&self, hostname: &str) -> bool {
        self.hosts.keys().any(|h| host::covers(h, hostname))
    }

    fn has_subset(&self, hostname: &str, subset: &str) -> bool {
        self.subsets
            .iter()
            .any(|(h, names)| host::covers(h, hostname) && names.contains(&subset))
    }
}

fn known(resources: &[LocatedResource]) -> Known<'_> {
    let mut hosts: BTreeMap<String, Option<Vec<&BTreeMap<String, String>>>> = BTreeMap::new();
    let entries: Vec<_> = resources
        .iter()
        .filter_map(|r| {
            if let Resource::WorkloadEntry(w) = &r.resource {
                Some(w)
            } else {
                None
            }
        })
        .collect();
    let mut subsets: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for r in resources {
        match &r.resource {
            Resource::ServiceEntry(se) => {
                let labels: Option<Vec<&BTreeMap<String, String>>> =
                    match &se.spec.workload_selector {
                        Some(sel) => {
                            let selected: Vec<_> = entries
                                .iter()
                                .filter(|w| w.metadata.namespace() == se.metadata.namespace())
                                .filter(|w| {
                                    sel.labels
                                        .iter()
                                        .all(|(k, v)| w.spec.labels.get(k) == Some(v))
                                })
                                .map(|w| &w.spec.labels)
                                .collect();
                            // Workloads register at run time; with none written down there is nothing to check.
                            (!selected.is_empty()).then_some(selected)
                        }
                        None if se.spec.endpoints.is_empty() => None,
                        None => Some(se.spec.endpoints.iter().map(|e| &e.labels).collect()),
                    };
                for h in &se.spec.hosts {
                    hosts
                        .entry(h.to_ascii_lowercase())
                        .or_insert_with(|| labels.clone());
                }
            }
            Resource::DestinationRule(d) => {
                let h = host::resolve(&d.spec.host, d.metadata.namespace());
                subsets
                    .entry(h)
                    .or_default()
                    .extend(d.spec.subsets.iter().map(|s| s.name.as_str()));
            }
            _ => {}
        }
    }
    Known { hosts, subsets }
}

/// Every finding for `resources` taken together.
pub fn analyze(resources: &[LocatedResource]) -> Vec<Finding> {
    let known = known(resources);
    let mut out = Vec::new();
    let gateways: std::collections::BTreeSet<(String, String)> = resources
        .iter()
        .filter_map(|r| match &r.resource {
            Resource::Gateway(g) => {
                Some((g.metadata.namespace().to_string(), g.metadata.name.clone()))
            }
            _ => None,
        })
        .collect();
    let mut mesh_hosts: BTreeMap<String, Vec<&LocatedResource>> = BTreeMap::new();
    for r in resources {
        match &r.resource {
            Resource::VirtualService(v) => {
                destinations(r, v, &known, &mut out);
                for (i, g) in v.spec.gateways.iter().enumerate() {
                    let reference =
                        crate::translate::scope::gateway_reference(g, v.metadata.namespace());
                    if g != weft_api::networking::virtual_service::MESH_GATEWAY
                        && !gateways.contains(&reference)
                    {
                        out.push(finding(
                            codes::REFERENCED_RESOURCE_NOT_FOUND,
                            Severity::Error,
                            format!(
                                "Referenced gateway not found: \"{}/{}\" (no gateway proxy serves this VirtualService through it)",
                                reference.0, reference.1
                            ),
                            vec![involved(r, &format!("spec.gateways[{i}]"))],
                        ));
                    }
                }
                unreachable_rules(r, &v.spec, &mut out);
                if v.spec.binds_to_mesh() {
                    for h in &v.spec.hosts {
                        mesh_hosts
                            .entry(host::resolve(h, v.metadata.namespace()))
                            .or_default()
                            .push(r);
                    }
                }
            }
            Resource::DestinationRule(d) => {
                empty_subsets(r, d, &known, &mut out);
                mtls_conflicts(r, d, resources, &mut out);
            }
            _ => {}
        }
    }
    for (h, owners) in mesh_hosts.iter().filter(|(_, o)| o.len() > 1) {
        let names: Vec<String> = owners
            .iter()
            .map(|o| format!("{}/{}", o.resource.namespace(), o.resource.name()))
            .collect();
        out.push(finding(
            codes::CONFLICTING_MESH_VIRTUAL_SERVICE_HOSTS,
            Severity::Error,
            format!(
                "The VirtualServices {} associated with mesh define the same host {h}, which leads to undefined behavior; weft uses the oldest. Merge them into one.",
                names.join(", ")
            ),
            owners.iter().map(|o| involved(o, "spec.hosts")).collect(),
        ));
    }
    out
}

fn destinations(
    r: &LocatedResource,
    v: &Object<VirtualService>,
    known: &Known<'_>,
    out: &mut Vec<Finding>,
) {
    let ns = v.metadata.namespace();
    let mut check = |d: &Destination, path: String| {
        let hostname = host::resolve(&d.host, ns);
        if !known.has_host(&hostname) {
            out.push(finding(
                codes::REFERENCED_RESOURCE_NOT_FOUND,
                Severity::Error,
                format!("Referenced host not found: \"{hostname}\" (no ServiceEntry declares it; requests would fail with 503 NC)"),
                vec![involved(r, &format!("{path}.host"))],
            ));
        } else if let Some(subset) = &d.subset {
            if !known.has_subset(&hostname, subset) {
                out.push(finding(
                    codes::REFERENCED_RESOURCE_NOT_FOUND,
                    Severity::Error,
                    format!(
                        "Referenced host+subset in destinationrule not found: \"{hostname}+{subset}\" (requests would fail with 503 NC)"
                    ),
                    vec![involved(r, &format!("{path}.subset"))],
                ));
            }
        }
    };
    for (i, rule) in v.spec.http.iter().enumerate() {
        for (j, d) in rule.route.iter().enumerate() {
            check(
                &d.destination,
                format!("spec.http[{i}].route[{j}].destination"),
            );
        }
        if let Some(m) = &rule.mirror {
            check(m, format!("spec.http[{i}].mirror"));
        }
        for (j, m) in rule.mirrors.iter().enumerate() {
            check(
                &m.destination,
                format!("spec.http[{i}].mirrors[{j}].destination"),
            );
        }
    }
    for (kind, routes) in [
        (
            "tcp",
            v.spec.tcp.iter().map(|t| &t.route).collect::<Vec<_>>(),
        ),
        ("tls", v.spec.tls.iter().map(|t| &t.route).collect()),
    ] {
        for (i, route) in routes.iter().enumerate() {
            for (j, d) in route.iter().enumerate() {
                check(
                    &d.destination,
                    format!("spec.{kind}[{i}].route[{j}].destination"),
                );
            }
        }
    }
}

fn unreachable_rules(r: &LocatedResource, v: &VirtualService, out: &mut Vec<Finding>) {
    let Some(first) = v.http.iter().position(|rule| rule.is_catch_all()) else {
        return;
    };
    for i in first + 1..v.http.len() {
        out.push(finding(
            codes::VIRTUAL_SERVICE_UNREACHABLE_RULE,
            Severity::Warning,
            format!(
                "VirtualService rule #{i} not used (rule #{first} before it matches every request; only the last rule can match everything)"
            ),
            vec![involved(r, &format!("spec.http[{i}]"))],
        ));
    }
}

fn empty_subsets(
    r: &LocatedResource,
    d: &Object<weft_api::networking::DestinationRule>,
    known: &Known<'_>,
    out: &mut Vec<Finding>,
) {
    let hostname = host::resolve(&d.spec.host, d.metadata.namespace());
    let Some(Some(endpoints)) = known.hosts.get(&hostname) else {
        return;
    };
    for (i, subset) in d.spec.subsets.iter().enumerate() {
        let selected = endpoints
            .iter()
            .any(|labels| subset.labels.iter().all(|(k, v)| labels.get(k) == Some(v)));
        if !selected {
            out.push(finding(
                codes::SUBSET_SELECTS_NO_ENDPOINTS,
                Severity::Warning,
                format!(
                    "subset \"{}\" of {hostname} selects no endpoint (labels {:?}); requests routed to it would fail with 503 UH",
                    subset.name, subset.labels
                ),
                vec![involved(r, &format!("spec.subsets[{i}].labels"))],
            ));
        }
    }
}

/// A DestinationRule whose `tls` sends plaintext or non-mesh TLS (DISABLE, SIMPLE, MUTUAL)
/// to a mesh service whose workloads' PeerAuthentication is STRICT: every call would be
/// refused. The workloads are taken as the ServiceEntry's selector labels (or its
/// endpoints' labels) in its namespace.
fn mtls_conflicts(
    r: &LocatedResource,
    d: &Object<weft_api::networking::DestinationRule>,
    resources: &[LocatedResource],
    out: &mut Vec<Finding>,
) {
    use weft_api::networking::destination_rule::ClientTlsMode;
    let Some(mode) = d
        .spec
        .traffic_policy
        .as_ref()
        .and_then(|t| t.tls.as_ref())
        .map(|t| t.mode)
        .filter(|m| *m != ClientTlsMode::IstioMutual)
    else {
        return;
    };
    let hostname = host::resolve(&d.spec.host, d.metadata.namespace());
    let all: Vec<Resource> = resources.iter().map(|r| r.resource.clone()).collect();
    let peers = crate::peer_authn::PeerPolicies::new(&all);
    for entry in resources.iter().filter_map(|x| match &x.resource {
        Resource::ServiceEntry(se)
            if se
                .spec
                .hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&hostname)) =>
        {
            Some(se)
        }
        _ => None,
    }) {
        let ns = entry.metadata.namespace();
        let label_sets: Vec<BTreeMap<String, String>> = match &entry.spec.workload_selector {
            Some(sel) => vec![sel.labels.clone()],
            None => entry
                .spec
                .endpoints
                .iter()
                .map(|e| e.labels.clone())
                .collect(),
        };
        let strict = label_sets.iter().find_map(|labels| {
            let resolved = peers.resolve(ns, labels);
            (resolved.mode == crate::peer_authn::Mode::Strict)
                .then(|| resolved.policies.first().cloned().unwrap_or_default())
        });
        if let Some(policy) = strict {
            let sends = match mode {
                ClientTlsMode::Disable => "plaintext",
                _ => "TLS with its own certificates, not mesh mTLS,",
            };
            out.push(finding(
                codes::MTLS_POLICY_CONFLICT,
                Severity::Error,
                format!(
                    "DestinationRule sends {sends} to {hostname}, whose workloads require mutual TLS (PeerAuthentication {policy} is STRICT): every call would be refused. Remove spec.trafficPolicy.tls (auto mTLS) or use ISTIO_MUTUAL."
                ),
                vec![involved(r, "spec.trafficPolicy.tls.mode")],
            ));
            return;
        }
    }
}
