//! Gateway analyzers: IST0145 ConflictingGateways (one workload selector, one port,
//! overlapping hosts) and IST0138 GatewayDuplicateCertificate (one certificate served by
//! several Gateways on the same workloads, which breaks HTTP/2 connection reuse with 404s),
//! and IST0162 GatewayPortNotDefinedOnService (a server port that no Service selecting the
//! gateway's Pods or Deployments targets). A Gateway whose selector picks no workload in the
//! files is not checked for ports: `weft up` runs gateway proxies that are not Pods.

use std::collections::BTreeSet;

use weft_api::Resource;
use weft_api::load::LocatedResource;
use weft_api::networking::Gateway;
use weft_api::networking::gateway::Server;

use weft_api::kube::IntOrString;

use super::workloads::{selector_text, selects, workloads};
use super::{Context, Finding, codes, finding, involved};
use crate::host;

fn host_name(h: &str) -> String {
    h.split_once('/').map_or(h, |(_, n)| n).to_ascii_lowercase()
}

fn overlap(a: &Server, b: &Server) -> Vec<String> {
    let mut hosts: Vec<String> = a
        .hosts
        .iter()
        .map(|h| host_name(h))
        .filter(|x| {
            b.hosts
                .iter()
                .map(|h| host_name(h))
                .any(|y| host::covers(x, &y) || host::covers(&y, x))
        })
        .collect();
    hosts.dedup();
    hosts
}

/// The certificate a server presents: its credential name, or its certificate file.
fn certificate(s: &Server) -> Option<&str> {
    let tls = s.tls.as_ref()?;
    tls.credential_name
        .as_deref()
        .or(tls.server_certificate.as_deref())
}

/// The TCP ports the Services selecting the gateway's workloads send to (their target
/// port, or their port when the target is unset or named); `None` when no workload in the
/// files carries the gateway's labels.
fn service_target_ports(ctx: &Context<'_>, g: &Gateway) -> Option<BTreeSet<i64>> {
    let pods: Vec<_> = workloads(ctx.resources)
        .into_iter()
        .filter(|w| selects(&g.selector, w.labels))
        .collect();
    if pods.is_empty() {
        return None;
    }
    let mut ports = BTreeSet::new();
    for pod in &pods {
        for r in ctx.resources {
            let Resource::Service(s) = &r.resource else {
                continue;
            };
            let spec = &s.view.spec;
            if s.metadata.namespace() != pod.namespace
                || spec.selector.is_empty()
                || !selects(&spec.selector, pod.labels)
            {
                continue;
            }
            for p in spec
                .ports
                .iter()
                .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            {
                ports.insert(match p.target_port {
                    Some(IntOrString::Int(n)) if n != 0 => n,
                    _ => p.port,
                });
            }
        }
    }
    Some(ports)
}

