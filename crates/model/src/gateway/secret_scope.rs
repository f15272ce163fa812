//! Which Secrets and ConfigMaps a gateway proxy reads: what the control plane sends it
//! ([`read_by`]).

use weft_api::gateway_api::gateway::SecretObjectReference;
use weft_api::networking::gateway::ServerTlsMode;
use weft_api::{Kind, Resource};

use super::secrets::granted;

/// The Secrets and ConfigMaps the gateway proxy `scope` reads, as (kind, namespace, name):
/// those its Istio Gateways' servers name (`credentialName(s)` and their `-cacert`
/// companions, in the proxy's namespace), and those the listeners and client certificate
/// validation of the Gateway API Gateway it serves name, in another namespace only where
/// a ReferenceGrant there allows it. What the control plane sends it, as Istio's SDS
/// sends a gateway the credentials it refers to and no others.
pub fn read_by(
    resources: &[Resource],
    scope: &crate::translate::scope::ProxyScope,
) -> Vec<(Kind, String, String)> {
    let ns = scope.namespace.as_str();
    let mut out: Vec<(Kind, String, String)> = Vec::new();
    for g in super::selecting(resources, scope) {
        for tls in g.spec.servers.iter().filter_map(|s| s.tls.as_ref()) {
            if matches!(
                tls.mode,
                ServerTlsMode::IstioMutual
                    | ServerTlsMode::Passthrough
                    | ServerTlsMode::AutoPassthrough
            ) {
                continue;
            }
            let names = tls
                .credential_name
                .iter()
                .chain(&tls.credential_names)
                .filter(|n| !n.is_empty());
            for name in names {
                out.push((Kind::Secret, ns.to_string(), name.clone()));
                out.push((Kind::Secret, ns.to_string(), format!("{name}-cacert")));
            }
        }
    }
    if let Some(g) = super::kubernetes::for_proxy(resources, scope) {
        let gateway_ns = g.metadata.namespace();
        let mut refer = |kind: Kind, r: &SecretObjectReference| {
            let at = r.namespace.as_deref().unwrap_or(gateway_ns);
            if at == gateway_ns || granted(resources, gateway_ns, at, kind.name(), &r.name) {
                out.push((kind, at.to_string(), r.name.clone()));
            }
        };
        for r in g
            .spec
            .listeners
            .iter()
            .filter_map(|l| l.tls.as_ref())
            .flat_map(|t| &t.certificate_refs)
        {
            refer(Kind::Secret, r);
        }
        if let Some(f) = g.spec.tls.as_ref().and_then(|t| t.frontend.as_ref()) {
            let validations = std::iter::once(&f.default)
                .chain(f.per_port.iter().map(|p| &p.tls))
                .filter_map(|c| c.validation.as_ref());
            for r in validations.flat_map(|v| &v.ca_certificate_refs) {
                refer(Kind::ConfigMap, r);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
