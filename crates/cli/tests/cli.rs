//! The `weft` binary as a user runs it: exit codes and what it prints.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn weft(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft starts");
    if let Some(text) = stdin {
        // weft may exit before reading it all (a usage error): a broken pipe is its answer.
        let written = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes());
        if let Err(e) = written {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("weft runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const SERVICE: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"#;

#[test]
fn the_seed_examples_validate_and_analyze_with_exit_0() {
    let v = weft(&["validate", "-f", "examples/recommendation/"], None);
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    assert!(
        stdout(&v).contains("✔ 5 resources in 4 files are valid"),
        "{}",
        stdout(&v)
    );
    let a = weft(&["analyze", "-f", "examples/recommendation/"], None);
    assert_eq!(a.status.code(), Some(0), "{}", stdout(&a));
    assert!(!stdout(&a).contains("Error ["), "{}", stdout(&a));
}

#[test]
fn several_mistakes_are_all_reported_with_exit_1() {
    let text = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: -5
    - destination: {host: reviews, subset: v2}
      weight: 5
    timeout: 10
    fault: {abort: {grpcStatus: NOPE, percentage: {value: 101}}}
"#;
    let o = weft(&["validate", "-f", "-"], Some(text));
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    for expected in [
        "-:9:7: VirtualService default/reviews: spec.http[0].route[0].weight: must not be negative (got -5)",
        "-:12:14: VirtualService default/reviews: spec.http[0].timeout: expected a string",
        "spec.http[0].fault.abort.grpcStatus: unknown gRPC status \"NOPE\"",
        "spec.http[0].fault.abort.percentage.value: percentage must be in [0, 100] (got 101)",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
}

#[test]
fn a_bad_telemetry_is_reported_with_file_line_and_field() {
    let text = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: shop, namespace: shop}
spec:
  tracing:
  - randomSamplingPercentage: 150
  accessLogging:
  - filter:
      expression: "response.code >="
  metrics:
  - overrides:
    - match: {metric: REQUEST_COUNT}
      tagOverrides:
        response_flags: {operation: REMOVE, value: x}
"#;
    let o = weft(&["validate", "-f", "-"], Some(text));
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    for expected in [
        "-:6:5: Telemetry shop/shop: spec.tracing[0].randomSamplingPercentage: must be a percentage in [0, 100] (got 150)",
        "-:9:7: Telemetry shop/shop: spec.accessLogging[0].filter.expression: must be a valid CEL expression: at 1:17: Syntax error: mismatched input '<EOF>'",
        "Telemetry shop/shop: spec.metrics[0].overrides[0].tagOverrides.response_flags.value: may only be set when operation is UPSERT",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    let good = text
        .replace("150", "100")
        .replace("response.code >=", "response.code >= 400")
        .replace(", value: x", "");
    let o = weft(&["validate", "-f", "-"], Some(&good));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = weft(
        &["validate", "-f", "-"],
        Some(&good.replace("telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1")),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = weft(&["validate", "-f", "examples/telemetry/"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("2 resources"), "{}", stdout(&o));
}

#[test]
fn json_output_for_machines() {
    let o = weft(&["validate", "-o", "json", "-f", "-"], Some("a: [1,\n"));
    assert_eq!(o.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(report["valid"], false);
    assert_eq!(report["diagnostics"][0]["file"], "-");
    assert!(
        report["diagnostics"][0]["line"]
            .as_u64()
            .is_some_and(|l| l > 0)
    );
    assert!(
        report["diagnostics"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid YAML"))
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(weft(&["validate"], None).status.code(), Some(2));
    assert_eq!(
        weft(&["validate", "-f", "no/such/file.yaml"], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(weft(&["frobnicate"], None).status.code(), Some(2));
}

#[test]
fn analyze_finds_missing_subsets_dead_rules_unknown_hosts_and_empty_subsets() {
    let rules = r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v3}}]
  - match: [{uri: {prefix: /dead}}]
    route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-too}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-ingress}
spec:
  hosts: [shop.example.com]
  gateways: [istio-system/ingress]
  http:
  - route: [{destination: {host: reviews}}]
"#;
    let o = weft(&["analyze", "-f", "-"], Some(&format!("{SERVICE}{rules}")));
    // istioctl analyze's exit code for issues at the failure threshold.
    assert_eq!(o.status.code(), Some(79));
    let out = stdout(&o);
    for expected in [
        "Error [IST0101] (VirtualService default/reviews -:25) Referenced host+subset in destinationrule not found: \"reviews.default.svc.cluster.local+v3\"",
        "Error [IST0101] (VirtualService default/reviews -:27) Referenced host not found: \"ratings.default.svc.cluster.local\"",
        "Warning [IST0130] (VirtualService default/reviews -:26) VirtualService rule #1 not used",
        "Warning [WEFT0001] (DestinationRule default/reviews -:17) subset \"v2\" of reviews.default.svc.cluster.local selects no endpoint",
        "Error [IST0109]",
        "Error [IST0101] (VirtualService default/reviews-ingress -:42) Referenced gateway not found: \"istio-system/ingress\"",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
}

#[test]
fn analyze_against_a_mesh_config_finds_telemetry_entries_without_providers() {
    let dir = std::env::temp_dir().join(format!("weft-analyze-mesh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mesh = dir.join("mesh.yaml");
    std::fs::write(&mesh, "enableTracing: true\n").expect("write");
    let telemetry = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: sampling, namespace: istio-system}\nspec:\n  tracing: [{randomSamplingPercentage: 5}]\n";
    let mesh_arg = mesh.display().to_string();
    let o = weft(
        &["analyze", "-f", "-", "--mesh-config", &mesh_arg],
        Some(telemetry),
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "a warning: {out}");
    assert!(
        out.contains("Warning [IST0157] (Telemetry istio-system/sampling -:5)")
            && out.contains("names no tracing provider"),
        "{out}"
    );
    // Without the mesh config the analyzer cannot know the defaults: it stays silent.
    let o = weft(&["analyze", "-f", "-"], Some(telemetry));
    assert!(!stdout(&o).contains("IST0157"), "{}", stdout(&o));
    // A mesh config with errors is refused, naming them.
    std::fs::write(&mesh, "enableTracing: maybe\n").expect("write");
    let o = weft(
        &["analyze", "-f", "-", "--mesh-config", &mesh_arg],
        Some(telemetry),
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("enableTracing"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn analyze_finds_a_destination_rule_that_contradicts_strict_mtls() {
    let rules = r#"---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-tls}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: DISABLE}
"#;
    let o = weft(&["analyze", "-f", "-"], Some(&format!("{SERVICE}{rules}")));
    assert_eq!(o.status.code(), Some(79));
    let out = stdout(&o);
    assert!(
        out.contains("Error [WEFT0002] (DestinationRule default/reviews-tls -:")
            && out.contains("sends plaintext to reviews.default.svc.cluster.local")
            && out.contains("PeerAuthentication istio-system/default is STRICT"),
        "{out}"
    );
    // ISTIO_MUTUAL agrees with STRICT.
    let agreeing = rules.replace("DISABLE", "ISTIO_MUTUAL");
    let o = weft(
        &["analyze", "-f", "-"],
        Some(&format!("{SERVICE}{agreeing}")),
    );
    assert!(!stdout(&o).contains("WEFT0002"), "{}", stdout(&o));
}

#[test]
fn analyze_takes_istioctl_output_formats_thresholds_and_suppressions() {
    let dead = r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /dead}}]
    route: [{destination: {host: reviews, subset: v1}}]
"#;
    let input = format!("{SERVICE}{dead}");
    // Warnings alone are shown but do not fail: the failure threshold is Error.
    let o = weft(&["analyze", "-f", "-"], Some(&input));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("Warning [IST0130]"), "{}", stdout(&o));
    let o = weft(
        &["analyze", "-f", "-", "--failure-threshold", "Warning"],
        Some(&input),
    );
    assert_eq!(o.status.code(), Some(79));
    let o = weft(
        &["analyze", "-f", "-", "--output-threshold", "error"],
        Some(&input),
    );
    assert!(!stdout(&o).contains("IST0130"), "{}", stdout(&o));
    let o = weft(&["analyze", "-f", "-", "-o", "json"], Some(&input));
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let dead_rule = list
        .as_array()
        .expect("an array of messages")
        .iter()
        .find(|m| m["code"] == "IST0130")
        .expect("IST0130 in JSON");
    assert_eq!(dead_rule["level"], "Warning");
    assert_eq!(dead_rule["origin"], "VirtualService default/reviews");
    assert_eq!(dead_rule["reference"], "-:26");
    let o = weft(&["analyze", "-f", "-", "-o", "yaml"], Some(&input));
    assert!(stdout(&o).contains("code: IST0130"), "{}", stdout(&o));
    for suppress in [
        "IST0130=VirtualService reviews.default",
        "IST0130=VirtualService default/*",
    ] {
        let o = weft(&["analyze", "-f", "-", "-S", suppress], Some(&input));
        assert!(
            !stdout(&o).contains("IST0130"),
            "{suppress}: {}",
            stdout(&o)
        );
    }
    let o = weft(
        &["analyze", "-f", "-", "--suppress", "nonsense"],
        Some(&input),
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn analyze_reads_kubernetes_and_istio_kinds_together_with_exit_0() {
    let o = weft(
        &[
            "analyze",
            "-f",
            "examples/kubernetes/recommendation.yaml",
            "examples/recommendation/destination-rule.yaml",
            "examples/recommendation/virtual-service.yaml",
            "examples/up/bff-gateway.yaml",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("✔ No validation issues found when analyzing 4 files."),
        "{}",
        stdout(&o)
    );
}

#[test]
fn analyze_still_analyzes_resources_the_schema_check_reports_as_istioctl_does() {
    // A Gateway without servers is invalid (IST0106), but it exists: the VirtualService
    // bound to it references something, and a Service with an invalid port is still the
    // host its route names.
    let input = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: web, subset: v9}}]
"#;
    let o = weft(&["analyze", "-f", "-"], Some(input));
    let out = stdout(&o);
    assert!(
        out.contains("Error [IST0106] (Gateway default/gw -:4)"),
        "{out}"
    );
    assert!(out.contains("not found in Gateway default/gw"), "{out}");
    assert!(
        out.contains("Error [IST0106] (Service default/web"),
        "{out}"
    );
    assert!(!out.contains("Referenced gateway not found"), "{out}");
    assert!(!out.contains("Referenced host not found"), "{out}");
    assert!(
        out.contains(r#"Referenced host+subset in destinationrule not found: "web.default.svc.cluster.local+v9""#),
        "the other analyzers ran: {out}"
    );
    assert_eq!(o.status.code(), Some(79), "{out}");
}

#[test]
fn analyze_reports_kubernetes_findings_with_istios_codes() {
    let input = r#"apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: web, version: v1}}
  template:
    metadata: {labels: {app: web, version: v1}}
    spec: {containers: [{name: web, image: web:1, ports: [{containerPort: 8080}]}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#;
    let o = weft(&["analyze", "-f", "-"], Some(input));
    let out = stdout(&o);
    for expected in [
        "Info [IST0102] (Namespace shop -:3) The namespace is not enabled for Istio injection. Run 'kubectl label namespace shop istio-injection=enabled' to enable it",
        "Info [IST0118] (Service shop/web -:10) Port name web (port: 80, targetPort: 8080) doesn't follow the naming convention of Istio port.",
        "Error [IST0173] (DestinationRule shop/web -:26) The Subset v2 defined in the DestinationRule does not select any pods.",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    assert!(!out.contains("Subset v1"), "{out}");
    assert_eq!(o.status.code(), Some(79), "{out}");
    // istioctl names a cluster-scoped resource alone, in output and suppressions.
    let o = weft(
        &[
            "analyze",
            "-f",
            "-",
            "-o",
            "json",
            "-S",
            "IST0173=DestinationRule web.shop",
        ],
        Some(input),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let namespace = list
        .as_array()
        .expect("an array of messages")
        .iter()
        .find(|m| m["code"] == "IST0102")
        .expect("IST0102 in JSON");
    assert_eq!(namespace["origin"], "Namespace shop");
    assert_eq!(namespace["level"], "Info");
    let o = weft(
        &["analyze", "-f", "-", "-S", "IST0102=Namespace shop"],
        Some(input),
    );
    assert!(!stdout(&o).contains("IST0102"), "{}", stdout(&o));
}

#[test]
fn version_prints() {
    let o = weft(&["version"], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("weft "));
}

#[test]
fn check_authz_explains_the_decision_rule_by_rule() {
    let file = "examples/security/reviews-authz.yaml";
    let check = |from: &str, path: &str| {
        weft(
            &[
                "check", "authz", "-f", file, "--from", from, "--to", "reviews", "--path", path,
            ],
            None,
        )
    };
    let ok = check("productpage", "/reviews/1");
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("ALLOW default/from-productpage rule 0: matches"));
    // A bypass spelling is normalized first, then denied.
    let admin = check("productpage", "/x/%2e%2e//admin");
    assert_eq!(admin.status.code(), Some(1));
    let out = stdout(&admin);
    assert!(
        out.contains("GET /admin (normalized from /x/%2e%2e//admin)"),
        "{out}"
    );
    assert!(
        out.contains("DENIED (403): DENY policy default/no-admin matched"),
        "{out}"
    );
    let stranger = check("ratings", "/");
    assert_eq!(stranger.status.code(), Some(1));
    assert!(stdout(&stranger).contains("ALLOW policies apply and none matched"));
}

#[test]
fn check_authz_takes_the_callers_trust_domain() {
    let file = "examples/security/trust-domain-authz.yaml";
    let check = |td: &str| {
        weft(
            &[
                "check",
                "authz",
                "-f",
                file,
                "--from",
                "productpage",
                "--trust-domain",
                td,
                "--to",
                "reviews",
            ],
            None,
        )
    };
    let home = check("cluster.local");
    assert_eq!(home.status.code(), Some(0), "{}", stdout(&home));
    assert!(stdout(&home).contains("ALLOW default/this-mesh rule 0: matches"));
    let migrated = check("prod-eu");
    assert_eq!(migrated.status.code(), Some(0), "{}", stdout(&migrated));
    let foreign = check("legacy.local");
    assert_eq!(foreign.status.code(), Some(1), "{}", stdout(&foreign));
    assert!(stdout(&foreign).contains("legacy.local/ns/default/sa/productpage"));
}

/// An ES256 key made for the test: a token signer and the JWKS with its public key.
fn es256_key() -> (jsonwebtoken::EncodingKey, String) {
    use base64::Engine as _;
    use ring::signature::KeyPair as _;
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key");
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("key");
    let (x, y) = pair.public_key().as_ref()[1..].split_at(32);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = format!(
        r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k1","x":"{}","y":"{}"}}]}}"#,
        b64(x),
        b64(y)
    );
    (jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()), jwks)
}

#[test]
fn check_authz_verifies_a_jwt_and_decides_on_its_identity() {
    let (key, jwks) = es256_key();
    let sign = |key: &jsonwebtoken::EncodingKey, sub: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k1".into());
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs()
            + 600;
        let claims = format!(
            r#"{{"iss":"https://issuer.example","sub":"{sub}","exp":{exp},"groups":["dev"]}}"#
        );
        let claims: serde_json::Value = serde_json::from_str(&claims).expect("json");
        jsonwebtoken::encode(&header, &claims, key).expect("signs")
    };
    let dir = weft_testkit::fresh_dir("check-jwt");
    let file = dir.join("jwt.yaml");
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: reviews}}}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: users, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules: [{{issuer: "https://issuer.example", jwks: '{jwks}'}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: devs, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  rules:
  - from: [{{source: {{requestPrincipals: ["https://issuer.example/*"]}}}}]
    when: [{{key: "request.auth.claims[groups]", values: [dev]}}]
"#
        ),
    )
    .expect("write");
    let file = file.to_str().expect("utf-8 path");
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "authz", "-f", file, "--to", "reviews"];
        args.extend_from_slice(extra);
        weft(&args, None)
    };
    let good = sign(&key, "alice");
    let ok = check(&["--jwt", &good]);
    let out = stdout(&ok);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(
        out.contains(r#""sub":"alice""#),
        "the claims are shown: {out}"
    );
    assert!(
        out.contains("verified: request principal https://issuer.example/alice"),
        "{out}"
    );
    assert!(out.contains("ALLOWED"), "{out}");
    let none = check(&[]);
    assert_eq!(none.status.code(), Some(1));
    assert!(stdout(&none).contains("DENIED (403)"), "{}", stdout(&none));
    let (other, _) = es256_key();
    let forged = check(&["--jwt", &sign(&other, "alice")]);
    assert_eq!(forged.status.code(), Some(1));
    assert!(
        stdout(&forged).contains("REFUSED (401): Jwt verification fails"),
        "{}",
        stdout(&forged)
    );
}

#[test]
fn mesh_configs_validate_as_files_or_config_maps_and_refuse_what_weft_lacks_by_name() {
    let example = "examples/mesh-config/istio-configmap.yaml";
    let v = weft(&["validate", "--mesh-config", example], None);
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    assert!(stdout(&v).contains("and a mesh config"), "{}", stdout(&v));
    let v = weft(&["validate", "-f", example], None);
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));

    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n    meshMTLS:\n      minProtocolVersion: TLSV1_3\n    defaultProviders:\n      tracing: [jaeger]\n";
    let v = weft(&["validate", "-f", "-"], Some(text));
    assert_eq!(v.status.code(), Some(1));
    let out = stdout(&v);
    assert!(
        out.contains("-:6:5: data.mesh: meshMTLS: weft does not implement meshConfig.meshMTLS"),
        "{out}"
    );
    assert!(
        out.contains(
            "-:9:17: data.mesh: defaultProviders.tracing[0]: provider `jaeger` is not defined"
        ),
        "{out}"
    );
}

#[test]
fn check_authz_fetches_the_keys_of_a_jwks_uri() {
    use std::io::{Read, Write};
    let (key, jwks) = es256_key();
    // The issuer: answers every request with the key set.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                jwks.len()
            );
        }
    });
    let dir = weft_testkit::fresh_dir("check-jwks-uri");
    let file = dir.join("jwt.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  workloadSelector: {{labels: {{app: reviews}}}}\n---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: users, namespace: default}}\nspec:\n  jwtRules: [{{issuer: \"https://issuer.example\", jwksUri: \"http://{addr}/jwks\"}}]\n"
        ),
    )
    .expect("write");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let claims: serde_json::Value =
        serde_json::from_str(r#"{"iss":"https://issuer.example","sub":"carol"}"#).expect("json");
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("signs");
    let o = weft(
        &[
            "check",
            "authz",
            "-f",
            file.to_str().expect("utf-8"),
            "--to",
            "reviews",
            "--jwt",
            &token,
        ],
        None,
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("verified: request principal https://issuer.example/carol"),
        "{out}"
    );
}

#[test]
fn the_control_plane_refuses_to_start_on_a_bad_mesh_config() {
    let dir = std::env::temp_dir().join(format!("weft-mesh-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("mesh.yaml");
    std::fs::write(
        &file,
        "enableTracing: true\ndefaultConfig:\n  discoveryAddress: istiod:15012\n",
    )
    .expect("written");
    let o = weft(
        &[
            "control",
            "--mesh-config",
            file.to_str().expect("path"),
            "--state-dir",
            dir.join("state").to_str().expect("path"),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mesh.yaml:3:3: defaultConfig.discoveryAddress: weft does not implement meshConfig.defaultConfig.discoveryAddress"),
        "{err}"
    );
}

/// A reader that goes away (`weft ... | head`) ends weft quietly with status 141, as a
/// Unix tool ended by SIGPIPE, not with a panic's 101 and its message.
#[test]
fn a_closed_stdout_ends_weft_quietly() {
    let script = format!(
        "'{}' version | (exec 0<&-; sleep 0.3); echo \"status=${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_weft")
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.trim(), "status=141", "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
