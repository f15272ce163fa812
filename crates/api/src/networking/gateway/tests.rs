use super::*;
use crate::testing::{errors, spec_issues};

fn error_paths(yaml: &str) -> Vec<String> {
    let issues = spec_issues::<Gateway>(yaml).expect("reads");
    errors(&issues)
        .iter()
        .map(|e| e.split(": ").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn istio_example_is_valid() {
    let yaml = r#"
selector:
  app: my-gateway-controller
servers:
- port: {number: 80, name: http, protocol: HTTP}
  hosts: [uk.bookinfo.com, eu.bookinfo.com]
  tls:
    httpsRedirect: true
- port: {number: 443, name: https-443, protocol: HTTPS}
  hosts: [uk.bookinfo.com, eu.bookinfo.com]
  tls:
    mode: SIMPLE
    serverCertificate: /etc/certs/servercert.pem
    privateKey: /etc/certs/privatekey.pem
- port: {number: 9443, name: https-9443, protocol: HTTPS}
  hosts: ["bookinfo-namespace/*.bookinfo.com"]
  tls:
    mode: SIMPLE
    credentialName: bookinfo-secret
- port: {number: 9080, name: http-wildcard, protocol: http}
  hosts: ["*"]
- port: {number: 2379, name: mongo, protocol: MONGO}
  hosts: ["*"]
"#;
    let issues = spec_issues::<Gateway>(yaml).expect("reads");
    assert_eq!(errors(&issues), Vec::<String>::new());
    // Valid, and weft's gateway serves all of it (the Secret is read when served).
    let warned: Vec<String> = issues.iter().map(|i| format!("{i:?}")).collect();
    assert_eq!(issues.len(), 0, "{warned:?}");
}

#[test]
fn what_weft_cannot_serve_is_warned_at_its_field() {
    let yaml = r#"
selector: {istio: ingressgateway}
servers:
- port: {number: 443, name: https, protocol: HTTPS}
  hosts: [a.example.com]
  tls:
    mode: SIMPLE
    serverCertificate: /c.pem
    privateKey: /k.pem
    minProtocolVersion: TLSV1_1
    cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, AES128-SHA]
- port: {number: 8443, name: https-old, protocol: HTTPS}
  hosts: [b.example.com]
  tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, maxProtocolVersion: TLSV1_1, cipherSuites: [AES128-SHA]}
- port: {number: 53, name: dns, protocol: UDP}
  hosts: ["*"]
"#;
    let issues = spec_issues::<Gateway>(yaml).expect("reads");
    assert_eq!(errors(&issues), Vec::<String>::new());
    let warned: Vec<String> = issues.iter().map(|i| format!("{i:?}")).collect();
    for (path, says) in [
        (
            "servers[0].tls.minProtocolVersion",
            "TLS 1.0 and 1.1 clients are refused",
        ),
        ("servers[0].tls.cipherSuites[1]", "cannot offer AES128-SHA"),
        ("servers[1].tls.maxProtocolVersion", "not served"),
        ("servers[2].port.protocol", "UDP"),
    ] {
        assert!(
            warned.iter().any(|w| w.contains(path) && w.contains(says)),
            "{path}: {warned:?}"
        );
    }
    assert!(
        !warned
            .iter()
            .any(|w| w.contains("servers[0].tls.cipherSuites[0]")),
        "a suite weft offers is not warned: {warned:?}"
    );
}

#[test]
fn every_server_mistake_is_reported_at_its_path() {
    let yaml = r#"
selector: {istio: ingressgateway}
servers:
- port: {number: 0, name: http, protocol: HTTP}
  hosts: ["foo", "ns/*.example.com"]
- port: {number: 443, name: http, protocol: HTTPS}
  hosts: ["*"]
- port: {number: 8443, name: tls, protocol: HTTPS}
  hosts: ["bad_ns/example.com"]
  tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}
- hosts: ["*"]
"#;
    assert_eq!(
        error_paths(yaml),
        [
            "spec.servers[0].hosts[0]",
            "spec.servers[0].port.number",
            "spec.servers[1].tls",
            "spec.servers[2].hosts[0]",
            "spec.servers[2].tls.caCertificates",
            "spec.servers[3].port",
            "spec.servers[1].port.name",
        ]
    );
}

#[test]
fn tls_rules() {
    let yaml = r#"
servers:
- port: {number: 443, name: https, protocol: HTTPS}
  hosts: ["*"]
  tls: {mode: ISTIO_MUTUAL, credentialName: cert}
- port: {number: 444, name: https-2, protocol: HTTPS}
  hosts: ["*"]
  tls: {mode: SIMPLE, credentialName: cert, serverCertificate: /c, privateKey: /k, caCrl: /crl}
- port: {number: 80, name: http, protocol: HTTP}
  hosts: ["*"]
  tls: {mode: SIMPLE, credentialName: cert}
- port: {number: 445, name: https-3, protocol: HTTPS}
  hosts: ["*"]
  tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, caCrl: /crl}
"#;
    assert_eq!(
        error_paths(yaml),
        [
            "spec.servers[0].tls.credentialName",
            "spec.servers[1].tls",
            "spec.servers[2].tls",
            "spec.servers[3].tls.caCrl",
        ]
    );
}

#[test]
fn unknown_protocol_names_the_field() {
    let yaml = "servers:\n- port: {number: 21, name: ftp, protocol: FTP}\n  hosts: [\"*\"]\n";
    let issues = spec_issues::<Gateway>(yaml).expect("reads");
    let errs = errors(&issues);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("spec.servers[0].port.protocol: unknown protocol \"FTP\""),
        "{}",
        errs[0]
    );
}

#[test]
fn protocols_parse_case_insensitively() {
    assert_eq!(Protocol::parse("grpc-web"), Some(Protocol::GrpcWeb));
    assert_eq!(Protocol::parse("Http2"), Some(Protocol::Http2));
    assert_eq!(Protocol::parse(""), None);
    assert_eq!(Protocol::parse("kafka"), None);
    assert!(Protocol::Grpc.is_http() && !Protocol::Grpc.is_tcp());
    assert!(Protocol::Https.is_tls() && Protocol::Https.is_tcp());
}
