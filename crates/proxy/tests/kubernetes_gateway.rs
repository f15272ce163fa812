//! Gateway API Gateways as a client outside the mesh sees them: the proxy labelled with a
//! Gateway's name serves its listeners, and the HTTPRoutes attached to them route it.
//! Each test is named after the Gateway API conformance test it corresponds to
//! (kubernetes-sigs/gateway-api, conformance/tests); the scenarios are this repository's.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::pki::{Pki, curl, secret, text};
use common::{Harness, service};
use weft_testkit::client::{Send, direct, h2};
use weft_testkit::upstream;

/// A Gateway `infra/web` of class `class` with `listeners` (YAML list items).
fn gateway(class: &str, listeners: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: web, namespace: infra}}\nspec:\n  gatewayClassName: {class}\n  listeners:\n{listeners}---\n"
    )
}

/// An HTTPRoute `ns/name` with `spec` (indented YAML).
fn route(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}---\n"
    )
}

/// A Service `name` in namespace `ns` (a ServiceEntry for `name.ns.svc.cluster.local`).
fn service_in(ns: &str, name: &str, addr: SocketAddr) -> String {
    service_with(ns, name, addr, "HTTP")
}

/// [`service_in`] with the port's protocol.
fn service_with(ns: &str, name: &str, addr: SocketAddr, protocol: &str) -> String {
    service(name, 8080, protocol, &[(addr, "v1")])
        .replace("namespace: default", &format!("namespace: {ns}"))
        .replace(&format!("{name}.default.svc"), &format!("{name}.{ns}.svc"))
}

async fn status_and_body(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let url = format!("http://{host}{path}");
    let got = direct(
        addr,
        Send {
            url: &url,
            ..Default::default()
        },
    )
    .await;
    (got.status.as_u16(), got.body)
}