fn ports_on_service(
    ctx: &Context<'_>,
    r: &LocatedResource,
    g: &weft_api::Object<Gateway>,
    out: &mut Vec<Finding>,
) {
    let Some(ports) = service_target_ports(ctx, &g.spec) else {
        return;
    };
    let path = match g.spec.selector.keys().next() {
        Some(key) => format!("spec.selector.{key}"),
        None => "spec".to_string(),
    };
    for port in g.spec.servers.iter().filter_map(|s| s.port.as_ref()) {
        if !ports.contains(&i64::from(port.number)) {
            out.push(finding(
                codes::GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
                format!(
                    "The gateway is listening on a target port (port {}) that is not defined in the Service associated with its workload instances (Pod selector {}). If you need to access the gateway port through the gateway Service, it will not be available.",
                    port.number,
                    selector_text(&g.spec.selector)
                ),
                vec![involved(r, &path)],
            ));
        }
    }
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let gateways: Vec<(&LocatedResource, &weft_api::Object<Gateway>)> = ctx
        .resources
        .iter()
        .filter_map(|r| match &r.resource {
            Resource::Gateway(g) => Some((r, g)),
            _ => None,
        })
        .collect();
    for (i, (r, g)) in gateways.iter().enumerate() {
        ports_on_service(ctx, r, g, out);
        let mut conflicts = Vec::new();
        let mut shared_cert = Vec::new();
        for (j, (_, other)) in gateways.iter().enumerate() {
            if i == j || other.spec.selector != g.spec.selector {
                continue;
            }
            let other_name = format!("{}/{}", other.metadata.namespace(), other.metadata.name);
            for (si, s) in g.spec.servers.iter().enumerate() {
                for o in &other.spec.servers {
                    let (Some(p), Some(q)) = (&s.port, &o.port) else {
                        continue;
                    };
                    if p.number == q.number {
                        let hosts = overlap(s, o);
                        if !hosts.is_empty() {
                            conflicts.push((si, other_name.clone(), p.number, hosts));
                        }
                    }
                    if let (Some(c), Some(d)) = (certificate(s), certificate(o)) {
                        if c == d && !shared_cert.contains(&other_name) {
                            shared_cert.push(other_name.clone());
                        }
                    }
                }
            }
        }
        let name = format!("{}/{}", g.metadata.namespace(), g.metadata.name);
        for (si, other, port, hosts) in conflicts {
            out.push(finding(
                codes::CONFLICTING_GATEWAYS,
                format!(
                    "Conflict with gateways {other} (workload selector {}, port {port}, hosts {}).",
                    selector_text(&g.spec.selector),
                    hosts.join(",")
                ),
                vec![involved(r, &format!("spec.servers[{si}]"))],
            ));
        }
        if !shared_cert.is_empty() {
            let mut all = vec![name];
            all.extend(shared_cert);
            out.push(finding(
                codes::GATEWAY_DUPLICATE_CERTIFICATE,
                format!(
                    "Duplicate certificate in multiple gateways {all:?} may cause 404s if clients re-use HTTP2 connections."
                ),
                vec![involved(r, "spec.servers")],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    fn gateway(name: &str, host: &str, port: u32, tls: &str) -> String {
        format!(
            "---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: p, protocol: {}}}
    hosts: ['{host}']
{tls}",
            if tls.is_empty() { "HTTP" } else { "HTTPS" }
        )
    }

    #[test]
    fn two_gateways_with_one_selector_port_and_host_conflict() {
        let a = gateway("a", "shop.example.com", 80, "");
        let f = run(&format!("{a}{}", gateway("b", "*.example.com", 80, "")));
        assert_eq!(codes_of(&f), vec!["IST0145", "IST0145"], "{f:?}");
        assert!(f[0].message.starts_with("Conflict with gateways default/b (workload selector istio=ingressgateway, port 80, hosts shop.example.com)"), "{f:?}");
        let f = run(&format!("{a}{}", gateway("b", "api.example.com", 80, "")));
        assert_eq!(f, vec![]);
        let f = run(&format!(
            "{a}{}",
            gateway("b", "shop.example.com", 8080, "")
        ));
        assert_eq!(f, vec![]);
    }

    const INGRESS: &str = "---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingressgateway, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  template:
    metadata: {labels: {istio: ingressgateway}}
    spec: {containers: [{name: istio-proxy, image: proxyv2}]}
---
apiVersion: v1
kind: Service
metadata: {name: ingressgateway, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  selector: {istio: ingressgateway}
  ports: [{name: http2, port: 80, targetPort: 8080}, {name: https, port: 443}]
";

    #[test]
    fn a_gateway_port_no_service_targets_is_reported() {
        let f = run(&format!("{INGRESS}{}", gateway("a", "*", 80, "")));
        assert_eq!(codes_of(&f), vec!["IST0162"], "{f:?}");
        assert_eq!(
            f[0].message,
            "The gateway is listening on a target port (port 80) that is not defined in the Service associated with its workload instances (Pod selector istio=ingressgateway). If you need to access the gateway port through the gateway Service, it will not be available."
        );
        let f = run(&format!("{INGRESS}{}", gateway("a", "*", 8080, "")));
        assert_eq!(f, vec![]);
        let tls = "    tls: {mode: SIMPLE, credentialName: cert}\n";
        let f = run(&format!("{INGRESS}{}", gateway("a", "*", 443, tls)));
        assert_eq!(f, vec![]);
        // No gateway workload in the files: weft runs the gateway itself.
        let f = run(&gateway("a", "*", 80, ""));
        assert_eq!(f, vec![]);
    }

    #[test]
    fn one_certificate_in_two_gateways_is_reported() {
        let tls = |cred: &str| format!("    tls: {{mode: SIMPLE, credentialName: {cred}}}\n");
        let a = gateway("a", "a.example.com", 443, &tls("shared"));
        let f = run(&format!(
            "{a}{}",
            gateway("b", "b.example.com", 443, &tls("shared"))
        ));
        assert!(codes_of(&f).contains(&"IST0138"), "{f:?}");
        let f = run(&format!(
            "{a}{}",
            gateway("b", "b.example.com", 443, &tls("own"))
        ));
        assert!(!codes_of(&f).contains(&"IST0138"), "{f:?}");
    }
}
