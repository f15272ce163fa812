//! The decision, field by field: sources, operations, `when` keys, the `not` forms, and
//! Istio's order (DENY, then ALLOW, AUDIT only recorded).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;

struct Headers(BTreeMap<&'static str, &'static str>);

impl crate::matcher::RequestHeaders for Headers {
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.get(name).map(|v| Cow::Borrowed(*v))
    }
}

/// The policies of `yaml` as a `reviews` workload in `default` sees them.
fn authz(yaml: &str) -> Authz {
    let loaded = weft_api::load_str("t.yaml", yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let resources: Vec<Resource> = loaded.resources.into_iter().map(|l| l.resource).collect();
    let scope = ProxyScope {
        namespace: "default".into(),
        labels: [("app".to_string(), "reviews".to_string())]
            .into_iter()
            .collect(),
        gateway: false,
    };
    build(&resources, &scope)
}

/// A request; `from` is the caller's principal (`None`: plaintext).
struct Call {
    from: Option<&'static str>,
    ip: &'static str,
    remote: &'static str,
    port: u16,
    method: &'static str,
    path: &'static str,
    headers: BTreeMap<&'static str, &'static str>,
    auth: Option<crate::authn::RequestAuth>,
}

impl Default for Call {
    fn default() -> Self {
        Call {
            from: Some("cluster.local/ns/default/sa/productpage"),
            ip: "10.0.0.7",
            remote: "10.0.0.7",
            port: 9080,
            method: "GET",
            path: "/reviews/1",
            headers: BTreeMap::new(),
            auth: None,
        }
    }
}

/// `f` of the request `c` describes.
fn with_request<T>(c: &Call, f: impl FnOnce(&AuthzRequest<'_>) -> T) -> T {
    let headers = Headers(c.headers.clone());
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    f(&AuthzRequest {
        principal: c.from,
        source_ip: ip(c.ip),
        remote_ip: ip(c.remote),
        destination_ip: Some(ip("10.0.0.2")),
        destination_port: c.port,
        sni: None,
        http: Some(HttpAttributes {
            host: "reviews",
            method: c.method,
            path: c.path,
            headers: &headers,
            auth: c.auth.as_ref(),
        }),
    })
}

fn allowed(a: &Authz, c: &Call) -> bool {
    with_request(c, |r| a.decide(r).allowed)
}

fn policy(action: &str, rules: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: default}}\nspec:\n  action: {action}\n  rules:\n{rules}"
    )
}

#[test]
fn sources_match_namespaces_principals_and_ip_blocks_with_their_not_forms() {
    let a = authz(&policy(
        "ALLOW",
        "  - from:\n    - source:\n        namespaces: [default]\n        notPrincipals: [cluster.local/ns/default/sa/ratings]\n        ipBlocks: [10.0.0.0/24]\n        notIpBlocks: [10.0.0.9]\n        remoteIpBlocks: [10.0.0.0/8]\n",
    ));
    assert!(allowed(&a, &Call::default()));
    let call = |f: fn(&mut Call)| {
        let mut c = Call::default();
        f(&mut c);
        allowed(&a, &c)
    };
    assert!(
        !call(|c| c.from = Some("cluster.local/ns/other/sa/productpage")),
        "namespace"
    );
    assert!(
        !call(|c| c.from = Some("cluster.local/ns/default/sa/ratings")),
        "notPrincipals"
    );
    assert!(
        !call(|c| c.from = None),
        "no identity: namespaces cannot match"
    );
    assert!(!call(|c| c.ip = "10.0.1.7"), "ipBlocks");
    assert!(!call(|c| c.ip = "10.0.0.9"), "notIpBlocks");
    assert!(!call(|c| c.remote = "192.168.1.1"), "remoteIpBlocks");
}

#[test]
fn operations_match_ports_methods_and_paths_with_their_not_forms() {
    let a = authz(&policy(
        "ALLOW",
        "  - to:\n    - operation:\n        ports: [\"9080\"]\n        methods: [GET, HEAD]\n        notMethods: [HEAD]\n        paths: [/reviews/*]\n        notPaths: [/reviews/admin]\n",
    ));
    assert!(allowed(&a, &Call::default()));
    let call = |f: fn(&mut Call)| {
        let mut c = Call::default();
        f(&mut c);
        allowed(&a, &c)
    };
    assert!(!call(|c| c.port = 9090), "ports");
    assert!(!call(|c| c.method = "POST"), "methods");
    assert!(!call(|c| c.method = "HEAD"), "notMethods");
    assert!(!call(|c| c.path = "/ratings/1"), "paths");
    assert!(!call(|c| c.path = "/reviews/admin"), "notPaths");
}

