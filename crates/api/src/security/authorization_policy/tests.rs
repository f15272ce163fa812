use super::*;
use crate::testing::{assert_errors, errors, spec_issues};

#[test]
fn the_reference_example_is_valid() {
    let issues = spec_issues::<AuthorizationPolicy>(
        r#"
selector:
  matchLabels: {app: httpbin, version: v1}
action: ALLOW
rules:
- from:
  - source:
      principals: ["cluster.local/ns/default/sa/sleep"]
  - source:
      namespaces: ["test"]
      notIpBlocks: ["203.0.113.4", "2001:db8::/32"]
  to:
  - operation:
      methods: ["GET"]
      paths: ["/info*", "/api/{*}/items/{**}"]
      ports: ["8080"]
  - operation:
      methods: ["POST"]
      paths: ["/data"]
  when:
  - key: request.auth.claims[iss]
    values: ["https://accounts.google.com"]
  - key: source.ip
    notValues: ["10.0.0.0/8"]
"#,
    )
    .expect("reads");
    // Valid: the JWT condition reads the token RequestAuthentication verified.
    assert!(issues.is_empty(), "{issues:?}");
    let allow_all = spec_issues::<AuthorizationPolicy>("rules:\n- {}\n").expect("reads");
    assert!(allow_all.is_empty(), "{allow_all:?}");
}

#[test]
fn every_mistake_is_reported_with_its_path() {
    assert_errors::<AuthorizationPolicy>(
        r#"
selector: {matchLabels: {app: a}}
targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]
action: DENY
provider: {name: ext}
rules:
- from:
  - source: {}
  - {}
  - source:
      serviceAccounts: ["default/sleep"]
      principals: ["cluster.local/ns/default/sa/sleep"]
      ipBlocks: ["10.0.0.300", "10.0.0.0/33"]
  to:
  - operation:
      ports: ["http", "70000"]
      paths: ["/{**}/x/{*}"]
  when:
  - key: request.headers
    values: [a]
  - key: source.namespace
  - key: destination.port
    values: ["99999"]
"#,
        &[
            "spec: only one of selector, targetRef and targetRefs may be set",
            "spec.provider: provider is only allowed with action CUSTOM (action is DENY)",
            "spec.rules[0].from[0].source: source must set at least one field",
            "spec.rules[0].from[1].source: source is required",
            "spec.rules[0].from[2].source: serviceAccounts and notServiceAccounts cannot be combined",
            "spec.rules[0].from[2].source.ipBlocks[0]: \"10.0.0.300\" is not a valid IP address",
            "spec.rules[0].from[2].source.ipBlocks[1]: \"10.0.0.0/33\" is not a valid CIDR block",
            "spec.rules[0].to[0].operation.ports[0]: \"http\" is not a port number",
            "spec.rules[0].to[0].operation.ports[1]: port 70000 is greater than 65535",
            "spec.rules[0].to[0].operation.paths[0]: invalid path template \"/{**}/x/{*}\": {**} must be the last operator",
            "spec.rules[0].when[0].key: bad key \"request.headers\"",
            "spec.rules[0].when[1]: at least one of values or notValues is required for key \"source.namespace\"",
            "spec.rules[0].when[2].values[0]: port 99999 is greater than 65535",
        ],
    );
}

#[test]
fn custom_needs_a_provider_and_no_identity_matches() {
    assert_errors::<AuthorizationPolicy>(
        r#"
action: CUSTOM
provider: {}
rules:
- from:
  - source: {requestPrincipals: ["*"], ipBlocks: ["1.2.3.4"]}
  when:
  - key: request.auth.claims[groups]
    values: [admin]
"#,
        &[
            "spec.provider.name: provider name must not be empty",
            "spec.rules[0].from[0].source.requestPrincipals: requestPrincipals is not supported with action CUSTOM",
            "spec.rules[0].when[0].key: condition key \"request.auth.claims[groups]\" is not supported with action CUSTOM",
        ],
    );

    let no_provider =
        spec_issues::<AuthorizationPolicy>("action: CUSTOM\nrules: [{}]\n").expect("reads");
    let errs = errors(&no_provider);
    assert!(
        errs.contains(&"spec.provider: action CUSTOM needs provider.name, an extension provider from MeshConfig".to_string()),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let with_provider = spec_issues::<AuthorizationPolicy>(
        "action: CUSTOM\nprovider: {name: ext-authz}\nrules: [{to: [{operation: {paths: [/admin/*]}}]}]\n",
    )
    .expect("reads");
    assert!(
        errors(&with_provider).is_empty(),
        "{:#?}",
        errors(&with_provider)
    );
}

#[test]
fn deny_and_custom_without_rules_never_trigger() {
    for action in ["DENY", "CUSTOM"] {
        let issues =
            spec_issues::<AuthorizationPolicy>(&format!("action: {action}\n")).expect("reads");
        let errs = errors(&issues);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs.iter().any(|e| e.starts_with(&format!(
                "spec.rules: a {action} policy without rules never triggers"
            ))),
            "{errs:#?}"
        );
    }
    let allow_nothing = spec_issues::<AuthorizationPolicy>("action: ALLOW\n").expect("reads");
    assert!(allow_nothing.is_empty(), "{allow_nothing:?}");
}

