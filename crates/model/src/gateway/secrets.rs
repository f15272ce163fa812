//! Certificates from Kubernetes Secrets, as Istio's gateways read them (its SDS
//! `kubernetes://` credentials): an Istio Gateway server's `credentialName` names a Secret
//! in the gateway proxy's namespace, a Gateway API listener's `certificateRefs` a Secret in
//! the Gateway's namespace or, where a ReferenceGrant allows it, another.
//!
//! A Secret holds the certificate chain and key as `tls.crt` and `tls.key` (type
//! `kubernetes.io/tls`) or as Istio's generic `cert` and `key`; the CA bundle verifying
//! client certificates as `ca.crt` or `cacert`, or in a Secret of its own named
//! `<name>-cacert`.
//!
//! A Gateway's client certificate validation (`spec.tls.frontend`) reads its CA bundles
//! from ConfigMaps (`ca.crt`), by the same rules of namespaces and ReferenceGrants.

use std::sync::Arc;

use base64::Engine;
use weft_api::Resource;
use weft_api::gateway_api::gateway::SecretObjectReference;
use weft_api::kube::{ConfigMap, KubeObject, Secret};

use super::servers::{Credential, Pem, ServerCertificate};

fn find<'r>(resources: &'r [Resource], ns: &str, name: &str) -> Option<&'r KubeObject<Secret>> {
    resources.iter().find_map(|r| match r {
        Resource::Secret(s) if s.metadata.name == name && s.metadata.namespace() == ns => Some(s),
        _ => None,
    })
}

/// The first of `keys` that `secret` holds, as PEM with `label` blocks in it.
fn pem_of(
    secret: &KubeObject<Secret>,
    id: &str,
    keys: &[&str],
    label: &str,
) -> Option<Result<Pem, String>> {
    let (key, text) = keys
        .iter()
        .find_map(|k| secret.view.value(k).map(|v| (*k, v)))?;
    Some(match check_pem(&text, label) {
        Ok(()) => Ok(Pem::Inline {
            from: format!("Secret {id}[{key}]"),
            text: Arc::from(text),
        }),
        Err(e) => Err(format!("Secret {id}: {key} {e}")),
    })
}

/// Checks that `text` is PEM holding at least one block whose label ends with `label`
/// (`CERTIFICATE`, `PRIVATE KEY`), each block's body valid base64.
fn check_pem(text: &[u8], label: &str) -> Result<(), String> {
    let text = std::str::from_utf8(text).map_err(|_| "is not PEM text".to_string())?;
    let mut found = false;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(end_label) = after.find("-----") else {
            return Err("has a PEM block with no end to its BEGIN line".into());
        };
        let name = &after[..end_label];
        let body_start = &after[end_label + 5..];
        let end_line = format!("-----END {name}-----");
        let Some(body_end) = body_start.find(&end_line) else {
            return Err(format!("has a {name} block without its END line"));
        };
        let body: String = body_start[..body_end]
            .lines()
            .filter(|l| !l.contains(':'))
            .collect::<Vec<_>>()
            .concat();
        let body: String = body.split_whitespace().collect();
        if body.is_empty()
            || base64::engine::general_purpose::STANDARD
                .decode(&body)
                .is_err()
        {
            return Err(format!("has a {name} block that is not valid base64"));
        }
        found |= name.ends_with(label);
        rest = &body_start[body_end + end_line.len()..];
    }
    if found {
        Ok(())
    } else {
        Err(format!("holds no PEM {label}"))
    }
}

/// The credential of Secret `ns/name`.
pub fn credential(resources: &[Resource], ns: &str, name: &str) -> Result<Credential, String> {
    let id = format!("{ns}/{name}");
    let secret = find(resources, ns, name).ok_or(format!("Secret {id} does not exist"))?;
    let certificate = pem_of(secret, &id, &["tls.crt", "cert"], "CERTIFICATE").ok_or(
        format!("Secret {id} holds no certificate (tls.crt, or cert)"),
    )??;
    let key = pem_of(secret, &id, &["tls.key", "key"], "PRIVATE KEY").ok_or(format!(
        "Secret {id} holds no private key (tls.key, or key)"
    ))??;
    let ca = match pem_of(secret, &id, &["ca.crt", "cacert"], "CERTIFICATE") {
        Some(ca) => Some(ca?),
        None => {
            let companion = format!("{name}-cacert");
            match find(resources, ns, &companion) {
                Some(c) => pem_of(
                    c,
                    &format!("{ns}/{companion}"),
                    &["ca.crt", "cacert"],
                    "CERTIFICATE",
                )
                .transpose()?,
                None => None,
            }
        }
    };
    Ok(Credential {
        certificate: ServerCertificate { certificate, key },
        ca,
    })
}

