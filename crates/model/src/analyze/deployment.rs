//! Deployment analyzers, over the Services of its namespace whose selector picks its pods:
//! IST0116 DeploymentAssociatedToMultipleServices (one port number with different
//! Kubernetes protocols, TCP and UDP, in those Services) and IST0137
//! DeploymentConflictingPorts (one target port reached through different service ports).
//! Only Deployments in the mesh are checked, and not waypoints.

use std::collections::{BTreeMap, BTreeSet};

use weft_api::Resource;
use weft_api::kube::IntOrString;
use weft_api::kube::service::ServiceSpec;

use super::workloads::{Namespaces, Workload, selects, workloads};
use super::{Context, Finding, codes, finding, involved};

/// The label Istio puts on the waypoint Deployments it manages.
const MANAGED_LABEL: &str = "gateway.istio.io/managed";
const MESH_CONTROLLER: &str = "istio.io-mesh-controller";

/// The Services (as `namespace/name`) in the Deployment's namespace whose selector picks its pods.
fn selecting<'r>(ctx: &Context<'r>, w: &Workload<'_>) -> Vec<(String, &'r ServiceSpec)> {
    ctx.resources
        .iter()
        .filter_map(|r| match &r.resource {
            Resource::Service(s)
                if s.metadata.namespace() == w.namespace
                    && !s.view.spec.selector.is_empty()
                    && selects(&s.view.spec.selector, w.labels) =>
            {
                Some((
                    format!("{}/{}", s.metadata.namespace(), s.metadata.name),
                    &s.view.spec,
                ))
            }
            _ => None,
        })
        .collect()
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let namespaces = Namespaces::new(ctx.resources);
    for w in workloads(ctx.resources) {
        let Resource::Deployment(d) = &w.resource.resource else {
            continue;
        };
        if d.metadata.labels.get(MANAGED_LABEL).map(String::as_str) == Some(MESH_CONTROLLER)
            || !namespaces.in_mesh(&w)
        {
            continue;
        }
        let services = selecting(ctx, &w);
        // port -> protocol -> services
        let mut protocols: BTreeMap<i64, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
        // target port -> port -> service
        let mut targets: BTreeMap<String, BTreeMap<i64, &str>> = BTreeMap::new();
        for (name, spec) in &services {
            for p in &spec.ports {
                let protocol = p.protocol.as_deref().unwrap_or("TCP");
                protocols
                    .entry(p.port)
                    .or_default()
                    .entry(protocol)
                    .or_default()
                    .push(name);
                let target = match &p.target_port {
                    Some(IntOrString::Int(n)) if *n != 0 => n.to_string(),
                    Some(IntOrString::String(s)) if !s.is_empty() => s.clone(),
                    _ => p.port.to_string(),
                };
                targets.entry(target).or_default().insert(p.port, name);
            }
        }
        for (port, by_protocol) in protocols.iter().filter(|(_, p)| p.len() > 1) {
            let names: BTreeSet<&str> = by_protocol.values().flatten().copied().collect();
            out.push(finding(
                codes::DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES,
                format!(
                    "This deployment {} is associated with multiple services using port {port} but different protocols: [{}]",
                    w.name,
                    names.into_iter().collect::<Vec<_>>().join(" ")
                ),
                vec![involved(w.resource, "metadata.name")],
            ));
        }
        for (target, by_port) in targets.iter().filter(|(_, p)| p.len() > 1) {
            let names: BTreeSet<&str> = by_port.values().copied().collect();
            let ports: Vec<String> = by_port.keys().map(i64::to_string).collect();
            out.push(finding(
                codes::DEPLOYMENT_CONFLICTING_PORTS,
                format!(
                    "This deployment {} is associated with multiple services [{}] using targetPort {target:?} but different ports: [{}].",
                    w.name,
                    names.into_iter().collect::<Vec<_>>().join(" "),
                    ports.join(" ")
                ),
                vec![involved(w.resource, "metadata.name")],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    const DEPLOYMENT: &str = "---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews}}
    spec:
      containers: [{name: app, image: reviews:1}]
";

    fn service(name: &str, ports: &str) -> String {
        format!(
            "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec:
  selector: {{app: reviews}}
  ports: {ports}
"
        )
    }

    #[test]
    fn one_port_with_two_protocols_across_services_is_reported() {
        let yaml = format!(
            "{DEPLOYMENT}{}{}",
            service("a", "[{name: http, port: 9080}]"),
            service("b", "[{name: udp-stats, port: 9080, protocol: UDP}]")
        );
        let f = run(&yaml);
        assert_eq!(codes_of(&f), vec!["IST0116"], "{f:?}");
        assert_eq!(
            f[0].message,
            "This deployment reviews is associated with multiple services using port 9080 but different protocols: [shop/a shop/b]"
        );
        let clean = format!(
            "{DEPLOYMENT}{}{}",
            service("a", "[{name: http, port: 9080}]"),
            service("b", "[{name: http, port: 9080}]")
        );
        assert_eq!(run(&clean), vec![]);
    }

    #[test]
    fn one_target_port_behind_two_service_ports_is_reported() {
        let yaml = format!(
            "{DEPLOYMENT}{}{}",
            service("a", "[{name: http, port: 80, targetPort: 9080}]"),
            service("b", "[{name: http, port: 8080, targetPort: 9080}]")
        );
        let f = run(&yaml);
        assert_eq!(codes_of(&f), vec!["IST0137"], "{f:?}");
        assert_eq!(
            f[0].message,
            "This deployment reviews is associated with multiple services [shop/a shop/b] using targetPort \"9080\" but different ports: [80 8080]."
        );
        let clean = format!(
            "{DEPLOYMENT}{}{}",
            service("a", "[{name: http, port: 80, targetPort: 9080}]"),
            service("b", "[{name: http, port: 80, targetPort: 9080}]")
        );
        assert_eq!(run(&clean), vec![]);
    }

    #[test]
    fn deployments_outside_the_mesh_are_not_checked() {
        let ports = (
            service("a", "[{name: http, port: 80, targetPort: 9080}]"),
            service("b", "[{name: http, port: 8080, targetPort: 9080}]"),
        );
        let opted_out = DEPLOYMENT.replace(
            "labels: {app: reviews}}",
            "labels: {app: reviews, sidecar.istio.io/inject: 'false'}}",
        );
        assert_eq!(run(&format!("{opted_out}{}{}", ports.0, ports.1)), vec![]);
        let namespace = "---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: disabled}}
";
        let f = run(&format!("{namespace}{DEPLOYMENT}{}{}", ports.0, ports.1));
        assert!(!codes_of(&f).contains(&"IST0137"), "{f:?}");
    }
}
