//! The services the analyzed resources declare (ServiceEntries, with the endpoints of
//! their WorkloadEntries; Kubernetes Services, with their selector) and the subsets
//! DestinationRules give them, each with the namespaces it is exported to, so references
//! can be checked as a proxy would see them.

use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::load::LocatedResource;

use crate::host;

/// A host a ServiceEntry declares.
pub(super) struct Service<'r> {
    /// The host, lower-cased (may be a wildcard).
    pub host: String,
    /// The ServiceEntry's namespace.
    pub namespace: &'r str,
    /// Its `exportTo`.
    pub export_to: std::borrow::Cow<'r, [String]>,
    /// Its port numbers.
    pub ports: Vec<u32>,
    /// A ServiceEntry's endpoint label sets, when the endpoints are written down.
    pub endpoints: Option<Vec<&'r BTreeMap<String, String>>>,
    /// A Kubernetes Service's selector, when it has one.
    pub selector: Option<&'r BTreeMap<String, String>>,
}

/// Subsets a DestinationRule defines for a host.
struct Subsets<'r> {
    host: String,
    namespace: &'r str,
    export_to: &'r [String],
    names: Vec<&'r str>,
}

/// The service registry the analyzed files make up.
pub(super) struct Registry<'r> {
    services: Vec<Service<'r>>,
    subsets: Vec<Subsets<'r>>,
}

/// True when a resource of `owner_ns` with `export_to` is visible in `client_ns`.
pub(super) fn visible(export_to: &[String], owner_ns: &str, client_ns: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| match e.as_str() {
            "*" => true,
            "." => owner_ns == client_ns,
            "~" => false,
            ns => ns == client_ns,
        })
}

impl<'r> Registry<'r> {
    pub(super) fn new(resources: &'r [LocatedResource]) -> Self {
        let entries: Vec<_> = resources
            .iter()
            .filter_map(|r| match &r.resource {
                Resource::WorkloadEntry(w) => Some(w),
                _ => None,
            })
            .collect();
        let mut services = Vec::new();
        let mut subsets = Vec::new();
        for r in resources {
            match &r.resource {
                Resource::ServiceEntry(se) => {
                    let ns = se.metadata.namespace();
                    let endpoints = match &se.spec.workload_selector {
                        Some(sel) => {
                            let selected: Vec<_> = entries
                                .iter()
                                .filter(|w| w.metadata.namespace() == ns)
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
                        services.push(Service {
                            host: h.to_ascii_lowercase(),
                            namespace: ns,
                            export_to: std::borrow::Cow::Borrowed(&se.spec.export_to),
                            ports: se.spec.ports.iter().map(|p| p.number).collect(),
                            endpoints: endpoints.clone(),
                            selector: None,
                        });
                    }
                }
                Resource::Service(svc) => {
                    let ns = svc.metadata.namespace();
                    let selector = &svc.view.spec.selector;
                    let export_to = svc
                        .metadata
                        .annotations
                        .get(crate::translate::kube_services::EXPORT_TO_ANNOTATION)
                        .map(|v| {
                            v.split(',')
                                .map(|e| e.trim().to_string())
                                .filter(|e| !e.is_empty())
                                .collect()
                        })
                        .unwrap_or_default();
                    services.push(Service {
                        host: crate::translate::kube_services::host(&svc.metadata.name, ns),
                        namespace: ns,
                        export_to: std::borrow::Cow::Owned(export_to),
                        ports: svc
                            .view
                            .spec
                            .ports
                            .iter()
                            .filter_map(|p| u32::try_from(p.port).ok())
                            .collect(),
                        // Its subsets are checked against its workloads (IST0173), not endpoints.
                        endpoints: None,
                        // Without a selector the endpoints come from EndpointSlices: not checked.
                        selector: (!selector.is_empty()).then_some(selector),
                    });
                }
                Resource::DestinationRule(d) => subsets.push(Subsets {
                    host: host::resolve(&d.spec.host, d.metadata.namespace()),
                    namespace: d.metadata.namespace(),
                    export_to: &d.spec.export_to,
                    names: d.spec.subsets.iter().map(|s| s.name.as_str()).collect(),
                }),
                _ => {}
            }
        }
        Registry { services, subsets }
    }

    /// The services covering `hostname` that a proxy in `client_ns` sees.
    pub(super) fn services(
        &self,
        hostname: &str,
        client_ns: &str,
    ) -> impl Iterator<Item = &Service<'r>> {
        self.services.iter().filter(move |s| {
            host::covers(&s.host, hostname) && visible(&s.export_to, s.namespace, client_ns)
        })
    }

    /// True when some service covering `hostname` exists, visible or not.
    pub(super) fn declared_anywhere(&self, hostname: &str) -> bool {
        self.services
            .iter()
            .any(|s| host::covers(&s.host, hostname))
    }

    /// True when a service overlapping the pattern `hostname` (itself maybe a wildcard) exists in `ns` (`None`: any namespace).
    pub(super) fn overlaps(&self, pattern: &str, ns: Option<&str>) -> bool {
        self.services.iter().any(|s| {
            ns.is_none_or(|ns| s.namespace == ns)
                && (host::covers(pattern, &s.host) || host::covers(&s.host, pattern))
        })
    }

    /// True when a DestinationRule visible in `client_ns` defines `subset` for `hostname`.
    pub(super) fn has_subset(&self, hostname: &str, subset: &str, client_ns: &str) -> bool {
        self.subsets.iter().any(|s| {
            host::covers(&s.host, hostname)
                && visible(s.export_to, s.namespace, client_ns)
                && s.names.contains(&subset)
        })
    }

    /// The namespace and selector of the Kubernetes Service that is `hostname`, if any.
    pub(super) fn kube_selector(
        &self,
        hostname: &str,
    ) -> Option<(&'r str, &'r BTreeMap<String, String>)> {
        self.services
            .iter()
            .filter(|s| s.host == hostname)
            .find_map(|s| Some((s.namespace, s.selector?)))
    }

    /// The ServiceEntry endpoint label sets of `hostname`, when written down.
    pub(super) fn endpoints(&self, hostname: &str) -> Option<&[&'r BTreeMap<String, String>]> {
        self.services
            .iter()
            .find(|s| s.host == hostname)
            .and_then(|s| s.endpoints.as_deref())
    }
}