#[test]
fn when_conditions_read_headers_source_destination_and_their_not_values() {
    let a = authz(&policy(
        "ALLOW",
        "  - when:\n    - key: request.headers[x-tenant]\n      values: [blue]\n    - key: source.ip\n      values: [10.0.0.0/24]\n    - key: source.principal\n      notValues: [cluster.local/ns/default/sa/ratings]\n    - key: source.namespace\n      values: [default]\n    - key: destination.port\n      values: [\"9080\"]\n",
    ));
    let blue = || {
        let mut c = Call::default();
        c.headers.insert("x-tenant", "blue");
        c
    };
    assert!(allowed(&a, &blue()));
    assert!(!allowed(&a, &Call::default()), "request.headers");
    let mut c = blue();
    c.ip = "10.9.0.1";
    assert!(!allowed(&a, &c), "source.ip");
    let mut c = blue();
    c.from = Some("cluster.local/ns/default/sa/ratings");
    assert!(!allowed(&a, &c), "source.principal notValues");
    let mut c = blue();
    c.from = Some("cluster.local/ns/other/sa/productpage");
    assert!(!allowed(&a, &c), "source.namespace");
    let mut c = blue();
    c.port = 8080;
    assert!(!allowed(&a, &c), "destination.port");
}

#[test]
fn deny_wins_allow_must_match_and_audit_only_records() {
    let yaml = format!(
        "{}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: no-admin, namespace: default}}\nspec:\n  action: DENY\n  rules:\n  - to: [{{operation: {{paths: [/admin]}}}}]\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: watch, namespace: default}}\nspec:\n  action: AUDIT\n  rules:\n  - to: [{{operation: {{methods: [DELETE]}}}}]\n",
        policy(
            "ALLOW",
            "  - to: [{operation: {paths: [/admin, /reviews/*]}}]\n"
        )
    );
    let a = authz(&yaml);
    let admin = Call {
        path: "/admin",
        ..Default::default()
    };
    assert!(!allowed(&a, &admin), "DENY wins over a matching ALLOW");
    let other = Call {
        path: "/other",
        ..Default::default()
    };
    assert!(
        !allowed(&a, &other),
        "an ALLOW policy applies, so the request must match it"
    );
    let delete = Call {
        method: "DELETE",
        ..Default::default()
    };
    let headers = Headers(BTreeMap::new());
    let verdict = a.decide(&AuthzRequest {
        principal: delete.from,
        source_ip: delete.ip.parse().expect("ip"),
        remote_ip: delete.remote.parse().expect("ip"),
        destination_ip: None,
        destination_port: delete.port,
        sni: None,
        http: Some(HttpAttributes {
            host: "reviews",
            method: delete.method,
            path: delete.path,
            headers: &headers,
            auth: None,
        }),
    });
    assert!(verdict.allowed, "AUDIT never denies");
    assert_eq!(verdict.audited, ["default/watch"]);
}

#[test]
fn trust_domains_match_the_peer_identitys_trust_domain_as_match_strings() {
    let call = |a: &Authz, from: Option<&'static str>| {
        allowed(
            a,
            &Call {
                from,
                ..Call::default()
            },
        )
    };
    let exact = authz(&policy(
        "ALLOW",
        "  - from:\n    - source:\n        trustDomains: [cluster.local]\n",
    ));
    assert!(call(
        &exact,
        Some("cluster.local/ns/default/sa/productpage")
    ));
    assert!(!call(&exact, Some("other.local/ns/default/sa/productpage")));
    assert!(
        !call(&exact, Some("cluster.localx/ns/default/sa/productpage")),
        "the whole trust domain, not a prefix of the principal"
    );
    assert!(!call(&exact, None), "plaintext: no trust domain");

    let wildcards = authz(&policy(
        "ALLOW",
        "  - from:\n    - source:\n        trustDomains: [\"prod-*\", \"*.example.com\"]\n",
    ));
    assert!(call(&wildcards, Some("prod-eu/ns/a/sa/b")));
    assert!(call(&wildcards, Some("mesh.example.com/ns/a/sa/b")));
    assert!(!call(&wildcards, Some("staging/ns/a/sa/b")));

    let any = authz(&policy(
        "ALLOW",
        "  - from:\n    - source:\n        trustDomains: [\"*\"]\n",
    ));
    assert!(call(&any, Some("anything/ns/a/sa/b")));
    assert!(!call(&any, None), "`*` needs an identity, as principals");

    let not = authz(&policy(
        "DENY",
        "  - from:\n    - source:\n        notTrustDomains: [cluster.local]\n",
    ));
    assert!(call(&not, Some("cluster.local/ns/a/sa/b")));
    assert!(!call(&not, Some("foreign.org/ns/a/sa/b")));
    assert!(
        !call(&not, None),
        "a plaintext peer has no trust domain, so it holds notTrustDomains (as notPrincipals) and is denied"
    );
}

#[test]
fn the_source_trust_domain_condition_reads_the_peer_identity() {
    let a = authz(&policy(
        "ALLOW",
        "  - when:\n    - key: source.trustDomain\n      values: [\"*.local\"]\n      notValues: [legacy.local]\n",
    ));
    let call = |from| {
        allowed(
            &a,
            &Call {
                from,
                ..Call::default()
            },
        )
    };
    assert!(call(Some("cluster.local/ns/a/sa/b")));
    assert!(!call(Some("legacy.local/ns/a/sa/b")), "notValues");
    assert!(!call(Some("example.org/ns/a/sa/b")), "values");
    assert!(!call(None), "plaintext: no value");
}

