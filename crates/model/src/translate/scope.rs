//! Which resources a proxy sees, shared by every part of the model: the proxy's
//! [`ProxyScope`], `exportTo` visibility, label selectors, Istio's precedence among
//! resources, gateway references, and the [`SidecarScope`] a `Sidecar` resource's
//! egress hosts give a sidecar (applied by the control plane to what it pushes, and by
//! file mode to what it translates).

use std::collections::BTreeMap;

use serde::Serialize;
use weft_api::networking::sidecar::Sidecar;
use weft_api::{Object, Resource};

use crate::host;

mod egress;

pub use egress::EgressHosts;

/// The namespace whose DestinationRules apply mesh-wide, as in Istio.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// Who the configuration is built for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyScope {
    /// The proxy's namespace (short names and `exportTo` are relative to it).
    pub namespace: String,
    /// The proxy's workload labels (for `sourceLabels` and `workloadSelector`).
    pub labels: BTreeMap<String, String>,
    /// A gateway proxy (Istio's `router`): its routes come from the Gateways selecting
    /// it and the VirtualServices bound to them, not from mesh-bound VirtualServices.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gateway: bool,
}

impl Default for ProxyScope {
    fn default() -> Self {
        ProxyScope {
            namespace: weft_api::meta::DEFAULT_NAMESPACE.to_string(),
            labels: BTreeMap::new(),
            gateway: false,
        }
    }
}

/// True when a resource of `ns` with `export_to` is visible from `scope_ns`.
pub fn visible(export_to: &[String], ns: &str, scope_ns: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || (e == "." && ns == scope_ns) || (e != "~" && e == scope_ns))
}

/// True when every label of `selector` is among `labels` (an empty selector selects all).
pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Istio's precedence among resources: oldest first, then namespace and name.
pub(crate) fn age<T>(o: &Object<T>) -> (Option<String>, String, String) {
    (
        o.metadata.creation_timestamp.clone(),
        o.metadata.namespace().to_string(),
        o.metadata.name.clone(),
    )
}

/// A gateway reference in a VirtualService (`name` or `namespace/name`), resolved
/// relative to the VirtualService's namespace: (namespace, name).
pub fn gateway_reference(gateway: &str, vs_namespace: &str) -> (String, String) {
    match gateway.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (vs_namespace.to_string(), gateway.to_string()),
    }
}

/// What a sidecar may reach under the `Sidecar` resource that applies to it (Istio's
/// `SidecarScope`, egress hosts only): the VirtualServices, DestinationRules and
/// ServiceEntries with a host its `egress[].hosts` select. Without a Sidecar, and for
/// a gateway, everything visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarScope {
    /// The proxy's namespace, which `.` in an egress host stands for.
    namespace: String,
    /// The hosts of each egress listener of the Sidecar applying; `None` when none does
    /// or it has no egress listeners.
    egress: Option<Vec<EgressHosts>>,
}

impl SidecarScope {
    /// The scope of a sidecar in `namespace` with `labels`, from the Sidecars among
    /// `resources`: the first in its namespace selecting its labels, else its namespace's
    /// Sidecar without a selector, else the root namespace's (Istio's order).
    pub fn for_proxy(
        resources: &[Resource],
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> SidecarScope {
        let chosen = applying_sidecar(resources, namespace, labels);
        // A Sidecar without egress listeners exposes every host, as Istio's default `*/*` one.
        let egress = chosen.filter(|s| !s.spec.egress.is_empty()).map(|s| {
            s.spec
                .egress
                .iter()
                .map(|e| EgressHosts::new(&e.hosts))
                .collect()
        });
        SidecarScope {
            namespace: namespace.to_string(),
            egress,
        }
    }

    /// The scope of the proxy `scope` describes: a gateway's is unrestricted (Sidecar
    /// resources scope sidecars only), a sidecar's as [`SidecarScope::for_proxy`].
    pub fn of(resources: &[Resource], scope: &ProxyScope) -> SidecarScope {
        if scope.gateway {
            SidecarScope {
                namespace: scope.namespace.clone(),
                egress: None,
            }
        } else {
            SidecarScope::for_proxy(resources, &scope.namespace, &scope.labels)
        }
    }

    /// True when a host of a resource in `namespace` is one an egress listener selects
    /// (see [`EgressHosts`]): namespace `*` (any), `.` (the proxy's) or a name, dnsName
    /// `*`, `*.suffix` or exact, minus the listener's `~` entries. Always true when no
    /// Sidecar applies.
    pub fn allows(&self, namespace: &str, host: &str) -> bool {
        let Some(egress) = &self.egress else {
            return true;
        };
        egress
            .iter()
            .any(|listener| listener.selects(namespace, &self.namespace, host))
    }

    /// True when a resource in `namespace` naming `hosts` reaches the proxy: one of its
    /// hosts is allowed, or it names none (kinds egress hosts do not filter).
    pub fn admits(&self, namespace: &str, hosts: &[String]) -> bool {
        hosts.is_empty() || hosts.iter().any(|h| self.allows(namespace, h))
    }

    /// True when `resource` reaches the proxy (see [`SidecarScope::admits`]).
    pub fn keeps(&self, resource: &Resource) -> bool {
        self.admits(resource.namespace(), &egress_hosts(resource))
    }
}

/// The Sidecar resource applying to a sidecar in `namespace` with `labels`: the first in
/// its namespace selecting its labels, else its namespace's Sidecar without a selector,
/// else the root namespace's (Istio's order).
pub fn applying_sidecar<'r>(
    resources: &'r [Resource],
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Option<&'r Object<Sidecar>> {
    let sidecars: Vec<&Object<Sidecar>> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Sidecar(s) => Some(s),
            _ => None,
        })
        .collect();
    let unselective = |ns: &str| {
        sidecars
            .iter()
            .find(|s| s.metadata.namespace() == ns && s.spec.workload_selector.is_none())
            .copied()
    };
    sidecars
        .iter()
        .find(|s| {
            s.metadata.namespace() == namespace
                && s.spec
                    .workload_selector
                    .as_ref()
                    .is_some_and(|sel| selects(&sel.labels, labels))
        })
        .copied()
        .or_else(|| unselective(namespace))
        .or_else(|| unselective(ROOT_NAMESPACE))
}

