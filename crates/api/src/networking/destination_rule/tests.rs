use super::*;
use crate::testing::{assert_errors, assert_errors_include, errors, spec_issues};

#[test]
fn the_seed_rule_is_valid() {
    let issues = spec_issues::<DestinationRule>(
        "host: recommendation-service\nsubsets:\n- name: v1\n  labels: {version: v1}\n- name: v2\n  labels: {version: v2}\n",
    )
    .expect("reads");
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn ranges_enums_and_uniqueness() {
    assert_errors::<DestinationRule>(
        r#"
host: reviews
trafficPolicy:
  loadBalancer: {simple: ROUND_ROBIN, consistentHash: {httpHeaderName: x-user}}
  connectionPool:
    tcp: {maxConnections: -1, connectTimeout: 0s}
    http: {http1MaxPendingRequests: -2}
  outlierDetection: {maxEjectionPercent: 150, interval: 0s}
  tls: {mode: MUTUAL}
  portLevelSettings:
  - port: {number: 70000}
subsets:
- name: v1
- name: v1
"#,
        &[
            "spec.trafficPolicy.loadBalancer: only one of simple or consistentHash",
            "spec.trafficPolicy.connectionPool.tcp.maxConnections: must not be negative (got -1)",
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout: must be at least 1ms",
            "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests: must not be negative (got -2)",
            "spec.trafficPolicy.outlierDetection.interval: must be at least 1ms",
            "spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be in 0..100 (got 150)",
            "spec.trafficPolicy.tls: client certificate required for mutual tls",
            "spec.trafficPolicy.tls: private key required for mutual tls",
            "spec.trafficPolicy.portLevelSettings[0].port.number: port number must be in 1..65535",
            "spec.subsets[1].name: duplicate subset name \"v1\"",
        ],
    );
}

#[test]
fn secrets_and_revocation_lists_are_refused_by_name() {
    assert_errors_include::<DestinationRule>(
        "host: api.example.com\ntrafficPolicy:\n  tls: {mode: SIMPLE, credentialName: api-ca, caCrl: /etc/crl.pem}\n",
        &[
            "spec.trafficPolicy.tls.credentialName: not supported",
            "spec.trafficPolicy.tls.caCrl: not supported",
        ],
    );
}

#[test]
fn unknown_enum_values_are_read_errors() {
    let err = spec_issues::<DestinationRule>(
        "host: a\ntrafficPolicy: {loadBalancer: {simple: ROUND_ROBINN}}\n",
    )
    .expect_err("bad enum");
    assert!(err.contains("did you mean `ROUND_ROBIN`"), "{err}");
}

#[test]
fn maglev_table_must_be_prime() {
    let issues = spec_issues::<DestinationRule>(
        "host: a\ntrafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65536}}}}\n",
    )
    .expect("reads");
    assert_eq!(
        errors(&issues),
        [
            "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: must be a prime number (got 65536)"
        ]
    );
}

#[test]
fn simple_tls_with_client_certificate_and_private_key_is_accepted_with_a_warning() {
    let issues = spec_issues::<DestinationRule>(
        "host: api.example.com\ntrafficPolicy:\n  tls: {mode: SIMPLE, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}\n",
    )
    .expect("reads");
    assert_eq!(errors(&issues), Vec::<String>::new());
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].message.contains("no effect with mode SIMPLE"),
        "{issues:?}"
    );
}

#[test]
fn certificate_fields_with_disable_or_istio_mutual_are_accepted_with_a_warning() {
    for mode in ["DISABLE", "ISTIO_MUTUAL"] {
        let issues = spec_issues::<DestinationRule>(&format!(
            "host: a\ntrafficPolicy:\n  tls: {{mode: {mode}, clientCertificate: /c.pem, credentialName: s}}\n"
        ))
        .expect("reads");
        assert_eq!(errors(&issues), Vec::<String>::new(), "{mode}");
        assert!(
            issues[0].message.starts_with(&format!(
                "clientCertificate, credentialName has no effect with mode {mode}"
            )),
            "{issues:?}"
        );
    }
}

