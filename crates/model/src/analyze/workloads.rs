//! The workloads the analyzed files declare, as Istio's Kubernetes analyzers see Pods:
//! Pods, the pods a Deployment's template makes (files hold Deployments more often than
//! the Pods they create), and the Namespaces whose labels decide sidecar injection.

use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::kube::pod::PodSpec;
use weft_api::load::LocatedResource;

/// Kubernetes' own namespaces, which Istio's injector and analyzers leave alone.
pub(super) const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// The namespace label that turns injection on (`enabled`) or off (anything else).
pub(super) const INJECTION_LABEL: &str = "istio-injection";
/// The namespace label that injects with one control-plane revision.
pub(super) const REVISION_LABEL: &str = "istio.io/rev";
/// The pod label (or annotation) that overrides the namespace's choice.
pub(super) const INJECT_OVERRIDE: &str = "sidecar.istio.io/inject";
/// The name of the injected sidecar container.
pub(super) const PROXY_CONTAINER: &str = "istio-proxy";
/// The namespace label that puts a namespace in ambient mode (`ambient`).
pub(super) const DATAPLANE_MODE_LABEL: &str = "istio.io/dataplane-mode";
/// The pod annotation the ambient CNI sets on pods whose traffic ztunnel redirects.
const AMBIENT_REDIRECTION: &str = "ambient.istio.io/redirection";

/// A Pod, or the pods of a Deployment.
pub(super) struct Workload<'r> {
    /// The Pod or Deployment, where findings point.
    pub resource: &'r LocatedResource,
    /// The Pod's or Deployment's name.
    pub name: &'r str,
    /// Its namespace.
    pub namespace: &'r str,
    /// The pods' labels.
    pub labels: &'r BTreeMap<String, String>,
    /// The pods' annotations.
    pub annotations: &'r BTreeMap<String, String>,
    /// The pods' spec.
    pub spec: &'r PodSpec,
}

impl Workload<'_> {
    /// True when an `istio-proxy` container (or native sidecar) with an image is in the pod.
    pub(super) fn has_proxy(&self) -> bool {
        self.spec
            .containers
            .iter()
            .chain(&self.spec.init_containers)
            .any(|c| c.name == PROXY_CONTAINER && c.image.as_deref().is_some_and(|i| !i.is_empty()))
    }

    /// True when the pod runs in ambient mode, without a sidecar.
    pub(super) fn ambient(&self) -> bool {
        self.annotations
            .get(AMBIENT_REDIRECTION)
            .is_some_and(|v| v == "enabled")
    }

    /// The pod's own injection choice: its `sidecar.istio.io/inject` label, else annotation.
    pub(super) fn inject_override(&self) -> Option<&str> {
        self.labels
            .get(INJECT_OVERRIDE)
            .or_else(|| self.annotations.get(INJECT_OVERRIDE))
            .map(String::as_str)
    }
}

/// Every Pod and Deployment among `resources`.
pub(super) fn workloads(resources: &[LocatedResource]) -> Vec<Workload<'_>> {
    resources
        .iter()
        .filter_map(|r| match &r.resource {
            Resource::Pod(p) => Some(Workload {
                resource: r,
                name: &p.metadata.name,
                namespace: p.metadata.namespace(),
                labels: &p.metadata.labels,
                annotations: &p.metadata.annotations,
                spec: &p.view.spec,
            }),
            Resource::Deployment(d) => Some(Workload {
                resource: r,
                name: &d.metadata.name,
                namespace: d.metadata.namespace(),
                labels: &d.view.spec.template.metadata.labels,
                annotations: &d.view.spec.template.metadata.annotations,
                spec: &d.view.spec.template.spec,
            }),
            _ => None,
        })
        .collect()
}

/// The Namespaces among the analyzed files, by name, with their labels.
pub(super) struct Namespaces<'r>(BTreeMap<&'r str, &'r BTreeMap<String, String>>);

impl<'r> Namespaces<'r> {
    pub(super) fn new(resources: &'r [LocatedResource]) -> Self {
        Namespaces(
            resources
                .iter()
                .filter_map(|r| match &r.resource {
                    Resource::Namespace(n) => Some((n.metadata.name.as_str(), &n.metadata.labels)),
                    _ => None,
                })
                .collect(),
        )
    }

    /// Whether the namespace injects sidecars (`istio-injection=enabled`, or `istio.io/rev`
    /// without a non-empty `istio-injection` label); `None` when the files do not declare it.
    pub(super) fn injects(&self, ns: &str) -> Option<bool> {
        let labels = self.0.get(ns)?;
        Some(
            match labels.get(INJECTION_LABEL).filter(|v| !v.is_empty()) {
                Some(v) => v == "enabled",
                None => labels.contains_key(REVISION_LABEL),
            },
        )
    }

    /// True when the files declare the namespace in ambient mode (and not injecting sidecars).
    pub(super) fn ambient(&self, ns: &str) -> bool {
        self.0.get(ns).is_some_and(|labels| {
            labels
                .get(DATAPLANE_MODE_LABEL)
                .is_some_and(|m| m == "ambient")
                && labels.get(INJECTION_LABEL).is_none_or(|v| v != "enabled")
                && labels.get(REVISION_LABEL).is_none_or(String::is_empty)
        })
    }

    /// True when a workload runs with a sidecar, as Istio's analyzers decide it: it has one;
    /// else its `sidecar.istio.io/inject`; else its Namespace's labels. A namespace the files
    /// do not declare counts as injected: `weft up` runs every workload beside its sidecar.
    pub(super) fn in_mesh(&self, w: &Workload<'_>) -> bool {
        if w.has_proxy() {
            return true;
        }
        if let Some(v) = w.inject_override() {
            return v == "true";
        }
        self.injects(w.namespace).unwrap_or(true)
    }
}

/// `k=v` pairs joined by commas, sorted by key: how Kubernetes prints a label selector.
pub(super) fn selector_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// True when `labels` carry every label of `selector`.
pub(super) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
