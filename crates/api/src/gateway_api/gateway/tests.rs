use super::*;
use crate::gateway_api::ReferenceGrant;
use crate::testing::{assert_errors, spec_issues};

#[test]
fn an_http_and_an_https_listener_with_certificate_files_are_valid() {
    let yaml = r#"
gatewayClassName: weft
listeners:
- {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
- name: https
  port: 443
  protocol: HTTPS
  hostname: "*.example.com"
  tls:
    mode: Terminate
    options: {weft.dev/server-certificate: /etc/certs/tls.crt, weft.dev/private-key: /etc/certs/tls.key}
"#;
    assert_errors::<Gateway>(yaml, &[]);
    let issues = spec_issues::<Gateway>(yaml).expect("reads");
    assert!(issues.is_empty(), "no warnings either: {issues:?}");
}

#[test]
fn the_crds_listener_rules_are_enforced_at_their_paths() {
    assert_errors::<Gateway>(
        r#"
gatewayClassName: ""
listeners:
- {name: a, port: 80, protocol: HTTP, tls: {options: {x.io/y: z}}}
- {name: a, port: 0, protocol: "bad proto"}
- {name: t, port: 9000, protocol: TCP, hostname: x.example.com}
- name: s
  port: 443
  protocol: HTTPS
  tls: {mode: Passthrough, certificateRefs: [{name: c}]}
- {name: e, port: 8443, protocol: TLS, tls: {mode: Terminate}}
- {name: u, port: 80, protocol: HTTP}
- name: sel
  port: 81
  protocol: HTTP
  hostname: Bad_Host
  allowedRoutes: {namespaces: {from: Selector}, kinds: [{kind: ""}]}
- name: k
  port: 82
  protocol: HTTPS
  tls: {options: {weft.dev/server-certificate: a.pem, weft.dev/cert: b}}
addresses: [{value: not-an-ip}]
"#,
        &[
            "spec.gatewayClassName: Invalid value: \"\": must be 1 to 253 characters",
            "spec.listeners[1].name: Listener name must be unique within the Gateway",
            "spec.listeners[0].tls: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
            "spec.listeners[1].port: Invalid value: 0",
            "spec.listeners[1].protocol: Unsupported value: \"bad proto\"",
            "spec.listeners[2].hostname: hostname must not be specified for protocols ['TCP', 'UDP']",
            "spec.listeners[3].tls: tls mode must be Terminate for protocol HTTPS",
            "spec.listeners[3].tls: certificateRefs must not be specified when mode is Passthrough",
            "spec.listeners[4].tls: certificateRefs or options must be specified when mode is Terminate",
            "spec.listeners[5]: Combination of port, protocol and hostname must be unique for each listener",
            "spec.listeners[6].hostname: Invalid value: \"Bad_Host\"",
            "spec.listeners[6].allowedRoutes.namespaces.selector: Required value",
            "spec.listeners[6].allowedRoutes.kinds[0].kind: Invalid value: \"\"",
            "spec.listeners[7].tls.options: weft.dev/server-certificate and weft.dev/private-key go together",
            "spec.listeners[7].tls.options: unknown weft option \"weft.dev/cert\"",
            "spec.addresses[0].value: Invalid value: \"not-an-ip\": value must be an IP address",
        ],
    );
}

#[test]
fn what_weft_cannot_serve_is_a_warning_naming_the_field() {
    let yaml = r#"
gatewayClassName: istio
listeners:
- {name: udp, port: 9000, protocol: UDP}
- {name: tls, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{name: my-secret}]}}
"#;
    let issues = spec_issues::<Gateway>(yaml).expect("reads");
    let warnings: Vec<String> = issues
        .iter()
        .filter(|i| i.severity == crate::diag::Severity::Warning)
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w
                .starts_with("spec.listeners[0].protocol: UDP listeners are not served by weft")),
        "{warnings:#?}"
    );
    // A Secret reference is read now (its status says when it does not resolve).
    assert!(
        !warnings.iter().any(|w| w.contains("certificateRefs")),
        "{warnings:#?}"
    );
    assert_errors::<Gateway>(yaml, &[]);
}

#[test]
fn gateway_classes_name_a_domain_prefixed_controller() {
    assert_errors::<GatewayClass>("controllerName: weft.dev/gateway-controller\n", &[]);
    assert_errors::<GatewayClass>(
        "controllerName: just-a-name\n",
        &["spec.controllerName: Invalid value: \"just-a-name\": must be a domain-prefixed path"],
    );
}

#[test]
fn reference_grants_allow_what_they_list() {
    let yaml = r#"
from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]
to: [{group: "", kind: Service, name: shop}]
"#;
    assert_errors::<ReferenceGrant>(yaml, &[]);
    let docs = crate::source::parse_documents(yaml).expect("parses");
    let ctx = std::cell::RefCell::new(crate::source::ReadContext::default());
    let grant: ReferenceGrant = crate::source::from_node(&docs[0], "spec", &ctx).expect("reads");
    let route = |ns| (crate::gateway_api::GROUP, "HTTPRoute", ns);
    assert!(grant.allows(route("infra"), ("", "Service", "shop")));
    assert!(grant.allows(route("infra"), ("core", "Service", "shop")));
    assert!(!grant.allows(route("other"), ("", "Service", "shop")));
    assert!(!grant.allows(route("infra"), ("", "Service", "cart")));
    assert_errors::<ReferenceGrant>(
        "from: []\nto: [{group: \"\", kind: \"\"}]\n",
        &[
            "spec.from: Required value",
            "spec.to[0].kind: Invalid value: \"\"",
        ],
    );
}

#[test]
fn the_gateways_tls_frontend_is_checked_at_its_paths() {
    let listeners = "listeners: [{name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: c}]}}]\n";
    assert_errors::<Gateway>(
        &format!(
            r#"
gatewayClassName: weft
tls:
  backend: {{clientCertificateRef: {{name: client}}}}
  frontend:
    default:
      validation: {{caCertificateRefs: [], mode: Strict}}
    perPort:
    - {{port: 8443, tls: {{validation: {{caCertificateRefs: [{{name: ca}}]}}}}}}
    - {{port: 8443, tls: {{validation: {{caCertificateRefs: [{{group: '', kind: ConfigMap, name: ca}}]}}}}}}
    - {{port: 0, tls: {{}}}}
{listeners}"#
        ),
        &[
            "spec.tls.frontend.default.validation.caCertificateRefs: Required value: at least 1 item",
            "spec.tls.frontend.default.validation.mode: Unsupported value: \"Strict\"",
            "spec.tls.frontend.perPort[0].tls.validation.caCertificateRefs[0].kind: Required value",
            "spec.tls.frontend.perPort[1]: Port for TLS configuration must be unique within the Gateway",
            "spec.tls.frontend.perPort[2].port: Invalid value: 0",
        ],
    );
    let valid = format!(
        "gatewayClassName: weft\ntls:\n  frontend:\n    default:\n      validation: {{mode: AllowInsecureFallback, caCertificateRefs: [{{group: '', kind: ConfigMap, name: ca}}]}}\n{listeners}"
    );
    assert_errors::<Gateway>(&valid, &[]);
    // The backend client certificate is said not to be used, not dropped silently.
    let backend = format!(
        "gatewayClassName: weft\ntls:\n  backend: {{clientCertificateRef: {{name: client}}}}\n{listeners}"
    );
    let issues = spec_issues::<Gateway>(&backend).expect("reads");
    assert!(
        issues
            .iter()
            .any(|i| i.path == "spec.tls.backend" && i.message.contains("not used")),
        "{issues:?}"
    );
}