/// Why a Gateway API certificate reference does not resolve: the reason of the
/// listener's `ResolvedRefs` condition and a message.
pub type Unresolved = (&'static str, String);

/// The certificate `r` of a listener of a Gateway in `gateway_ns` names: a Secret of the
/// core group, in another namespace only where a ReferenceGrant there allows it.
pub fn certificate_ref(
    resources: &[Resource],
    gateway_ns: &str,
    r: &SecretObjectReference,
) -> Result<ServerCertificate, Unresolved> {
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("Secret");
    if !matches!(group, "" | "core") || kind != "Secret" {
        let what = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        return Err((
            "InvalidCertificateRef",
            format!("certificateRefs name a {what}; weft reads core Secrets"),
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(gateway_ns);
    if ns != gateway_ns && !granted(resources, gateway_ns, ns, "Secret", &r.name) {
        return Err((
            "RefNotPermitted",
            format!(
                "Secret {ns}/{} is in another namespace and no ReferenceGrant there allows Gateways from {gateway_ns} to refer to it",
                r.name
            ),
        ));
    }
    credential(resources, ns, &r.name)
        .map(|c| c.certificate)
        .map_err(|e| ("InvalidCertificateRef", e))
}

/// True when a ReferenceGrant in `ns` lets Gateways of `gateway_ns` refer to the `kind`
/// (of the core group) `name`.
pub(crate) fn granted(
    resources: &[Resource],
    gateway_ns: &str,
    ns: &str,
    kind: &str,
    name: &str,
) -> bool {
    resources.iter().any(|r| match r {
        Resource::ReferenceGrant(g) => {
            g.metadata.namespace() == ns
                && g.spec.allows(
                    (weft_api::gateway_api::GROUP, "Gateway", gateway_ns),
                    ("", kind, name),
                )
        }
        _ => false,
    })
}

fn config_map<'r>(
    resources: &'r [Resource],
    ns: &str,
    name: &str,
) -> Option<&'r KubeObject<ConfigMap>> {
    resources.iter().find_map(|r| match r {
        Resource::ConfigMap(c) if c.metadata.name == name && c.metadata.namespace() == ns => {
            Some(c)
        }
        _ => None,
    })
}

/// The CA bundle of a Gateway's client certificate validation: the `ca.crt` of each
/// ConfigMap `refs` name (in the Gateway's namespace `gateway_ns`, or another whose
/// ReferenceGrant allows it), joined; `None` when none resolves. With it, the first
/// reference that does not, as the listener's `ResolvedRefs` reason:
/// `InvalidCACertificateKind` (not a core ConfigMap), `RefNotPermitted` (no grant),
/// `InvalidCACertificateRef` (missing, or no PEM certificate in `ca.crt`).
pub fn ca_bundle(
    resources: &[Resource],
    gateway_ns: &str,
    refs: &[SecretObjectReference],
) -> (Option<Pem>, Option<Unresolved>) {
    let mut text = Vec::new();
    let mut from = Vec::new();
    let mut problem = None;
    for r in refs {
        match ca_of(resources, gateway_ns, r) {
            Ok((id, ca)) => {
                text.extend_from_slice(&ca);
                text.push(b'\n');
                from.push(format!("ConfigMap {id}[ca.crt]"));
            }
            Err(e) => {
                problem.get_or_insert(e);
            }
        }
    }
    let bundle = (!from.is_empty()).then(|| Pem::Inline {
        from: from.join(", "),
        text: Arc::from(text),
    });
    (bundle, problem)
}

/// The `ca.crt` of the ConfigMap `r` names, with its `namespace/name`.
fn ca_of(
    resources: &[Resource],
    gateway_ns: &str,
    r: &SecretObjectReference,
) -> Result<(String, Vec<u8>), Unresolved> {
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("");
    if !matches!(group, "" | "core") || kind != "ConfigMap" {
        return Err((
            "InvalidCACertificateKind",
            format!(
                "caCertificateRefs name a {kind}; weft reads CA bundles from core ConfigMaps (ca.crt)"
            ),
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(gateway_ns);
    if ns != gateway_ns && !granted(resources, gateway_ns, ns, "ConfigMap", &r.name) {
        return Err((
            "RefNotPermitted",
            format!(
                "ConfigMap {ns}/{} is in another namespace and no ReferenceGrant there allows Gateways from {gateway_ns} to refer to it",
                r.name
            ),
        ));
    }
    let id = format!("{ns}/{}", r.name);
    let map = config_map(resources, ns, &r.name).ok_or((
        "InvalidCACertificateRef",
        format!("ConfigMap {id} does not exist"),
    ))?;
    let ca = map.view.value("ca.crt").ok_or((
        "InvalidCACertificateRef",
        format!("ConfigMap {id} holds no ca.crt"),
    ))?;
    check_pem(&ca, "CERTIFICATE").map_err(|e| {
        (
            "InvalidCACertificateRef",
            format!("ConfigMap {id}: ca.crt {e}"),
        )
    })?;
    Ok((id, ca))
}