/// The hosts egress hosts are matched against: a VirtualService's `hosts` and a
/// DestinationRule's `host` (short names resolved in the resource's namespace), a
/// ServiceEntry's `hosts`; none for other kinds.
pub fn egress_hosts(resource: &Resource) -> Vec<String> {
    let ns = resource.namespace();
    match resource {
        Resource::VirtualService(o) => o.spec.hosts.iter().map(|h| host::resolve(h, ns)).collect(),
        Resource::DestinationRule(o) => vec![host::resolve(&o.spec.host, ns)],
        Resource::ServiceEntry(o) => o
            .spec
            .hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(yaml: &str) -> Vec<Resource> {
        let loaded = weft_api::load_str("t.yaml", yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.resources.into_iter().map(|l| l.resource).collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sidecar(
        namespace: &str,
        name: &str,
        selector: Option<(&str, &str)>,
        hosts: &[&str],
    ) -> String {
        let selector = selector.map_or(String::new(), |(k, v)| {
            format!("  workloadSelector: {{labels: {{{k}: {v}}}}}\n")
        });
        let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{selector}  egress:\n  - hosts: [{}]\n---\n",
            hosts.join(", ")
        )
    }

    fn scope_of(yaml: &str, namespace: &str, pairs: &[(&str, &str)]) -> SidecarScope {
        SidecarScope::for_proxy(&resources(yaml), namespace, &labels(pairs))
    }

    #[test]
    fn references_resolve_in_the_virtual_service_namespace() {
        assert_eq!(
            gateway_reference("bff-gateway", "shop"),
            ("shop".to_string(), "bff-gateway".to_string())
        );
        assert_eq!(
            gateway_reference("istio-system/ingress", "shop"),
            ("istio-system".to_string(), "ingress".to_string())
        );
    }

    #[test]
    fn without_a_sidecar_everything_is_allowed() {
        let s = scope_of("", "shop", &[]);
        assert!(s.allows("other", "anything.example.com"));
    }

    #[test]
    fn egress_namespaces_follow_istio() {
        let s = scope_of(
            &sidecar(
                "shop",
                "default",
                None,
                &[
                    "./a.example.com",
                    "ops/b.example.com",
                    "*/c.example.com",
                    "~/d.example.com",
                    "~ops/c.example.com",
                ],
            ),
            "shop",
            &[],
        );
        // `.` is the proxy's namespace.
        assert!(s.allows("shop", "a.example.com"));
        assert!(!s.allows("ops", "a.example.com"));
        // A named namespace, only that one.
        assert!(s.allows("ops", "b.example.com"));
        assert!(!s.allows("shop", "b.example.com"));
        // `*` is any namespace, minus `~ops/c.example.com`.
        assert!(!s.allows("ops", "c.example.com"));
        assert!(s.allows("shop", "c.example.com"));
        // `~/host` subtracts the host everywhere (nothing imported it here anyway).
        assert!(!s.allows("shop", "d.example.com"));
        assert!(!s.allows("ops", "d.example.com"));
    }

    #[test]
    fn subtractions_apply_within_their_listener_and_keep_resources_with_another_host() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec:\n  egress:\n  - port: {number: 9000}\n    hosts: [\"ops/metrics.example.com\"]\n  - hosts: [\"*/*\", \"~ops/*\"]\n---\n";
        let s = scope_of(yaml, "shop", &[]);
        assert!(s.allows("web", "a.example.com"));
        assert!(!s.allows("ops", "a.example.com"), "subtracted by ~ops/*");
        assert!(
            s.allows("ops", "metrics.example.com"),
            "another listener imports it"
        );
        // A resource goes only when every host it names is subtracted.
        assert!(s.admits(
            "ops",
            &["a.example.com".into(), "metrics.example.com".into()]
        ));
        assert!(!s.admits("ops", &["a.example.com".into(), "b.example.com".into()]));
    }

    #[test]
    fn egress_dns_names_follow_istio() {
        let s = scope_of(
            &sidecar(
                "shop",
                "default",
                None,
                &["ops/*", "*/*.corp.example", "./exact.example.com"],
            ),
            "shop",
            &[],
        );
        // `*`: every host of that namespace.
        assert!(s.allows("ops", "anything.example.com"));
        // `*.suffix`: hosts under it, not the suffix itself.
        assert!(s.allows("shop", "db.corp.example"));
        assert!(s.allows("shop", "a.b.corp.example"));
        assert!(!s.allows("shop", "corp.example"));
        // Exact: only that host.
        assert!(s.allows("shop", "exact.example.com"));
        assert!(!s.allows("shop", "other.example.com"));
        assert!(!s.allows("shop", "sub.exact.example.com"));
    }

    #[test]
    fn the_sidecar_selecting_the_workload_wins_then_the_namespace_then_the_root() {
        let yaml = format!(
            "{}{}{}",
            sidecar(
                "shop",
                "reviews",
                Some(("app", "reviews")),
                &["./reviews.example.com"]
            ),
            sidecar("shop", "default", None, &["./shop.example.com"]),
            sidecar(ROOT_NAMESPACE, "default", None, &["./root.example.com"]),
        );
        let selected = scope_of(&yaml, "shop", &[("app", "reviews")]);
        assert!(selected.allows("shop", "reviews.example.com"));
        assert!(!selected.allows("shop", "shop.example.com"));

        let namespace_wide = scope_of(&yaml, "shop", &[("app", "ratings")]);
        assert!(namespace_wide.allows("shop", "shop.example.com"));
        assert!(!namespace_wide.allows("shop", "reviews.example.com"));

        // The root namespace's Sidecar applies elsewhere, with `.` the proxy's namespace.
        let root = scope_of(&yaml, "billing", &[]);
        assert!(root.allows("billing", "root.example.com"));
        assert!(!root.allows(ROOT_NAMESPACE, "root.example.com"));
        assert!(!root.allows("billing", "shop.example.com"));
    }

    #[test]
    fn a_sidecar_selecting_other_workloads_or_in_another_namespace_does_not_apply() {
        let yaml = format!(
            "{}{}",
            sidecar(
                "shop",
                "reviews",
                Some(("app", "reviews")),
                &["./reviews.example.com"]
            ),
            sidecar("ops", "default", None, &["./ops.example.com"]),
        );
        let s = scope_of(&yaml, "shop", &[("app", "ratings")]);
        assert!(s.allows("shop", "anything.example.com"));
    }

    #[test]
    fn a_sidecar_without_egress_listeners_exposes_every_host() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec:\n  outboundTrafficPolicy: {mode: ALLOW_ANY}\n";
        assert!(scope_of(yaml, "shop", &[]).allows("ops", "anything.example.com"));
    }

    #[test]
    fn gateways_are_not_scoped_by_sidecars() {
        let all = resources(&sidecar("shop", "default", None, &["./a.example.com"]));
        let gateway = ProxyScope {
            namespace: "shop".into(),
            gateway: true,
            ..ProxyScope::default()
        };
        assert!(SidecarScope::of(&all, &gateway).allows("shop", "b.example.com"));
        let sidecar = ProxyScope {
            gateway: false,
            ..gateway
        };
        assert!(!SidecarScope::of(&all, &sidecar).allows("shop", "b.example.com"));
    }

    #[test]
    fn resources_are_kept_by_any_of_their_hosts_and_kinds_without_hosts_always() {
        let yaml = format!(
            "{}{}",
            sidecar(
                "shop",
                "default",
                None,
                &["./reviews.shop.svc.cluster.local"]
            ),
            r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: both, namespace: shop}
spec:
  hosts: [reviews, ratings]
  http:
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings]
  http:
  - route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
"#
        );
        let all = resources(&yaml);
        let s = SidecarScope::for_proxy(&all, "shop", &BTreeMap::new());
        let kept: Vec<String> = all
            .iter()
            .filter(|r| s.keeps(r))
            .map(|r| format!("{:?}/{}", r.kind(), r.metadata().name))
            .collect();
        assert_eq!(
            kept,
            [
                "Sidecar/default",
                "VirtualService/both",
                "DestinationRule/reviews"
            ]
        );
    }
}