#[test]
fn target_refs_name_a_supported_kind_in_the_same_namespace() {
    let ok = spec_issues::<AuthorizationPolicy>(
        "targetRefs:\n- {kind: Service, name: reviews}\n- {kind: Service, group: core, name: ratings}\n- {kind: ServiceEntry, group: networking.istio.io, name: ext}\n",
    )
    .expect("reads");
    // Valid, with a warning: weft applies targetRef(s) policies to no workload.
    assert_eq!(errors(&ok), Vec::<String>::new());
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_errors::<AuthorizationPolicy>(
        "targetRef: {kind: Pod, namespace: other}\n",
        &[
            "spec.targetRef.name: target name is required",
            "spec.targetRef.namespace: cross-namespace targets are not supported",
            "spec.targetRef.kind: unsupported target kind \"Pod\" in group \"\"",
        ],
    );
}

#[test]
fn condition_keys_follow_istios_attribute_list() {
    assert_errors::<AuthorizationPolicy>(
        r#"
rules:
- when:
  - {key: "destination.labels[app]", values: [a]}
  - {key: "request.auth.claims[]", values: [a]}
  - {key: destination.namespace, values: [a]}
  - {key: source.principals, values: [a]}
  - {key: source.serviceAccount, values: ["ns/sa/extra"]}
  - {key: remote.ip, values: ["not-an-ip"]}
  - {key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: ["[update]"]}
  - {key: connection.sni, notValues: ["*.example.com"]}
"#,
        &[
            "spec.rules[0].when[0].key: attribute \"destination.labels[app]\" is replaced by the workload selector",
            "spec.rules[0].when[1].key: bad key \"request.auth.claims[]\"",
            "spec.rules[0].when[2].key: attribute \"destination.namespace\" is replaced",
            "spec.rules[0].when[3].key: unknown attribute \"source.principals\"",
            "spec.rules[0].when[4].values[0]: \"ns/sa/extra\": expected \"name\" or \"namespace/name\"",
            "spec.rules[0].when[5].values[0]: \"not-an-ip\" is not a valid IP address",
        ],
    );
}

#[test]
fn misplaced_wildcards_warn_and_service_account_wildcards_fail() {
    let issues = spec_issues::<AuthorizationPolicy>(
        r#"
rules:
- from:
  - source:
      principals: ["cluster.local/*/sa/x", "*", "cluster.local/*", "*/sa/x"]
  - source:
      serviceAccounts: ["default/*"]
  to:
  - operation:
      paths: ["/api/*/items"]
"#,
    )
    .expect("reads");
    assert_eq!(
        errors(&issues),
        [
            "spec.rules[0].from[1].source.serviceAccounts[0]: \"default/*\": wildcards are not allowed in service accounts"
        ]
    );
    let warned: Vec<&str> = issues
        .iter()
        .filter(|i| i.severity == crate::diag::Severity::Warning)
        .map(|i| i.path.as_str())
        .collect();
    assert_eq!(
        warned,
        [
            "spec.rules[0].from[0].source.principals[0]",
            "spec.rules[0].to[0].operation.paths[0]"
        ]
    );
}

#[test]
fn deny_rules_with_only_http_attributes_warn_about_tcp() {
    let issues = spec_issues::<AuthorizationPolicy>(
        "action: DENY\nrules:\n- to: [{operation: {methods: [POST]}}]\n- to: [{operation: {methods: [POST], ports: [\"8080\"]}}]\n",
    )
    .expect("reads");
    assert!(errors(&issues).is_empty(), "{issues:?}");
    let warned: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(warned, ["spec.rules[0]"]);
}

#[test]
fn path_templates_follow_envoys_rules() {
    for ok in [
        "/foo/{*}",
        "/foo/{**}/",
        "/foo/{*}/bar/{**}",
        "/info*",
        "*/suffix",
        "/plain",
    ] {
        assert!(check_path_template(ok).is_ok(), "{ok}");
    }
    for bad in [
        "/*/baz/{*}",
        "/{**}/foo/{*}",
        "/foo/{*}.txt",
        "/foo/{bar}",
        "/foo//{*}",
    ] {
        assert!(check_path_template(bad).is_err(), "{bad}");
    }
}

#[test]
fn trust_domains_are_match_strings_like_principals() {
    let issues = spec_issues::<AuthorizationPolicy>(
        r#"
rules:
- from:
  - source:
      trustDomains: ["cluster.local", "*.example.com", "prod-*", "*"]
      notTrustDomains: ["legacy.local"]
  when:
  - {key: source.trustDomain, values: ["cluster.local"], notValues: ["old-*"]}
"#,
    )
    .expect("reads");
    assert!(issues.is_empty(), "{issues:?}");
    assert_errors::<AuthorizationPolicy>(
        "rules:\n- from:\n  - source: {trustDomains: [\"\"], notTrustDomains: [\"\"]}\n  when:\n  - {key: source.trustDomain, values: [\"\"]}\n",
        &[
            "spec.rules[0].from[0].source.trustDomains[0]: empty value is not allowed",
            "spec.rules[0].from[0].source.notTrustDomains[0]: empty value is not allowed",
            "spec.rules[0].when[0].values[0]: empty value is not allowed",
        ],
    );
    let warned = spec_issues::<AuthorizationPolicy>(
        "rules:\n- from: [{source: {trustDomains: [\"a*b\"]}}]\n",
    )
    .expect("reads");
    assert_eq!(errors(&warned), Vec::<String>::new());
    assert_eq!(
        warned[0].path,
        "spec.rules[0].from[0].source.trustDomains[0]"
    );
}
