//! Kubernetes Service analyzers: IST0118 PortNameIsNotUnderNamingConvention (a port whose
//! `appProtocol` or name prefix names no protocol Istio knows, so the proxy sniffs it) and
//! IST0150 ExternalNameServiceTypeInvalidPortName (the same, or a port named `tcp`, on an
//! `ExternalName` Service, whose TCP traffic the proxy may not forward). Services in
//! Kubernetes' system namespaces and Istio's own (labelled `istio` or `release: istio`)
//! are skipped, as Istio skips them.

use weft_api::Resource;
use weft_api::kube::IntOrString;
use weft_api::kube::service::ServicePort;

use super::workloads::SYSTEM_NAMESPACES;
use super::{Context, Finding, codes, finding, involved};

/// Ports Istio treats as TCP when nothing names their protocol (SMTP, DNS, MySQL, MongoDB).
const WELL_KNOWN_TCP_PORTS: &[i64] = &[25, 53, 3306, 27017];

/// The protocols Istio's port names and `appProtocol` may name (case-insensitive).
const PROTOCOLS: &[&str] = &[
    "tcp",
    "udp",
    "grpc",
    "grpc-web",
    "http",
    "http_proxy",
    "http2",
    "https",
    "tls",
    "mongo",
    "redis",
    "mysql",
];

/// True when Istio can tell the port's protocol without sniffing: a UDP port, a
/// Kubernetes `appProtocol` (`kubernetes.io/h2c`, `ws`, `wss`), an `appProtocol` or name
/// whose prefix before `-` is a protocol, or a well-known port.
fn protocol_declared(port: &ServicePort) -> bool {
    if port.protocol.as_deref() == Some("UDP") {
        return true;
    }
    let name = match port.app_protocol.as_deref() {
        Some("kubernetes.io/h2c" | "kubernetes.io/ws" | "kubernetes.io/wss") => return true,
        Some(app) => app,
        None => port.name.as_deref().unwrap_or(""),
    };
    if name
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("grpc-web"))
    {
        return true;
    }
    let prefix = name.split('-').next().unwrap_or(name).to_ascii_lowercase();
    PROTOCOLS.contains(&prefix.as_str()) || WELL_KNOWN_TCP_PORTS.contains(&port.port)
}

/// A target port as Kubernetes prints it; `0` when unset.
fn target_port_text(port: &ServicePort) -> String {
    match &port.target_port {
        None => "0".to_string(),
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
    }
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for r in ctx.resources {
        let Resource::Service(svc) = &r.resource else {
            continue;
        };
        let labels = &svc.metadata.labels;
        if SYSTEM_NAMESPACES.contains(&svc.metadata.namespace())
            || labels.contains_key("istio")
            || labels.get("release").is_some_and(|v| v == "istio")
        {
            continue;
        }
        let spec = &svc.view.spec;
        let external = spec.service_type() == "ExternalName";
        for (i, port) in spec.ports.iter().enumerate() {
            let name = port.name.as_deref().unwrap_or("");
            if protocol_declared(port) && !(external && name == "tcp") {
                continue;
            }
            let f = if external {
                finding(
                    codes::EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME,
                    "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched traffic for ports serving TCP protocol from being forwarded correctly".to_string(),
                    vec![involved(r, &format!("spec.ports[{i}]"))],
                )
            } else {
                finding(
                    codes::PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
                    format!(
                        "Port name {name} (port: {}, targetPort: {}) doesn't follow the naming convention of Istio port.",
                        port.port,
                        target_port_text(port)
                    ),
                    vec![involved(r, &format!("spec.ports[{i}]"))],
                )
            };
            out.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    fn service(ns: &str, ports: &str, extra: &str) -> String {
        format!(
            "---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
{extra}  ports:
{ports}"
        )
    }

    #[test]
    fn a_port_name_without_a_protocol_prefix_is_reported() {
        let f = run(&service(
            "shop",
            "  - {name: web, port: 8080, targetPort: 9080}\n  - {name: metrics, port: 9090}\n",
            "  selector: {app: web}\n",
        ));
        assert_eq!(codes_of(&f), vec!["IST0118", "IST0118"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Port name web (port: 8080, targetPort: 9080) doesn't follow the naming convention of Istio port."
        );
        assert!(
            f[1].message.contains("(port: 9090, targetPort: 0)"),
            "{f:?}"
        );
        assert_eq!(f[0].level.as_str(), "Info");
    }

    #[test]
    fn named_protocols_app_protocols_and_well_known_ports_are_clean() {
        let ports = "  - {name: http-web, port: 80}
  - {name: grpc, port: 81}
  - {name: grpc-web-ui, port: 82}
  - {name: web, port: 83, appProtocol: http}
  - {name: h2c, port: 84, appProtocol: kubernetes.io/h2c}
  - {name: dns, port: 53}
  - {name: stats, port: 85, protocol: UDP}
  - {name: tcp-db, port: 86}
";
        assert_eq!(run(&service("shop", ports, "")), vec![]);
        // Kubernetes' system namespaces and Istio's own Services are not checked.
        let bad = "  - {name: web, port: 80}\n";
        assert_eq!(run(&service("kube-system", bad, "")), vec![]);
        let istio = service("shop", bad, "").replace(
            "namespace: shop}",
            "namespace: shop, labels: {istio: ingressgateway}}",
        );
        assert_eq!(run(&istio), vec![]);
    }

    #[test]
    fn an_external_name_service_port_named_tcp_or_unnamed_is_invalid() {
        let external = "  type: ExternalName\n  externalName: db.example.com\n";
        let f = run(&service("shop", "  - {name: tcp, port: 5432}\n", external));
        assert_eq!(codes_of(&f), vec!["IST0150"], "{f:?}");
        assert!(
            f[0].message
                .starts_with("Port name for ExternalName service is invalid.")
        );
        let f = run(&service("shop", "  - {name: db, port: 5432}\n", external));
        assert_eq!(codes_of(&f), vec!["IST0150"], "{f:?}");
        let f = run(&service(
            "shop",
            "  - {name: tcp-db, port: 5432}\n",
            external,
        ));
        assert_eq!(f, vec![]);
    }
}