/// A verified token of `iss`/`alice` with a list claim and a nested claim.
fn token() -> Option<crate::authn::RequestAuth> {
    let claims = serde_json::json!({
        "iss": "https://issuer.example", "sub": "alice", "aud": ["reviews", "ratings"], "azp": "web",
        "groups": ["admin", "dev"], "org": {"team": "blue"}
    });
    Some(crate::authn::RequestAuth {
        principal: "https://issuer.example/alice".into(),
        audiences: vec!["reviews".into(), "ratings".into()],
        presenter: Some("web".into()),
        claims: claims.as_object().cloned().unwrap_or_default(),
    })
}

#[test]
fn request_principals_need_a_verified_token() {
    let any = authz(&policy(
        "ALLOW",
        "  - from: [{source: {requestPrincipals: [\"*\"]}}]\n",
    ));
    assert!(
        !allowed(&any, &Call::default()),
        "no token: requestPrincipals [*] denies"
    );
    let with_token = Call {
        auth: token(),
        ..Default::default()
    };
    assert!(allowed(&any, &with_token));
    let exact = authz(&policy(
        "ALLOW",
        "  - from: [{source: {requestPrincipals: [\"https://issuer.example/alice\"]}}]\n",
    ));
    assert!(allowed(&exact, &with_token));
    let prefix = authz(&policy(
        "ALLOW",
        "  - from: [{source: {requestPrincipals: [\"https://other.example/*\"]}}]\n",
    ));
    assert!(!allowed(&prefix, &with_token));
    let not = authz(&policy(
        "DENY",
        "  - from: [{source: {notRequestPrincipals: [\"*\"]}}]\n",
    ));
    assert!(!allowed(&not, &Call::default()), "DENY without a token");
    assert!(allowed(&not, &with_token));
}

#[test]
fn request_auth_conditions_read_the_token() {
    let with_token = Call {
        auth: token(),
        ..Default::default()
    };
    let cases = [
        (
            "request.auth.principal",
            "values: [\"https://issuer.example/alice\"]",
            true,
        ),
        ("request.auth.principal", "values: [\"*/bob\"]", false),
        ("request.auth.audiences", "values: [ratings]", true),
        ("request.auth.audiences", "notValues: [ratings]", false),
        ("request.auth.presenter", "values: [web]", true),
        (
            "request.auth.claims[iss]",
            "values: [\"https://issuer.example\"]",
            true,
        ),
        ("request.auth.claims[groups]", "values: [dev]", true),
        ("request.auth.claims[groups]", "values: [ops]", false),
        ("request.auth.claims[groups]", "notValues: [admin]", false),
        ("request.auth.claims[org][team]", "values: [blue]", true),
        ("request.auth.claims[org][team]", "values: [red]", false),
        ("request.auth.claims[missing]", "notValues: [x]", true),
    ];
    for (key, values, want) in cases {
        let a = authz(&policy(
            "ALLOW",
            &format!("  - when:\n    - key: {key}\n      {values}\n"),
        ));
        assert_eq!(allowed(&a, &with_token), want, "{key} {values}");
    }
    // Without a token every request.auth key is absent.
    let a = authz(&policy(
        "ALLOW",
        "  - when:\n    - key: request.auth.claims[groups]\n      values: [dev]\n",
    ));
    assert!(!allowed(&a, &Call::default()));
}

fn custom_provider(a: &Authz, c: &Call) -> Option<Result<String, String>> {
    with_request(c, |r| a.custom_provider(r).map(|p| p.map(str::to_string)))
}

fn custom(name: &str, provider: &str, path: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}}}
spec:
  action: CUSTOM
  provider: {{name: {provider}}}
  rules: [{{to: [{{operation: {{paths: [\"{path}\"]}}}}]}}]
---
"
    )
}

#[test]
fn custom_policies_name_the_provider_to_ask_and_only_one_per_workload() {
    let a = authz(&custom("ext", "opa", "/admin/*"));
    let admin = Call {
        path: "/admin/x",
        ..Call::default()
    };
    assert_eq!(custom_provider(&a, &admin), Some(Ok("opa".to_string())));
    assert_eq!(
        custom_provider(&a, &Call::default()),
        None,
        "no rule matches"
    );
    assert!(
        allowed(&a, &admin),
        "CUSTOM alone leaves DENY/ALLOW to allow"
    );
    let two = authz(&format!(
        "{}{}",
        custom("a", "opa", "/admin/*"),
        custom("b", "other", "/other")
    ));
    let Some(Err(why)) = custom_provider(&two, &admin) else {
        panic!("two providers on one workload");
    };
    assert!(
        why.contains("name different providers (opa, other)"),
        "{why}"
    );
}
