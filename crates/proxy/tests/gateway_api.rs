//! Gateway API routes in the mesh (GAMMA), as a client sees them through its sidecar: an
//! HTTPRoute attached to a Service routes that Service's traffic. Each test is named
//! after the Gateway API conformance test it corresponds to (kubernetes-sigs/gateway-api,
//! conformance/tests/mesh); the scenarios are this repository's own.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Harness, service};
use weft_testkit::binomial_tolerance;
use weft_testkit::client::{Send, get, via_proxy};
use weft_testkit::upstream::{self, Reply};

/// The echo Service the routes attach to and its two version Services, each with its
/// own upstream answering its name.
async fn echo_services() -> (String, [upstream::Upstream; 3]) {
    let front = upstream::named("echo").await;
    let v1 = upstream::named("echo-v1").await;
    let v2 = upstream::named("echo-v2").await;
    let yaml = format!(
        "{}{}{}",
        service("echo", 8080, "HTTP", &[(front.addr, "v1")]),
        service("echo-v1", 8080, "HTTP", &[(v1.addr, "v1")]),
        service("echo-v2", 8080, "HTTP", &[(v2.addr, "v2")]),
    );
    (yaml, [front, v1, v2])
}

fn http_route(name: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs:\n  - {{group: \"\", kind: Service, name: echo, port: 8080}}\n  rules:\n{rules}---\n"
    )
}

async fn counts(h: &Harness, url: &str, n: u32) -> HashMap<String, u32> {
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..n {
        let got = get(h.proxy.outbound, url).await;
        let key = match got.status.as_u16() {
            200 => got.body,
            other => other.to_string(),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_http_route_weight() {
    let (registry, [front, _, _]) = echo_services().await;
    let yaml = format!(
        "{registry}{}",
        http_route(
            "split",
            "  - backendRefs:\n    - {name: echo-v1, port: 8080, weight: 10}\n    - {name: echo-v2, port: 8080, weight: 90}\n"
        )
    );
    let h = Harness::start(&yaml).await;
    let n = 1000;
    let got = counts(&h, "http://echo:8080/", n).await;
    let v1 = f64::from(got.get("echo-v1").copied().unwrap_or(0));
    let tolerance = binomial_tolerance(n, 0.1, 5.0);
    assert!(
        (v1 - f64::from(n) * 0.1).abs() <= tolerance,
        "{got:?}: v1 expected 10% ± {tolerance:.0}"
    );
    assert_eq!(
        got.get("echo-v1").copied().unwrap_or(0) + got.get("echo-v2").copied().unwrap_or(0),
        n
    );
    assert_eq!(
        front.hits(),
        0,
        "the route replaced the Service's own endpoints"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_http_route_matching_and_precedence() {
    let (registry, _ups) = echo_services().await;
    let rules = r#"  - matches:
    - path: {type: PathPrefix, value: /v2}
    - headers: [{name: Version, value: two}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches:
    - path: {type: Exact, value: /v2/exact}
    - path: {type: PathPrefix, value: /v2/longer}
      method: POST
    - queryParams: [{name: pick, value: one}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches:
    - path: {type: RegularExpression, value: "/re/[0-9]+"}
    backendRefs: [{name: echo-v1, port: 8080}]
"#;
    let yaml = format!("{registry}{}", http_route("matching", rules));
    let h = Harness::start(&yaml).await;
    let body = |url: &'static str| {
        let addr = h.proxy.outbound;
        async move {
            let got = get(addr, url).await;
            format!("{} {}", got.status.as_u16(), got.body.trim())
        }
    };
    assert_eq!(body("http://echo:8080/v2").await, "200 echo-v2");
    assert_eq!(body("http://echo:8080/v2/any").await, "200 echo-v2");
    // PathPrefix is element-wise: /v2foo is not under /v2, and no rule matches it.
    assert!(body("http://echo:8080/v2foo").await.starts_with("404"));
    // An Exact path beats the shorter prefix of an earlier rule.
    assert_eq!(body("http://echo:8080/v2/exact").await, "200 echo-v1");
    assert_eq!(body("http://echo:8080/re/42").await, "200 echo-v1");
    assert!(body("http://echo:8080/re/x").await.starts_with("404"));
    assert_eq!(body("http://echo:8080/?pick=one").await, "200 echo-v1");
    // The longer prefix with a method wins for POST, the shorter one otherwise.
    let post = via_proxy(
        h.proxy.outbound,
        Send {
            method: "POST",
            url: "http://echo:8080/v2/longer/x",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(post.body, "echo-v1");
    assert_eq!(body("http://echo:8080/v2/longer/x").await, "200 echo-v2");
    let header = via_proxy(
        h.proxy.outbound,
        Send {
            url: "http://echo:8080/other",
            headers: &[("version", "two")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        header.body, "echo-v2",
        "header names match case-insensitively"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_http_route_invalid_backends_answer_500_for_their_share() {
    let (registry, _ups) = echo_services().await;
    let rules = r#"  - matches: [{path: {value: /half}}]
    backendRefs:
    - {name: echo-v1, port: 8080}
    - {name: no-such-service, port: 8080}
    - {name: echo-v2, port: 8080, weight: 0}
  - matches: [{path: {value: /none}}]
    backendRefs: [{name: echo-v1, port: 8080, weight: 0}]
  - matches: [{path: {value: /kind}}]
    backendRefs: [{group: example.com, kind: Bucket, name: b, port: 8080}]
"#;
    let yaml = format!("{registry}{}", http_route("invalid", rules));
    let h = Harness::start(&yaml).await;
    let n = 400;
    let got = counts(&h, "http://echo:8080/half", n).await;
    assert_eq!(got.get("echo-v2"), None, "weight 0 gets nothing: {got:?}");
    let errors = f64::from(got.get("500").copied().unwrap_or(0));
    let tolerance = binomial_tolerance(n, 0.5, 5.0);
    assert!((errors - f64::from(n) / 2.0).abs() <= tolerance, "{got:?}");
    let all_zero = get(h.proxy.outbound, "http://echo:8080/none").await;
    assert_eq!(all_zero.status.as_u16(), 500);
    let kind = get(h.proxy.outbound, "http://echo:8080/kind").await;
    assert_eq!(kind.status.as_u16(), 500);
    assert!(kind.body.contains("InvalidKind"), "{}", kind.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_http_route_filters_rewrite_redirect_and_timeouts() {
    let v1 = upstream::http(Arc::new(|_, seen| {
        let mut r = Reply::ok(format!(
            "{} host={}",
            seen.path,
            seen.headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        ));
        if seen.path.starts_with("/slow") {
            r.delay = Duration::from_millis(1500);
        }
        if let Some(v) = seen.headers.get("x-added") {
            r.headers
                .push(("x-seen-added".into(), v.to_str().unwrap_or_default().into()));
        }
        r.headers.push(("x-upstream".into(), "yes".into()));
        r
    }))
    .await;
    let front = upstream::named("echo").await;
    let registry = format!(
        "{}{}",
        service("echo", 8080, "HTTP", &[(front.addr, "v1")]),
        service("echo-v1", 8080, "HTTP", &[(v1.addr, "v1")]),
    );
    let rules = r#"  - matches: [{path: {value: /prefix}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: rewritten.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: X-Added, value: "1"}], remove: [x-secret]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-upstream, value: replaced}]}
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: Exact, value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /one}}
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: new.example.com, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /moved}}
  - matches: [{path: {value: /secure}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https}
  - matches: [{path: {value: /slow}}]
    timeouts: {request: 500ms}
    backendRefs: [{name: echo-v1, port: 8080}]
"#;
    let yaml = format!("{registry}{}", http_route("filters", rules));
    let h = Harness::start(&yaml).await;
    let got = via_proxy(
        h.proxy.outbound,
        Send {
            url: "http://echo:8080/prefix/a?q=1",
            headers: &[("x-secret", "s")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.body, "/new/a?q=1 host=rewritten.example.com");
    assert_eq!(got.headers["x-seen-added"], "1");
    assert_eq!(got.headers["x-upstream"], "replaced");
    assert!(v1.seen()[0].headers.get("x-secret").is_none());
    let got = get(h.proxy.outbound, "http://echo:8080/prefix").await;
    assert!(got.body.starts_with("/new host="), "{}", got.body);
    let got = get(h.proxy.outbound, "http://echo:8080/full").await;
    assert!(got.body.starts_with("/one host="), "{}", got.body);
    let got = get(h.proxy.outbound, "http://echo:8080/old/page?x=1").await;
    assert_eq!(got.status.as_u16(), 301);
    assert_eq!(
        got.headers["location"],
        "http://new.example.com:8080/moved/page?x=1"
    );
    let got = get(h.proxy.outbound, "http://echo:8080/secure/a").await;
    assert_eq!(got.status.as_u16(), 302, "the default redirect status");
    assert_eq!(got.headers["location"], "https://echo/secure/a");
    let got = get(h.proxy.outbound, "http://echo:8080/slow").await;
    assert_eq!(got.status.as_u16(), 504, "timeouts.request");
    assert_eq!(front.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_ports() {
    // A Service with two ports; the route attaches to 8080 only.
    let front = upstream::named("echo").await;
    let v2 = upstream::named("echo-v2").await;
    let registry = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: echo}}\nspec:\n  hosts: [echo.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 8080, name: http, protocol: HTTP}}, {{number: 9090, name: http-admin, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {p}, http-admin: {p}}}}}]\n---\n{}",
        service("echo-v2", 8080, "HTTP", &[(v2.addr, "v2")]),
        p = front.addr.port(),
    );
    let yaml = format!(
        "{registry}{}",
        http_route(
            "port-only",
            "  - backendRefs: [{name: echo-v2, port: 8080}]\n"
        )
    );
    let h = Harness::start(&yaml).await;
    assert_eq!(
        get(h.proxy.outbound, "http://echo:8080/").await.body,
        "echo-v2"
    );
    assert_eq!(
        get(h.proxy.outbound, "http://echo:9090/").await.body,
        "echo",
        "port 9090 is not the route's: the Service's own endpoints answer"
    );
}

/// MeshFrontend: a route attached to a Service applies to requests for the Service, not
/// to requests sent to one of its endpoints' addresses directly (the pod IP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_frontend() {
    let (registry, [_, _, v2]) = echo_services().await;
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: v2-marked, namespace: default}\nspec:\n  parentRefs:\n  - {group: \"\", kind: Service, name: echo-v2, port: 8080}\n  rules:\n  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: set}]}}]\n    backendRefs: [{name: echo-v2, port: 8080}]\n---\n";
    let h = Harness::start(&format!("{registry}{route}")).await;
    let to_service = get(h.proxy.outbound, "http://echo-v2:8080/").await;
    assert_eq!(to_service.body, "echo-v2");
    assert_eq!(
        to_service.headers.get("x-header-set").map(|v| v.as_bytes()),
        Some(&b"set"[..]),
        "the route applied to the Service's traffic"
    );
    let to_pod = get(h.proxy.outbound, &format!("http://{}/", v2.addr)).await;
    assert_eq!(to_pod.status.as_u16(), 200);
    assert_eq!(to_pod.body, "echo-v2", "the endpoint answers directly");
    assert!(
        to_pod.headers.get("x-header-set").is_none(),
        "the route is not the endpoint's: {:?}",
        to_pod.headers
    );
    // The proxy's own outbound address is not passed through to (it would loop).
    let own = get(h.proxy.outbound, &format!("http://{}/", h.proxy.outbound)).await;
    assert_eq!(own.status.as_u16(), 404, "{}", own.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_consumer_route() {
    // A route in namespace `consumer` attached to default/echo applies to that
    // namespace's clients only; the producer's clients keep the Service's own routing.
    let (registry, _ups) = echo_services().await;
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: mine, namespace: consumer}\nspec:\n  parentRefs:\n  - {group: \"\", kind: Service, name: echo, namespace: default, port: 8080}\n  rules:\n  - backendRefs: [{name: echo-v2, namespace: default, port: 8080}]\n---\n";
    // The route's backend is in another namespace: without a ReferenceGrant it answers 500.
    let yaml = format!("{registry}{route}");
    let producer_side = Harness::start(&yaml).await;
    assert_eq!(
        get(producer_side.proxy.outbound, "http://echo.default:8080/")
            .await
            .body,
        "echo"
    );
    let mut identity = weft_model::service::WorkloadInfo::unknown();
    identity.namespace = "consumer".into();
    let consumer_side = Harness::sidecar(&yaml, None, identity, &[("app", "client")]).await;
    let got = get(consumer_side.proxy.outbound, "http://echo.default:8080/").await;
    assert_eq!(got.status.as_u16(), 500, "{}", got.body);
    assert!(got.body.contains("RefNotPermitted"), "{}", got.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_http_route_redirect_port_and_status_codes() {
    let (registry, _ups) = echo_services().await;
    let rules = r#"  - matches: [{path: {value: /port}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {port: 8443}
  - matches: [{path: {value: /see-other}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {statusCode: 303, hostname: other.example.com}
  - matches: [{path: {value: /temporary}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {statusCode: 307}
  - matches: [{path: {value: /permanent}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {statusCode: 308, scheme: https, port: 8443}
"#;
    let yaml = format!("{registry}{}", http_route("redirects", rules));
    let h = Harness::start(&yaml).await;
    let redirect = |path: &'static str| {
        let addr = h.proxy.outbound;
        async move {
            let got = get(addr, &format!("http://echo:8080{path}")).await;
            (
                got.status.as_u16(),
                got.headers["location"]
                    .to_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    };
    assert_eq!(
        redirect("/port/a").await,
        (302, "http://echo:8443/port/a".into())
    );
    assert_eq!(
        redirect("/see-other").await,
        (303, "http://other.example.com:8080/see-other".into())
    );
    assert_eq!(
        redirect("/temporary").await,
        (307, "http://echo:8080/temporary".into())
    );
    assert_eq!(
        redirect("/permanent").await,
        (308, "https://echo:8443/permanent".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_http_route_request_mirror() {
    let (registry, [_, v1, v2]) = echo_services().await;
    let rules = r#"  - matches: [{path: {value: /all}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: echo-v2, port: 8080}}
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {value: /none}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: echo-v2, port: 8080}, fraction: {numerator: 0}}
    backendRefs: [{name: echo-v1, port: 8080}]
"#;
    let yaml = format!("{registry}{}", http_route("mirror", rules));
    let h = Harness::start(&yaml).await;
    for _ in 0..5 {
        assert_eq!(
            get(h.proxy.outbound, "http://echo:8080/none").await.body,
            "echo-v1"
        );
    }
    for _ in 0..5 {
        assert_eq!(
            get(h.proxy.outbound, "http://echo:8080/all").await.body,
            "echo-v1",
            "the mirror's answer is ignored"
        );
    }
    weft_testkit::eventually(
        "the mirror gets its copies",
        Duration::from_secs(5),
        || async { (v2.hits() == 5).then_some(()) },
    )
    .await;
    assert!(
        v2.seen().iter().all(|s| s.path == "/all"),
        "only /all is mirrored"
    );
    assert_eq!(v1.hits(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_grpc_route_method_matching_and_weights() {
    let front = upstream::named("greeter").await;
    let v1 = upstream::named("greeter-v1").await;
    let v2 = upstream::named("greeter-v2").await;
    let yaml = format!(
        "{}{}{}{}",
        service("greeter", 50051, "GRPC", &[(front.addr, "v1")]),
        service("greeter-v1", 50051, "GRPC", &[(v1.addr, "v1")]),
        service("greeter-v2", 50051, "GRPC", &[(v2.addr, "v2")]),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: greeter, namespace: default}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: greeter, port: 50051}]\n  rules:\n  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]\n    backendRefs: [{name: greeter-v2, port: 50051}]\n  - backendRefs:\n    - {name: greeter-v1, port: 50051, weight: 50}\n    - {name: greeter-v2, port: 50051, weight: 50}\n---\n",
    );
    let h = Harness::start(&yaml).await;
    let call = |path: &'static str| {
        let outbound = h.proxy.outbound;
        async move {
            let url = format!("http://greeter:50051{path}");
            weft_testkit::client::h2(
                outbound,
                Send {
                    method: "POST",
                    url: &url,
                    headers: &[("content-type", "application/grpc"), ("te", "trailers")],
                    body: "\0\0\0\0\0",
                },
            )
            .await
            .body
        }
    };
    for _ in 0..10 {
        assert_eq!(call("/helloworld.Greeter/SayHello").await, "greeter-v2");
    }
    let mut seen = HashMap::new();
    for _ in 0..200 {
        *seen
            .entry(call("/helloworld.Greeter/SayGoodbye").await)
            .or_insert(0u32) += 1;
    }
    let v1_share = f64::from(seen.get("greeter-v1").copied().unwrap_or(0));
    let tolerance = binomial_tolerance(200, 0.5, 5.0);
    assert!((v1_share - 100.0).abs() <= tolerance, "{seen:?}");
    assert_eq!(front.hits(), 0, "the route decides the Service's calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_http_route_cors_and_retry() {
    // Every odd request fails with 503 (the first of each pair), so one retry on 503 gets
    // every request an answer.
    let flaky = upstream::http(Arc::new(|n, _| {
        if n % 2 == 0 {
            Reply::status(503, "down")
        } else {
            Reply::ok("up")
        }
    }))
    .await;
    let (registry, _) = echo_services().await;
    let yaml = format!(
        "{registry}{}{}",
        service("flaky", 8080, "HTTP", &[(flaky.addr, "v1")]),
        http_route(
            "cors-retry",
            "  - matches: [{path: {value: /flaky}}]\n    retry: {codes: [503], attempts: 1, backoff: 1ms}\n    backendRefs: [{name: flaky, port: 8080}]\n  - filters:\n    - type: CORS\n      cors: {allowOrigins: [\"https://*.example.com\"], allowMethods: [GET, POST], allowHeaders: [x-custom], maxAge: 60}\n    backendRefs: [{name: echo-v1, port: 8080}]\n"
        )
    );
    let h = Harness::start(&yaml).await;
    for _ in 0..6 {
        let got = get(h.proxy.outbound, "http://echo:8080/flaky").await;
        assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "up"));
    }
    assert_eq!(flaky.hits(), 12, "each request took one retry");

    let preflight = |origin: &'static str| {
        let outbound = h.proxy.outbound;
        async move {
            via_proxy(
                outbound,
                Send {
                    method: "OPTIONS",
                    url: "http://echo:8080/x",
                    headers: &[
                        ("origin", origin),
                        ("access-control-request-method", "POST"),
                    ],
                    body: "",
                },
            )
            .await
        }
    };
    let allowed = preflight("https://app.example.com").await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com"),
        "{allowed:?}"
    );
    assert_eq!(
        allowed.header("access-control-allow-methods"),
        Some("GET,POST")
    );
    assert_eq!(allowed.header("access-control-max-age"), Some("60"));
    let other = preflight("https://evil.test").await;
    assert_eq!(
        other.header("access-control-allow-origin"),
        None,
        "{other:?}"
    );
}

/// MeshHTTPRouteBackendRequestHeaderModifier: a backend's own RequestHeaderModifier (and
/// ResponseHeaderModifier) applies to the requests sent to it, not to the others'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_http_route_backend_request_header_modifier() {
    let seen_by = |name: &'static str| {
        upstream::http(Arc::new(move |_, seen| {
            let header = |k: &str| {
                seen.headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string()
            };
            Reply::ok(format!(
                "{name} backend={} drop={} rule={}",
                header("x-backend"),
                header("x-drop"),
                header("x-rule")
            ))
        }))
    };
    let (v1, v2) = (seen_by("v1").await, seen_by("v2").await);
    let front = upstream::named("echo").await;
    let yaml = format!(
        "{}{}{}{}",
        service("echo", 8080, "HTTP", &[(front.addr, "v1")]),
        service("echo-v1", 8080, "HTTP", &[(v1.addr, "v1")]),
        service("echo-v2", 8080, "HTTP", &[(v2.addr, "v2")]),
        http_route(
            "backend-headers",
            "  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {set: [{name: x-rule, value: both}]}\n    backendRefs:\n    - name: echo-v1\n      port: 8080\n      filters:\n      - type: RequestHeaderModifier\n        requestHeaderModifier: {set: [{name: x-backend, value: one}], remove: [x-drop]}\n      - type: ResponseHeaderModifier\n        responseHeaderModifier: {add: [{name: x-served-by, value: v1}]}\n    - {name: echo-v2, port: 8080}\n"
        )
    );
    let h = Harness::start(&yaml).await;
    let mut answered = HashMap::new();
    for _ in 0..40 {
        let got = via_proxy(
            h.proxy.outbound,
            Send {
                method: "GET",
                url: "http://echo:8080/",
                headers: &[("x-drop", "kept")],
                body: "",
            },
        )
        .await;
        assert_eq!(got.status.as_u16(), 200, "{got:?}");
        let served_by = got.header("x-served-by").map(str::to_string);
        if got.body.starts_with("v1") {
            assert_eq!(got.body, "v1 backend=one drop=- rule=both");
            assert_eq!(served_by.as_deref(), Some("v1"));
        } else {
            assert_eq!(got.body, "v2 backend=- drop=kept rule=both");
            assert_eq!(served_by, None, "v1's response filter only on v1's answers");
        }
        *answered.entry(got.body).or_insert(0) += 1;
    }
    assert_eq!(answered.len(), 2, "both backends answered: {answered:?}");
}

/// MeshHTTPRouteNamedRule: rules carrying `name` (GEP-995) route as unnamed ones do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_http_route_named_rule() {
    let (registry, _) = echo_services().await;
    let yaml = format!(
        "{registry}{}",
        http_route(
            "named",
            "  - name: to-v1\n    matches: [{path: {type: PathPrefix, value: /v1}}]\n    backendRefs: [{name: echo-v1, port: 8080}]\n  - name: to-v2\n    matches: [{path: {type: PathPrefix, value: /v2}}]\n    backendRefs: [{name: echo-v2, port: 8080}]\n"
        )
    );
    let h = Harness::start(&yaml).await;
    for (path, want) in [("/v1/x", "echo-v1"), ("/v2/x", "echo-v2")] {
        let got = get(h.proxy.outbound, &format!("http://echo:8080{path}")).await;
        assert_eq!(
            (got.status.as_u16(), got.body.as_str()),
            (200, want),
            "{path}"
        );
    }
    // No rule matches: 404, as for unnamed rules.
    let got = get(h.proxy.outbound, "http://echo:8080/other").await;
    assert_eq!(got.status.as_u16(), 404, "{got:?}");
}