#[test]
fn insecure_skip_verify_conflicts_with_ca_certificates_and_subject_alt_names() {
    assert_errors_include::<DestinationRule>(
        "host: a\ntrafficPolicy:\n  tls: {mode: SIMPLE, insecureSkipVerify: true, subjectAltNames: [a]}\n  portLevelSettings:\n  - port: {number: 443}\n    tls: {mode: MUTUAL, insecureSkipVerify: true, caCertificates: /ca.pem, clientCertificate: /c.pem, privateKey: /k.pem}\n",
        &[
            "spec.trafficPolicy.tls: cannot specify caCertificates, credentialName or subjectAltNames when insecureSkipVerify is true",
            "spec.trafficPolicy.portLevelSettings[0].tls: cannot specify caCertificates or subjectAltNames when insecureSkipVerify is true",
        ],
    );
    let fine = spec_issues::<DestinationRule>(
        "host: a\ntrafficPolicy:\n  tls: {mode: SIMPLE, insecureSkipVerify: true, sni: a.example.com}\n",
    )
    .expect("reads");
    assert!(fine.is_empty(), "{fine:?}");
}

#[test]
fn credential_name_with_certificate_files_is_an_error_as_in_istio() {
    assert_errors_include::<DestinationRule>(
        "host: a\ntrafficPolicy:\n  tls: {mode: MUTUAL, credentialName: s, clientCertificate: /c.pem}\n",
        &[
            "spec.trafficPolicy.tls: cannot specify client certificates, CA certificate or CA CRL if credentialName is set",
            "spec.trafficPolicy.tls.credentialName: not supported",
        ],
    );
}

#[test]
fn newest_fields_weft_cannot_implement_are_refused_by_name() {
    assert_errors::<DestinationRule>(
        r#"
host: a
trafficPolicy:
  loadBalancer:
    zoneAwareLbSetting: {enabled: true}
    warmup: {duration: 60s, minimumPercent: 10, aggression: 1.5}
  retryBudget: {percent: 20, minRetryConcurrency: 3, budgetInterval: 10s}
  tunnel: {protocol: CONNECT, targetHost: egress.example.com, targetPort: 8443}
  proxyProtocol: {version: V2}
  portLevelSettings:
  - port: {number: 80}
    loadBalancer:
      localityLbSetting: {enabled: true, failover: [{from: us-east, to: us-west}]}
"#,
        &[
            "spec.trafficPolicy.loadBalancer.zoneAwareLbSetting: not supported",
            "spec.trafficPolicy.loadBalancer.warmup: not supported",
            "spec.trafficPolicy.portLevelSettings[0].loadBalancer.localityLbSetting: not supported",
            "spec.trafficPolicy.tunnel: not supported",
            "spec.trafficPolicy.retryBudget.budgetInterval: not supported",
            "spec.trafficPolicy.proxyProtocol: not supported",
        ],
    );
    // What weft does anyway is accepted: locality balancing turned off, a budget without interval.
    let off = spec_issues::<DestinationRule>(
        "host: a\ntrafficPolicy:\n  loadBalancer: {localityLbSetting: {enabled: false}, zoneAwareLbSetting: {enabled: false}}\n  retryBudget: {percent: 20, minRetryConcurrency: 3, budgetInterval: 0s}\n",
    )
    .expect("reads");
    assert!(off.is_empty(), "{off:?}");
}

#[test]
fn http2_keep_alive_durations_are_checked() {
    assert_errors::<DestinationRule>(
        "host: a\ntrafficPolicy:\n  connectionPool:\n    http: {http2KeepAlive: {interval: 0s, timeout: 0.1ms}}\n",
        &[
            "spec.trafficPolicy.connectionPool.http.http2KeepAlive.interval: must be at least 1ms",
            "spec.trafficPolicy.connectionPool.http.http2KeepAlive.timeout: must be at least 1ms",
        ],
    );
    let ok = spec_issues::<DestinationRule>(
        "host: a\ntrafficPolicy:\n  connectionPool:\n    http: {http2KeepAlive: {interval: 30s, timeout: 5s}}\n",
    )
    .expect("reads");
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn warmup_aggression_below_one_is_not_an_error_since_istio_1_31() {
    let issues = spec_issues::<DestinationRule>(
        "host: a\ntrafficPolicy:\n  loadBalancer: {warmup: {duration: 10s, aggression: 0.5}}\n",
    )
    .expect("reads");
    // Only the refusal of warmup itself; 0.5 is a valid aggression.
    assert_eq!(
        errors(&issues),
        [
            "spec.trafficPolicy.loadBalancer.warmup: not supported: weft's balancer has no slow start (new endpoints get their full share at once); remove warmup"
        ]
    );
    assert_errors_include::<DestinationRule>(
        "host: a\ntrafficPolicy:\n  loadBalancer: {warmup: {duration: 10s, aggression: 0}}\n",
        &["spec.trafficPolicy.loadBalancer.warmup.aggression: must be greater than 0"],
    );
}
