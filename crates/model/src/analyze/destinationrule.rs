//! DestinationRule analyzers: IST0128 and IST0129 NoServerCertificateVerification
//! (client TLS that does not verify the server, for the whole rule or one port), and
//! weft's WEFT0001 SubsetSelectsNoEndpoints and WEFT0002 MTLSPolicyConflict.

use std::collections::BTreeMap;

use weft_api::load::LocatedResource;
use weft_api::networking::DestinationRule;
use weft_api::networking::destination_rule::{ClientTlsMode, ClientTlsSettings};
use weft_api::{Object, Resource};

use super::{Context, Finding, codes, finding, involved};
use crate::host;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for r in ctx.resources {
        if let Resource::DestinationRule(d) = &r.resource {
            server_verification(r, d, out);
            empty_subsets(ctx, r, d, out);
            mtls_conflicts(ctx, r, d, out);
        }
    }
}

/// SIMPLE or MUTUAL TLS with neither CA certificates nor a credential to take them
/// from, and verification not explicitly skipped: the server's certificate is not checked.
fn unverified(tls: &ClientTlsSettings) -> Option<&'static str> {
    let mode = match tls.mode {
        ClientTlsMode::Simple => "SIMPLE",
        ClientTlsMode::Mutual => "MUTUAL",
        _ => return None,
    };
    let verifies = tls.ca_certificates.is_some() || tls.credential_name.is_some();
    (!verifies && tls.insecure_skip_verify != Some(true)).then_some(mode)
}

fn server_verification(r: &LocatedResource, d: &Object<DestinationRule>, out: &mut Vec<Finding>) {
    let Some(policy) = &d.spec.traffic_policy else {
        return;
    };
    let (name, ns, host) = (&d.metadata.name, d.metadata.namespace(), &d.spec.host);
    if let Some(mode) = policy.tls.as_ref().and_then(unverified) {
        out.push(finding(
            codes::NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
            format!(
                "DestinationRule {name} in namespace {ns} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {host}"
            ),
            vec![involved(r, "spec.trafficPolicy.tls")],
        ));
    }
    for (i, port) in policy.port_level_settings.iter().enumerate() {
        if let Some(mode) = port.tls.as_ref().and_then(unverified) {
            let number = port.port.as_ref().map_or(0, |p| p.number);
            out.push(finding(
                codes::NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
                format!(
                    "DestinationRule {name} in namespace {ns} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {host} at port {number}"
                ),
                vec![involved(r, &format!("spec.trafficPolicy.portLevelSettings[{i}].tls"))],
            ));
        }
    }
}

fn empty_subsets(
    ctx: &Context<'_>,
    r: &LocatedResource,
    d: &Object<DestinationRule>,
    out: &mut Vec<Finding>,
) {
    let hostname = host::resolve(&d.spec.host, d.metadata.namespace());
    let Some(endpoints) = ctx.registry.endpoints(&hostname) else {
        return;
    };
    for (i, subset) in d.spec.subsets.iter().enumerate() {
        let selected = endpoints
            .iter()
            .any(|labels| subset.labels.iter().all(|(k, v)| labels.get(k) == Some(v)));
        if !selected {
            out.push(finding(
                codes::SUBSET_SELECTS_NO_ENDPOINTS,
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
    ctx: &Context<'_>,
    r: &LocatedResource,
    d: &Object<DestinationRule>,
    out: &mut Vec<Finding>,
) {
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
    let all: Vec<Resource> = ctx.resources.iter().map(|r| r.resource.clone()).collect();
    let peers = crate::peer_authn::PeerPolicies::new(&all);
    for entry in ctx.resources.iter().filter_map(|x| match &x.resource {
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
                format!(
                    "DestinationRule sends {sends} to {hostname}, whose workloads require mutual TLS (PeerAuthentication {policy} is STRICT): every call would be refused. Remove spec.trafficPolicy.tls (auto mTLS) or use ISTIO_MUTUAL."
                ),
                vec![involved(r, "spec.trafficPolicy.tls.mode")],
            ));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{SERVICE, codes_of, run};

    const STRICT: &str = "---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
";

    fn dr(policy: &str) -> String {
        format!(
            "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: tls}}
spec:
  host: reviews
  trafficPolicy:
{policy}"
        )
    }

    #[test]
    fn client_tls_without_ca_certificates_is_unverified() {
        let f = run(&format!("{SERVICE}{}", dr("    tls: {mode: SIMPLE}\n")));
        let found = f.iter().find(|f| f.code == "IST0128").expect("IST0128");
        assert!(
            found
                .message
                .contains("TLS mode set to SIMPLE but no caCertificates"),
            "{f:?}"
        );
        for verified in [
            "    tls: {mode: SIMPLE, caCertificates: /etc/ca.pem}\n",
            "    tls: {mode: SIMPLE, insecureSkipVerify: true}\n",
            "    tls: {mode: ISTIO_MUTUAL}\n",
        ] {
            let f = run(&format!("{SERVICE}{}", dr(verified)));
            assert!(!codes_of(&f).contains(&"IST0128"), "{verified}: {f:?}");
        }
    }

    #[test]
    fn port_level_client_tls_without_ca_certificates_is_unverified() {
        let policy = "    portLevelSettings:
    - port: {number: 443}
      tls: TLS
";
        let f = run(&format!(
            "{SERVICE}{}",
            dr(&policy.replace(
                "TLS",
                "{mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}"
            ))
        ));
        let found = f.iter().find(|f| f.code == "IST0129").expect("IST0129");
        assert!(found.message.ends_with("at port 443"), "{f:?}");
        let f = run(&format!(
            "{SERVICE}{}",
            dr(&policy.replace("TLS", "{mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}"))
        ));
        assert!(!codes_of(&f).contains(&"IST0129"), "{f:?}");
    }

    #[test]
    fn a_subset_selecting_no_endpoint_is_reported() {
        let extra = "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: more}
spec:
  host: reviews
  subsets: [{name: v3, labels: {version: VERSION}}]
";
        let f = run(&format!("{SERVICE}{}", extra.replace("VERSION", "v3")));
        assert!(codes_of(&f).contains(&"WEFT0001"), "{f:?}");
        let f = run(&format!("{SERVICE}{}", extra.replace("VERSION", "v2")));
        assert!(!codes_of(&f).contains(&"WEFT0001"), "{f:?}");
    }

    #[test]
    fn plaintext_to_strict_workloads_is_an_mtls_policy_conflict() {
        let f = run(&format!(
            "{SERVICE}{STRICT}{}",
            dr("    tls: {mode: DISABLE}\n")
        ));
        let found = f.iter().find(|f| f.code == "WEFT0002").expect("WEFT0002");
        assert_eq!(found.name, "MTLSPolicyConflict");
        assert!(
            found
                .message
                .contains("PeerAuthentication istio-system/default is STRICT"),
            "{f:?}"
        );
        let f = run(&format!(
            "{SERVICE}{STRICT}{}",
            dr("    tls: {mode: ISTIO_MUTUAL}\n")
        ));
        assert!(!codes_of(&f).contains(&"WEFT0002"), "{f:?}");
        let f = run(&format!("{SERVICE}{}", dr("    tls: {mode: DISABLE}\n")));
        assert!(!codes_of(&f).contains(&"WEFT0002"), "{f:?}");
    }
}