fn port(h: &Harness, listener_port: u16) -> SocketAddr {
    h.proxy
        .gateways
        .iter()
        .find(|(p, _)| *p == listener_port)
        .expect("listener port")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_simple_same_namespace_and_hostname_intersection() {
    let web = upstream::named("web").await;
    let api = upstream::named("api").await;
    let yaml = format!(
        "{}{}{}{}{}",
        service_in("infra", "web", web.addr),
        service_in("infra", "api", api.addr),
        gateway(
            "weft",
            "  - {name: http, port: 80, protocol: HTTP}\n  - {name: wild, port: 80, protocol: HTTP, hostname: \"*.example.com\"}\n"
        ),
        // HTTPRouteSimpleSameNamespace: no hostnames, attached to the Gateway.
        route(
            "infra",
            "web",
            "  parentRefs: [{name: web, sectionName: http}]\n  rules:\n  - backendRefs: [{name: web, port: 8080}]\n"
        ),
        // HTTPRouteHostnameIntersection: a.example.com and other.org on the *.example.com
        // listener: only a.example.com is served.
        route(
            "infra",
            "api",
            "  parentRefs: [{name: web, sectionName: wild}]\n  hostnames: [a.example.com, other.org]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /api}}]\n    backendRefs: [{name: api, port: 8080}]\n"
        ),
    );
    let h = Harness::kubernetes_gateway(&yaml, "infra", "web", &[80]).await;
    let addr = port(&h, 80);
    assert_eq!(
        status_and_body(addr, "anything.test", "/").await,
        (200, "web".into())
    );
    assert_eq!(
        status_and_body(addr, "a.example.com", "/api/x").await,
        (200, "api".into())
    );
    // b.example.com is the wildcard listener's, where only `api` attached, for a.example.com.
    assert_eq!(
        status_and_body(addr, "b.example.com", "/api/x").await.0,
        404
    );
    // other.org does not intersect the listener: the route is not served under it (the
    // catch-all listener's `web` route answers).
    assert_eq!(
        status_and_body(addr, "other.org", "/api/x").await,
        (200, "web".into())
    );
    assert!(api.hits() >= 1 && web.hits() >= 2);
}

/// HTTPRouteMatchingAcrossRoutes, with hostnames (the HTTPRoute `hostnames` precedence):
/// a request is matched against the rules of the routes served under its exact name
/// first, then under the wildcards covering it, the most specific first, on its listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_rules_fall_back_from_exact_to_wildcard_hostnames() {
    let exact = upstream::named("exact").await;
    let wild = upstream::named("wild").await;
    let any = upstream::named("any").await;
    let yaml = format!(
        "{}{}{}{}{}{}{}",
        service_in("infra", "exact", exact.addr),
        service_in("infra", "wild", wild.addr),
        service_in("infra", "any", any.addr),
        gateway("weft", "  - {name: http, port: 80, protocol: HTTP}\n"),
        route(
            "infra",
            "exact",
            "  parentRefs: [{name: web}]\n  hostnames: [a.example.com]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /api}}]\n    backendRefs: [{name: exact, port: 8080}]\n"
        ),
        route(
            "infra",
            "wild",
            "  parentRefs: [{name: web}]\n  hostnames: [\"*.example.com\"]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /api/long}}]\n    backendRefs: [{name: wild, port: 8080}]\n  - matches: [{path: {type: PathPrefix, value: /w}}]\n    backendRefs: [{name: wild, port: 8080}]\n"
        ),
        route(
            "infra",
            "any",
            "  parentRefs: [{name: web}]\n  rules:\n  - backendRefs: [{name: any, port: 8080}]\n"
        ),
    );
    let h = Harness::kubernetes_gateway(&yaml, "infra", "web", &[80]).await;
    let addr = port(&h, 80);
    for (host, path, want) in [
        // The exact name's rule first, even against a longer path of the wildcard's.
        ("a.example.com", "/api/long/x", "exact"),
        // No rule of a.example.com's matches: the wildcard's, then the catch-all's.
        ("a.example.com", "/w/x", "wild"),
        ("a.example.com", "/", "any"),
        ("b.example.com", "/api/long", "wild"),
        ("b.example.com", "/api", "any"),
        ("other.test", "/w", "any"),
    ] {
        assert_eq!(
            status_and_body(addr, host, path).await,
            (200, want.to_string()),
            "{host}{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_allowed_routes_and_http_route_reference_grant() {
    let same = upstream::named("same").await;
    let shop = upstream::named("shop").await;
    let yaml = format!(
        "{}{}{}{}{}{}",
        service_in("infra", "same", same.addr),
        service_in("shop", "shop", shop.addr),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {expose: \"yes\"}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\n",
        gateway(
            "istio",
            "  - {name: same, port: 80, protocol: HTTP, hostname: same.test}\n  - name: selected\n    port: 80\n    protocol: HTTP\n    hostname: shop.test\n    allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {expose: \"yes\"}}}}\n"
        ),
        // GatewayInvalidRouteKind-like: a route from `shop` on the Same-only listener is
        // not admitted; on the Selector listener it is.
        route(
            "shop",
            "shop",
            "  parentRefs: [{name: web, namespace: infra}]\n  rules:\n  - backendRefs: [{name: shop, port: 8080}]\n"
        ),
        // A route from `other` (not selected) attaching to both listeners gets neither;
        // its backend in `infra` would need a ReferenceGrant anyway.
        route(
            "other",
            "other",
            "  parentRefs: [{name: web, namespace: infra}]\n  hostnames: [same.test]\n  rules:\n  - backendRefs: [{name: same, namespace: infra, port: 8080}]\n"
        ),
    );
    let h = Harness::kubernetes_gateway(&yaml, "infra", "web", &[80]).await;
    let addr = port(&h, 80);
    assert_eq!(
        status_and_body(addr, "shop.test", "/").await,
        (200, "shop".into())
    );
    assert_eq!(
        status_and_body(addr, "same.test", "/").await.0,
        404,
        "no route admitted on the Same listener"
    );

    // HTTPRouteReferenceGrant: a route in `shop` on the Same listener's hostname is not
    // admitted; one in `infra` pointing at shop's Service answers 500 without a grant and
    // 200 with one.
    let cross = route(
        "infra",
        "cross",
        "  parentRefs: [{name: web, sectionName: same}]\n  rules:\n  - backendRefs: [{name: shop, namespace: shop, port: 8080}]\n",
    );
    h.write(&format!("{yaml}{cross}"));
    weft_testkit::eventually(
        "a 500 for the unpermitted backend",
        Duration::from_secs(10),
        || async { (status_and_body(addr, "same.test", "/").await.0 == 500).then_some(()) },
    )
    .await;
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: from-infra, namespace: shop}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]\n  to: [{group: \"\", kind: Service}]\n---\n";
    h.write(&format!("{yaml}{cross}{grant}"));
    weft_testkit::eventually(
        "the granted backend answering",
        Duration::from_secs(10),
        || async {
            (status_and_body(addr, "same.test", "/").await == (200, "shop".into())).then_some(())
        },
    )
    .await;
    assert_eq!(same.hits(), 0, "the route from `other` never attached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_https_listener_terminates_with_certificate_files() {
    let web = upstream::named("web").await;
    let dir = weft_testkit::fresh_dir("kube-gateway-https");
    let pki = Pki::new(&dir, "server");
    let (cert, key) = pki.issue("web", &["web.example.com"]);
    let yaml = format!(
        "{}{}{}",
        service_in("infra", "web", web.addr),
        gateway(
            "weft",
            &format!(
                "  - name: https\n    port: 443\n    protocol: HTTPS\n    hostname: web.example.com\n    tls:\n      mode: Terminate\n      options: {{weft.dev/server-certificate: {cert}, weft.dev/private-key: {key}}}\n"
            )
        ),
        route(
            "infra",
            "web",
            "  parentRefs: [{name: web}]\n  rules:\n  - backendRefs: [{name: web, port: 8080}]\n"
        ),
    );
    let h = Harness::kubernetes_gateway(&yaml, "infra", "web", &[443]).await;
    let addr = port(&h, 443);
    let out = curl(
        addr,
        "https://web.example.com:PORT/",
        Some(&pki.ca_file()),
        &[],
    )
    .await;
    assert_eq!(text(&out).trim(), "web\n200", "{out:?}");
}

/// Conformance GatewaySecretReferenceGrantAllInNamespace (and HTTPRouteHTTPSListener):
/// HTTPS listeners terminate with the Secrets their certificateRefs name, one in the
/// Gateway's namespace, one in another namespace whose ReferenceGrant allows it; a
/// listener whose Secret is in a namespace without a grant is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_secret_reference_grant_all_in_namespace() {
    let web = upstream::named("web").await;
    let dir = weft_testkit::fresh_dir("kube-gateway-secrets");
    let pki = Pki::new(&dir, "server");
    let (a_cert, a_key) = pki.issue("a", &["a.example.com"]);
    let (b_cert, b_key) = pki.issue("b", &["b.example.com"]);
    let tls = |ns: &str, name: &str, cert: &str, key: &str| {
        secret(
            ns,
            name,
            "kubernetes.io/tls",
            &[("tls.crt", cert), ("tls.key", key)],
        )
    };
    let listener = |name: &str, host: &str, cert_ref: &str| {
        format!(
            "  - name: {name}\n    port: 443\n    protocol: HTTPS\n    hostname: {host}\n    tls:\n      certificateRefs: [{cert_ref}]\n"
        )
    };
    let yaml = format!(
        "{}{}{}{}{}{}apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: gateways, namespace: certs}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}}]\n  to: [{{group: '', kind: Secret}}]\n---\n",
        service_in("infra", "web", web.addr),
        tls("infra", "a-cert", &a_cert, &a_key),
        tls("certs", "b-cert", &b_cert, &b_key),
        tls("locked", "b-cert", &b_cert, &b_key),
        gateway(
            "weft",
            &[
                listener("a", "a.example.com", "{name: a-cert}"),
                listener("b", "b.example.com", "{name: b-cert, namespace: certs}"),
                listener("c", "c.example.com", "{name: b-cert, namespace: locked}"),
            ]
            .concat()
        ),
        route(
            "infra",
            "web",
            "  parentRefs: [{name: web}]\n  rules:\n  - backendRefs: [{name: web, port: 8080}]\n"
        ),
    );
    let h = Harness::kubernetes_gateway(&yaml, "infra", "web", &[443]).await;
    let addr = port(&h, 443);
    for host in ["a.example.com", "b.example.com"] {
        let out = curl(
            addr,
            &format!("https://{host}:PORT/"),
            Some(&pki.ca_file()),
            &[],
        )
        .await;
        assert_eq!(text(&out).trim(), "web\n200", "{host}: {out:?}");
    }
    let refused = curl(addr, "https://c.example.com:PORT/", None, &["-k"]).await;
    assert!(
        !refused.status.success(),
        "no grant in `locked`: {}",
        text(&refused)
    );
    assert_eq!(web.hits(), 2);
}

/// A ConfigMap `ns/name` holding the PEM file `path` as `ca.crt`.
fn ca_config_map(ns: &str, name: &str, path: &str) -> String {
    let pem = std::fs::read_to_string(path).expect("read the CA");
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata:\n  ca.crt: |\n{indented}---\n"
    )
}

/// Conformance GatewayFrontendClientCertificateValidation and its InsecureFallback form:
/// the Gateway's `spec.tls.frontend` validates client certificates by the ConfigMaps'
/// CA bundles, `default` on port 443, the `perPort` entry on 8443 (AllowInsecureFallback:
/// a client without a certificate gets through, one whose certificate another CA signed
/// does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_frontend_client_certificate_validation() {
    let web = upstream::named("web").await;
    let dir = weft_testkit::fresh_dir("kube-gateway-client-certs");
    let server = Pki::new(&dir, "server");
    let clients = Pki::new(&dir, "clients");
    let others = Pki::new(&dir, "others");
    let (cert, key) = server.issue("web", &["web.example.com"]);
    let (alice, alice_key) = clients.issue("alice", &["alice.example.com"]);
    let (olga, olga_key) = others.issue("olga", &["olga.example.com"]);
    let listener = |name: &str, port: u16| {
        format!(
            "  - {{name: {name}, port: {port}, protocol: HTTPS, hostname: web.example.com, tls: {{certificateRefs: [{{name: web-cert}}]}}}}\n"
        )
    };
    let yaml = format!(
        "{}{}{}{}apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: web, namespace: infra}}\nspec:\n  gatewayClassName: weft\n  tls:\n    frontend:\n      default:\n        validation: {{caCertificateRefs: [{{group: '', kind: ConfigMap, name: clients-ca}}]}}\n      perPort:\n      - port: 8443\n        tls:\n          validation: {{mode: AllowInsecureFallback, caCertificateRefs: [{{group: '', kind: ConfigMap, name: clients-ca}}]}}\n  listeners:\n{}{}---\n{}",
        service_in("infra", "web", web.addr),
        secret(
            "infra",
            "web-cert",
            "kubernetes.io/tls",
            &[("tls.crt", &cert), ("tls.key", &key)]
        ),
        ca_config_map("infra", "clients-ca", &clients.ca_file()),
        ca_config_map("infra", "others-ca", &others.ca_file()),
        listener("https", 443),
        listener("https-8443", 8443),
        route(
            "infra",
            "web",
            "  parentRefs: [{name: web}]\n  rules:\n  - backendRefs: [{name: web, port: 8080}]\n"
        ),
    );
    let h = Harness::kubernetes_gateway(&yaml, "infra", "web", &[443, 8443]).await;
    let trust = server.ca_file();
    let url = "https://web.example.com:PORT/";
    let with = |cert: &str, key: &str| ["--cert", cert, "--key", key].map(String::from);
    let call = |port: u16, args: Vec<String>| {
        let addr = self::port(&h, port);
        let trust = trust.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(addr, url, Some(&trust), &args).await
        }
    };
    // 443 (default, AllowValidOnly): a certificate the ConfigMap's CA signed is required.
    let got = call(443, with(&alice, &alice_key).to_vec()).await;
    assert_eq!(
        text(&got).trim(),
        "web\n200",
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let none = call(443, Vec::new()).await;
    assert!(
        !text(&none).starts_with("web"),
        "no certificate on 443: {}",
        text(&none)
    );
    let other = call(443, with(&olga, &olga_key).to_vec()).await;
    assert!(
        !text(&other).starts_with("web"),
        "another CA's certificate: {}",
        text(&other)
    );
    // 8443 (AllowInsecureFallback): none is fine; one that does not verify is not.
    let none = call(8443, Vec::new()).await;
    assert_eq!(
        text(&none).trim(),
        "web\n200",
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
    let got = call(8443, with(&alice, &alice_key).to_vec()).await;
    assert_eq!(
        text(&got).trim(),
        "web\n200",
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let other = call(8443, with(&olga, &olga_key).to_vec()).await;
    assert!(
        !text(&other).starts_with("web"),
        "another CA's certificate on 8443: {}",
        text(&other)
    );
    assert_eq!(web.hits(), 3);
}

/// A gateway is no open proxy: an absolute-form request for an address (an endpoint's,
/// or the gateway's own admin listener) that no listener hostname serves is answered
/// 404, never passed through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_does_not_pass_requests_through_to_addresses() {
    let web = upstream::named("web").await;
    let yaml = format!(
        "{}{}{}",
        service_in("infra", "web", web.addr),
        gateway(
            "weft",
            "  - {name: http, port: 80, protocol: HTTP, hostname: web.example.com}\n"
        ),
        route(
            "infra",
            "web",
            "  parentRefs: [{name: web}]\n  rules:\n  - backendRefs: [{name: web, port: 8080}]\n"
        ),
    );
    let h = Harness::kubernetes_gateway(&yaml, "infra", "web", &[80]).await;
    let addr = port(&h, 80);
    for target in [web.addr, h.proxy.admin] {
        let got = weft_testkit::client::get(addr, &format!("http://{target}/config_dump")).await;
        assert_eq!(got.status.as_u16(), 404, "{target}: {}", got.body);
    }
    assert_eq!(web.hits(), 0);
    assert_eq!(status_and_body(addr, "web.example.com", "/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_class_of_another_controller_is_not_served() {
    let web = upstream::named("web").await;
    let yaml = format!(
        "{}{}{}{}",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: other}\nspec: {controllerName: example.com/other}\n---\n",
        service_in("infra", "web", web.addr),
        gateway("other", "  - {name: http, port: 80, protocol: HTTP}\n"),
        route(
            "infra",
            "web",
            "  parentRefs: [{name: web}]\n  rules:\n  - backendRefs: [{name: web, port: 8080}]\n"
        ),
    );
    let h = Harness::kubernetes_gateway(&yaml, "infra", "web", &[80]).await;
    let addr = port(&h, 80);
    assert_eq!(status_and_body(addr, "x.test", "/").await.0, 404);
    assert_eq!(web.hits(), 0);
}

/// A gRPC call to `path` (`/package.Service/Method`) over HTTP/2 at `addr`: the status and
/// the body (the answering upstream's name).
async fn grpc_call(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let url = format!("http://grpc.example.com{path}");
    let mut all = vec![("content-type", "application/grpc"), ("te", "trailers")];
    all.extend_from_slice(headers);
    let got = h2(
        addr,
        Send {
            method: "POST",
            url: &url,
            headers: &all,
            body: "\0\0\0\0\0",
        },
    )
    .await;
    match got.header("grpc-status") {
        Some(code) if got.body.is_empty() => (got.status.as_u16(), format!("grpc-status {code}")),
        _ => (got.status.as_u16(), got.body),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exact_method_matching_and_header_matching() {
    let exact = upstream::named("exact").await;
    let service_only = upstream::named("service-only").await;
    let header = upstream::named("header").await;
    let yaml = format!(
        "{}{}{}{}{}",
        service_with("infra", "exact", exact.addr, "GRPC"),
        service_with("infra", "service-only", service_only.addr, "GRPC"),
        service_with("infra", "header", header.addr, "GRPC"),
        gateway("weft", "  - {name: http, port: 80, protocol: HTTP}\n"),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: greeter, namespace: infra}\nspec:\n  parentRefs: [{name: web}]\n  hostnames: [grpc.example.com]\n  rules:\n  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]\n    backendRefs: [{name: exact, port: 8080}]\n  - matches: [{method: {service: helloworld.Greeter}}]\n    backendRefs: [{name: service-only, port: 8080}]\n  - matches: [{headers: [{name: version, value: three}]}]\n    backendRefs: [{name: header, port: 8080}]\n---\n",
    );
    let h = Harness::kubernetes_gateway(&yaml, "infra", "web", &[80]).await;
    let addr = port(&h, 80);
    assert_eq!(
        grpc_call(addr, "/helloworld.Greeter/SayHello", &[]).await,
        (200, "exact".into())
    );
    assert_eq!(
        grpc_call(addr, "/helloworld.Greeter/SayGoodbye", &[]).await,
        (200, "service-only".into())
    );
    assert_eq!(
        grpc_call(addr, "/other.Service/Any", &[("version", "three")]).await,
        (200, "header".into())
    );
    // No rule matches: Envoy's and weft's gRPC form of 404, UNIMPLEMENTED (12).
    assert_eq!(
        grpc_call(addr, "/other.Service/Any", &[]).await,
        (200, "grpc-status 12".into())
    );
}

/// A TLS ClientHello naming `sni`, as a client's first bytes.
fn client_hello(sni: &str) -> Vec<u8> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(common::tls::AnyServer))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("name");
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("hello");
    hello
}

/// Connects to `addr`, sends `first`, and returns what arrives first (up to 64 bytes: a
/// backend's greeting, and maybe the start of its echo).
async fn first_bytes(addr: SocketAddr, first: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(first).await.expect("write");
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .map_or(0, |r| r.unwrap_or(0));
    buf.truncate(n);
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_route_and_tls_route_passthrough_by_sni() {
    let db = upstream::server_first(b"db-greeting").await;
    let a = upstream::server_first(b"a-side").await;
    let b = upstream::server_first(b"b-side").await;
    let yaml = format!(
        "{}{}{}{}{}{}{}",
        service_with("infra", "db", db, "TCP"),
        service_with("infra", "a", a, "TLS"),
        service_with("infra", "b", b, "TLS"),
        gateway(
            "weft",
            "  - {name: tcp, port: 5432, protocol: TCP}\n  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}\n"
        ),
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: db, namespace: infra}\nspec:\n  parentRefs: [{name: web, sectionName: tcp}]\n  rules: [{backendRefs: [{name: db, port: 8080}]}]\n---\n",
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata: {name: a, namespace: infra}\nspec:\n  parentRefs: [{name: web, sectionName: tls}]\n  hostnames: [a.example.com]\n  rules: [{backendRefs: [{name: a, port: 8080}]}]\n---\n",
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata: {name: any-subdomain, namespace: infra}\nspec:\n  parentRefs: [{name: web, sectionName: tls}]\n  hostnames: [\"*.example.com\"]\n  rules: [{backendRefs: [{name: b, port: 8080}]}]\n---\n",
    );
    let h = Harness::kubernetes_gateway(&yaml, "infra", "web", &[5432, 443]).await;
    // TCPRoute: every connection to the TCP listener reaches db, bytes untouched.
    assert!(
        first_bytes(port(&h, 5432), b"hello")
            .await
            .starts_with(b"db-greeting")
    );
    // TLSRoute: the ClientHello's SNI picks the route; the bytes pass through.
    assert!(
        first_bytes(port(&h, 443), &client_hello("a.example.com"))
            .await
            .starts_with(b"a-side")
    );
    assert!(
        first_bytes(port(&h, 443), &client_hello("c.example.com"))
            .await
            .starts_with(b"b-side")
    );
    assert!(
        first_bytes(port(&h, 443), &client_hello("other.org"))
            .await
            .is_empty(),
        "no route for the name: the connection is closed"
    );
}
