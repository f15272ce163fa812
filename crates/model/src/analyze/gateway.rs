//! Gateway analyzers: IST0145 ConflictingGateways (one workload selector, one port,
//! overlapping hosts) and IST0138 GatewayDuplicateCertificate (one certificate served by
//! several Gateways on the same workloads, which breaks HTTP/2 connection reuse with 404s).
//! IST0104 GatewayPortNotOnWorkload and IST0162 GatewayPortNotDefinedOnService need Pods
//! and Services, which weft does not read.

use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::load::LocatedResource;
use weft_api::networking::Gateway;
use weft_api::networking::gateway::Server;

use super::{Context, Finding, codes, finding, involved};
use crate::host;

fn selector_text(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

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
