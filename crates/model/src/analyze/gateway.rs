//! Gateway analyzers: IST0145 ConflictingGateways (one workload selector, one port,
//! overlapping hosts) and IST0138 GatewayDuplicateCertificate (one certificate served by
//! several Gateways on the same workloads, which breaks HTTP/2 connection reuse with 404s),
//! IST0162 GatewayPortNotDefinedOnService (a server port that no Service selecting the
//! gateway's Pods or Deployments targets), and IST0161 InvalidGatewayCredential (a
//! `credentialName` with no Secret holding a valid certificate and key in the namespace of
//! the gateway's workloads). A Gateway whose selector picks no workload in the files is not
//! checked for ports: `weft up` runs gateway proxies that are not Pods; its credentials are
//! looked for in `istio-system`, where `weft up`'s ingress gateway (`istio: ingressgateway`)
//! runs, when the selector selects that one.

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

/// The namespaces a Gateway's credentials are read in: those of the workloads it selects
/// in the files; else `istio-system` when it selects `weft up`'s ingress gateway.
fn credential_namespaces<'r>(ctx: &Context<'r>, g: &Gateway) -> Vec<&'r str> {
    let mut out: Vec<&str> = workloads(ctx.resources)
        .into_iter()
        .filter(|w| selects(&g.selector, w.labels))
        .map(|w| w.namespace)
        .collect();
    out.sort();
    out.dedup();
    let ingress =
        std::collections::BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())]);
    if out.is_empty() && selects(&g.selector, &ingress) {
        out.push(INGRESS_NAMESPACE);
    }
    out
}

/// Where `weft up` runs its Istio ingress gateway.
const INGRESS_NAMESPACE: &str = "istio-system";

fn credentials(
    ctx: &Context<'_>,
    resources: &[Resource],
    r: &LocatedResource,
    g: &weft_api::Object<Gateway>,
    out: &mut Vec<Finding>,
) {
    let namespaces = credential_namespaces(ctx, &g.spec);
    for (i, s) in g.spec.servers.iter().enumerate() {
        let Some(tls) = &s.tls else { continue };
        // The modes that read no certificate of their own.
        use weft_api::networking::gateway::ServerTlsMode as Mode;
        if matches!(
            tls.mode,
            Mode::IstioMutual | Mode::Passthrough | Mode::AutoPassthrough
        ) {
            continue;
        }
        let names: Vec<&str> = tls
            .credential_name
            .as_deref()
            .filter(|c| !c.is_empty())
            .into_iter()
            .chain(tls.credential_names.iter().map(String::as_str))
            .collect();
        for name in names {
            for ns in &namespaces {
                if let Err(why) = crate::gateway::secrets::credential(resources, ns, name) {
                    out.push(finding(
                        codes::INVALID_GATEWAY_CREDENTIAL,
                        format!(
                            "The credential provided for the Gateway {} in namespace {ns} is invalid, which can cause the traffic not to work as expected: {why}.",
                            g.metadata.name
                        ),
                        vec![involved(r, &format!("spec.servers[{i}].tls"))],
                    ));
                }
            }
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
    let resources: Vec<Resource> = match gateways.is_empty() {
        true => Vec::new(),
        false => ctx.resources.iter().map(|r| r.resource.clone()).collect(),
    };
    for (i, (r, g)) in gateways.iter().enumerate() {
        ports_on_service(ctx, r, g, out);
        credentials(ctx, &resources, r, g, out);
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
        let f = run(&format!(
            "{INGRESS}{}{}",
            gateway("a", "*", 443, tls),
            tls_secret("istio-system", "cert", "tls.crt", "tls.key")
        ));
        assert_eq!(f, vec![]);
        // No gateway workload in the files: weft runs the gateway itself.
        let f = run(&gateway("a", "*", 80, ""));
        assert_eq!(f, vec![]);
    }

    /// A Secret `ns/name` holding a (syntactically) PEM certificate and key under
    /// `cert_key` and `key_key`.
    fn tls_secret(ns: &str, name: &str, cert_key: &str, key_key: &str) -> String {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let cert =
            b64("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n");
        let key =
            b64("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n");
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{{cert_key}: {cert}, {key_key}: {key}}}\n"
        )
    }

    #[test]
    fn a_credential_with_no_valid_secret_in_the_gateways_namespace_is_reported() {
        let tls = "    tls: {mode: SIMPLE, credentialName: web-cert}\n";
        let g = gateway("a", "*", 443, tls);
        // weft up's ingress (istio=ingressgateway, no Pod in the files) reads istio-system.
        let f = run(&g);
        assert_eq!(codes_of(&f), vec!["IST0161"], "{f:?}");
        assert_eq!(
            f[0].message,
            "The credential provided for the Gateway a in namespace istio-system is invalid, which can cause the traffic not to work as expected: Secret istio-system/web-cert does not exist."
        );
        // In the Gateway's own namespace it is not the gateway's.
        let f = run(&format!(
            "{g}{}",
            tls_secret("default", "web-cert", "tls.crt", "tls.key")
        ));
        assert_eq!(codes_of(&f), vec!["IST0161"], "{f:?}");
        // Istio's generic form (cert, key) is a credential too.
        let f = run(&format!(
            "{g}{}",
            tls_secret("istio-system", "web-cert", "cert", "key")
        ));
        assert_eq!(f, vec![]);
        // Wrong keys: named.
        let f = run(&format!(
            "{g}{}",
            tls_secret("istio-system", "web-cert", "tls.cert", "tls.key")
        ));
        assert_eq!(codes_of(&f), vec!["IST0161"], "{f:?}");
        assert!(
            f[0].message
                .ends_with("Secret istio-system/web-cert holds no certificate (tls.crt, or cert)."),
            "{f:?}"
        );
        // Not PEM: named.
        let bad = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: web-cert, namespace: istio-system}\nstringData: {tls.crt: hello, tls.key: world}\n";
        let f = run(&format!("{g}{bad}"));
        assert!(
            f[0].message
                .ends_with("Secret istio-system/web-cert: tls.crt holds no PEM CERTIFICATE."),
            "{f:?}"
        );
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
