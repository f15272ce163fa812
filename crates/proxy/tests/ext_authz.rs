//! The external authorization client against authorization services written for the
//! test: an HTTP one (hyper) and a gRPC one (`envoy.service.auth.v3.Authorization`, tonic),
//! each allowing, denying and stalling as asked.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use weft_model::ext_authz::{
    BodyInCheck, ExtAuthzKind, ExtAuthzProvider, HeaderPattern, HttpProvider,
};
use weft_proto::ext_authz as pb;
use weft_proxy::http::ext_authz::{Authorizer, CheckBody, CheckRequest, Verdict, check};

/// An HTTP authorization service: `x-ext-authz: allow` → 200 with `x-ext-authz-check-result`
/// and `x-user`; `x-ext-authz: stall` → no answer for 5 s; else 403 with `x-deny-reason`
/// and a body naming the path it was asked about and the headers it saw.
async fn http_service() -> SocketAddr {
    http_service_counting().await.0
}

/// The HTTP service, and how many connections it accepted.
async fn http_service_counting() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let asked = req
                        .headers()
                        .get("x-ext-authz")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let seen: Vec<String> = req
                        .headers()
                        .keys()
                        .map(|k| k.as_str().to_string())
                        .collect();
                    let line = format!("{} {} saw {}", req.method(), req.uri(), seen.join(","));
                    let partial = req
                        .headers()
                        .get("x-envoy-auth-partial-body")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("absent")
                        .to_string();
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    let body = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
                    let resp = match asked.as_str() {
                        // With the body in the check: what of it came, and whether cut.
                        "allow" if partial != "absent" => Response::builder()
                            .header("x-ext-authz-body", body.clone())
                            .header("x-ext-authz-partial", partial)
                            .header("x-internal", "secret")
                            .header("x-authz-note", "checked")
                            .body(Full::new(Bytes::new())),
                        "allow" => Response::builder()
                            .header("x-ext-authz-check-result", "allowed")
                            .header("x-user", "alice")
                            .header("x-internal", "secret")
                            .body(Full::new(Bytes::new())),
                        "stall" => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            Response::builder().body(Full::new(Bytes::new()))
                        }
                        _ => Response::builder()
                            .status(StatusCode::FORBIDDEN)
                            .header("x-deny-reason", "not on the list")
                            .header("x-internal", "secret")
                            .body(Full::new(Bytes::from(format!(
                                "denied: {line} body {body}"
                            )))),
                    };
                    Ok::<_, Infallible>(resp.expect("response"))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

/// A gRPC authorization service deciding on the request's `x-ext-authz` header.
struct Grpc;

#[tonic::async_trait]
impl pb::authorization_server::Authorization for Grpc {
    async fn check(
        &self,
        request: tonic::Request<pb::CheckRequest>,
    ) -> Result<tonic::Response<pb::CheckResponse>, tonic::Status> {
        let attributes = request.into_inner().attributes.unwrap_or_default();
        let http = attributes.request.and_then(|r| r.http).unwrap_or_default();
        let header = |k: &str, v: &str| pb::HeaderValueOption {
            header: Some(pb::HeaderValue {
                key: k.into(),
                value: v.into(),
            }),
            append: None,
        };
        let decided = http.headers.get("x-ext-authz").map(String::as_str);
        if decided == Some("stall") {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let principal = attributes.source.map(|s| s.principal).unwrap_or_default();
        let answer = if decided == Some("allow") {
            pb::CheckResponse {
                status: Some(pb::RpcStatus {
                    code: 0,
                    message: String::new(),
                }),
                http_response: Some(pb::check_response::HttpResponse::OkResponse(
                    pb::OkHttpResponse {
                        headers: vec![
                            header("x-user", &format!("{} {}", http.method, http.path)),
                            header(
                                "x-checked-body",
                                &format!(
                                    "text {:?} bytes {:?} partial {}",
                                    http.body,
                                    String::from_utf8_lossy(&http.raw_body),
                                    http.headers
                                        .get("x-envoy-auth-partial-body")
                                        .map_or("absent", String::as_str)
                                ),
                            ),
                        ],
                        headers_to_remove: vec!["x-ext-authz".into()],
                        response_headers_to_add: vec![header("x-grpc-note", "checked")],
                    },
                )),
            }
        } else {
            pb::CheckResponse {
                status: Some(pb::RpcStatus {
                    code: 7,
                    message: "denied".into(),
                }),
                http_response: Some(pb::check_response::HttpResponse::DeniedResponse(
                    pb::DeniedHttpResponse {
                        status: Some(pb::HttpStatus { code: 401 }),
                        headers: vec![header("x-deny-reason", "grpc says no")],
                        body: format!("denied for {principal}, body {:?}", http.body),
                    },
                )),
            }
        };
        Ok(tonic::Response::new(answer))
    }
}

async fn grpc_service() -> SocketAddr {
    grpc_service_counting().await.0
}

/// The gRPC service, and how many connections it accepted.
async fn grpc_service_counting() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let incoming = futures_util::stream::unfold(listener, move |l| {
        let counter = counter.clone();
        async move {
            let next = l.accept().await.map(|(s, _)| s);
            counter.fetch_add(1, Ordering::Relaxed);
            Some((next, l))
        }
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::authorization_server::AuthorizationServer::new(Grpc))
            .serve_with_incoming(incoming),
    );
    (addr, accepted)
}

fn provider(addr: SocketAddr, kind: ExtAuthzKind) -> ExtAuthzProvider {
    ExtAuthzProvider {
        name: "ext".into(),
        service: addr.ip().to_string(),
        port: addr.port(),
        timeout: Duration::from_millis(500),
        fail_open: false,
        status_on_error: 403,
        body: None,
        kind,
    }
}

fn http_provider(addr: SocketAddr) -> ExtAuthzProvider {
    let patterns = |p: &[&str]| p.iter().map(|s| HeaderPattern::parse(s)).collect();
    provider(
        addr,
        ExtAuthzKind::Http(HttpProvider {
            path_prefix: "/check".into(),
            include_request_headers: patterns(&["x-ext-authz"]),
            include_additional_headers: [("x-added".to_string(), "yes".to_string())].into(),
            headers_to_upstream_on_allow: patterns(&["x-ext-authz-*", "x-user"]),
            headers_to_downstream_on_deny: patterns(&["x-deny-*"]),
            headers_to_downstream_on_allow: Vec::new(),
        }),
    )
}

fn headers(decision: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "x-ext-authz",
        HeaderValue::from_str(decision).expect("value"),
    );
    h.insert("cookie", HeaderValue::from_static("session=1"));
    h
}

async fn ask(p: &ExtAuthzProvider, decision: &str, body: Option<&'static str>) -> Verdict {
    let h = headers(decision);
    check(
        &Authorizer::new(p.clone()),
        CheckRequest {
            method: &Method::POST,
            path: "/orders?id=7",
            host: "shop.example.com",
            scheme: "http",
            headers: &h,
            body: body.map(|b| CheckBody {
                bytes: Bytes::from_static(b.as_bytes()),
                partial: false,
            }),
            source: (
                "10.0.0.1:5000".parse().expect("addr"),
                "spiffe://cluster.local/ns/default/sa/client",
            ),
            destination: "10.0.0.2:8080".parse().expect("addr"),
        },
    )
    .await
}

fn names(list: &[(http::HeaderName, HeaderValue)]) -> Vec<String> {
    let mut n: Vec<String> = list
        .iter()
        .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("?")))
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn an_http_service_allows_with_headers_for_upstream_and_denies_with_its_answer() {
    let p = http_provider(http_service().await);
    let Verdict::Allow { upstream, .. } = ask(&p, "allow", None).await else {
        panic!("allowed");
    };
    assert_eq!(
        names(&upstream),
        ["x-ext-authz-check-result=allowed", "x-user=alice"],
        "only the headers headersToUpstreamOnAllow names"
    );
    let Verdict::Deny {
        status,
        headers,
        body,
    } = ask(&p, "deny", Some("order=1")).await
    else {
        panic!("denied");
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(names(&headers), ["x-deny-reason=not on the list"]);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.starts_with("denied: POST /check/orders?id=7 saw "),
        "{body}"
    );
    assert!(
        body.contains("x-ext-authz") && body.contains("x-added"),
        "{body}"
    );
    assert!(
        !body.contains("cookie"),
        "headers not included stay out: {body}"
    );
}

#[tokio::test]
async fn a_service_that_does_not_answer_in_time_fails_closed_or_open() {
    let addr = http_service().await;
    let mut p = http_provider(addr);
    p.status_on_error = 503;
    let Verdict::Deny { status, .. } = ask(&p, "stall", None).await else {
        panic!("failed closed");
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "statusOnError");
    p.fail_open = true;
    assert!(matches!(
        ask(&p, "stall", None).await,
        Verdict::Allow { .. }
    ));
    // Nobody listening: an error too.
    let mut gone = provider("127.0.0.1:9".parse().expect("addr"), ExtAuthzKind::Grpc);
    let Verdict::Deny { status, .. } = ask(&gone, "allow", None).await else {
        panic!("unreachable fails closed");
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    gone.fail_open = true;
    assert!(matches!(
        ask(&gone, "allow", None).await,
        Verdict::Allow { .. }
    ));
}

#[tokio::test]
async fn a_grpc_service_allows_with_headers_and_denies_with_status_headers_and_body() {
    let mut p = provider(grpc_service().await, ExtAuthzKind::Grpc);
    p.body = Some(BodyInCheck {
        max_request_bytes: 1024,
        allow_partial_message: false,
        pack_as_bytes: false,
    });
    let Verdict::Allow {
        upstream, remove, ..
    } = ask(&p, "allow", None).await
    else {
        panic!("allowed");
    };
    assert_eq!(
        names(&upstream),
        [
            "x-checked-body=text \"\" bytes \"\" partial absent",
            "x-user=POST /orders?id=7"
        ]
    );
    assert_eq!(remove, ["x-ext-authz"]);
    let Verdict::Deny {
        status,
        headers,
        body,
    } = ask(&p, "deny", Some("order=1")).await
    else {
        panic!("denied");
    };
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(names(&headers), ["x-deny-reason=grpc says no"]);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "denied for spiffe://cluster.local/ns/default/sa/client, body \"order=1\""
    );
    p.status_on_error = 500;
    let Verdict::Deny { status, .. } = ask(&p, "stall", None).await else {
        panic!("timed out");
    };
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

const CUSTOM: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: CUSTOM
  provider: {name: PROVIDER}
  rules:
  - to: [{operation: {paths: ["/admin/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-secrets, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin/secrets"]}}]
"#;

/// `GET path` on `addr` with `x-ext-authz: decision`: (status, head, body).
async fn get(addr: SocketAddr, path: &str, decision: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: reviews\r\nx-ext-authz: {decision}\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_policy_sends_matching_requests_to_its_provider_before_deny_and_allow() {
    let app = weft_testkit::upstream::named("reviews").await;
    let authz = http_provider(http_service().await);
    let dir = weft_testkit::fresh_dir("ext-authz-test");
    let labels = [("app".to_string(), "reviews".to_string())].into();
    let proxy = weft_testkit::mesh::start_proxy(weft_proxy::ProxyOptions {
        app: Some(app.addr),
        scope: weft_model::ProxyScope {
            namespace: "default".into(),
            labels,
            gateway: false,
        },
        ext_authz: vec![authz],
        ..weft_testkit::mesh::file_options(&dir, &CUSTOM.replace("PROVIDER", "ext"), "ext-authz")
    })
    .await;
    let inbound = proxy.inbound.expect("inbound");

    // Allowed by the provider: the app gets the headers it set.
    let (status, _, body) = get(inbound, "/admin/users", "allow").await;
    assert_eq!((status, body.as_str()), (200, "reviews"));
    let seen = app.seen();
    let last = seen.last().expect("the app was called");
    assert_eq!(last.headers["x-user"], "alice");
    assert_eq!(last.headers["x-ext-authz-check-result"], "allowed");
    // Denied by the provider: its status, headers and body; the app never sees it.
    let before = app.seen().len();
    let (status, head, body) = get(inbound, "/admin/users", "deny").await;
    assert_eq!(status, 403, "{head}");
    assert!(head.contains("x-deny-reason: not on the list"), "{head}");
    assert!(head.contains("x-weft-response-flags: uaex"), "{head}");
    assert!(
        !head.contains("x-internal"),
        "only headersToDownstreamOnDeny: {head}"
    );
    assert!(
        body.starts_with("denied: GET /check/admin/users saw"),
        "{body}"
    );
    // The provider allows, a DENY policy still denies: CUSTOM comes first, not instead.
    let (status, head, _) = get(inbound, "/admin/secrets", "allow").await;
    assert_eq!(status, 403);
    assert!(head.contains("x-weft-response-flags: rbac"), "{head}");
    // A path no CUSTOM rule matches is not sent to the provider.
    assert_eq!(get(inbound, "/public", "deny").await.0, 200);
    assert_eq!(app.seen().len(), before + 1, "only /public reached the app");

    // A provider the mesh config does not define: denied, as Istio fails closed.
    weft_testkit::mesh::write_config(&dir, &CUSTOM.replace("PROVIDER", "missing"));
    weft_testkit::eventually("the new policy", Duration::from_secs(10), || async {
        (get(inbound, "/admin/users", "allow").await.0 == 403).then_some(())
    })
    .await;
    let (_, head, _) = get(inbound, "/admin/users", "allow").await;
    assert!(head.contains("x-weft-response-flags: rbac"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_planes_mesh_config_defines_the_providers_custom_policies_name() {
    let app = weft_testkit::upstream::named("reviews").await;
    let authz = http_service().await;
    let mesh_config = format!(
        "extensionProviders:
- name: ext
  envoyExtAuthzHttp:
    service: 127.0.0.1
    port: {}
    pathPrefix: /check
    includeRequestHeadersInCheck: [x-ext-authz]
    headersToUpstreamOnAllow: [x-user]
    headersToDownstreamOnDeny: [x-deny-reason]
",
        authz.port()
    );
    let control = weft_testkit::mesh::ControlPlane::new(&weft_testkit::fresh_dir("ext-authz-mesh"))
        .mesh_config(&mesh_config)
        .start()
        .await;
    weft_testkit::mesh::apply(&control, &CUSTOM.replace("PROVIDER", "ext"));
    let labels = [("app".to_string(), "reviews".to_string())].into();
    let proxy = weft_testkit::mesh::start_proxy(weft_proxy::ProxyOptions {
        app: Some(app.addr),
        scope: weft_model::ProxyScope {
            namespace: "default".into(),
            labels,
            gateway: false,
        },
        ..weft_testkit::mesh::sidecar_options(control.xds, "sidecar~reviews-v1.default", None)
    })
    .await;
    let inbound = proxy.inbound.expect("inbound");
    weft_testkit::eventually("the pushed policy", Duration::from_secs(10), || async {
        (get(inbound, "/admin/users", "deny").await.0 == 403).then_some(())
    })
    .await;
    let (_, head, _) = get(inbound, "/admin/users", "deny").await;
    assert!(head.contains("x-deny-reason: not on the list"), "{head}");
    let (status, _, _) = get(inbound, "/admin/users", "allow").await;
    assert_eq!(status, 200);
    assert_eq!(app.seen().last().expect("seen").headers["x-user"], "alice");
}

#[tokio::test]
async fn checks_of_one_http_provider_reuse_their_connection() {
    let (addr, accepted) = http_service_counting().await;
    let authorizer = Authorizer::new(http_provider(addr));
    let h = headers("allow");
    for decision in ["allow", "deny", "allow"] {
        let h2 = headers(decision);
        let verdict = check(
            &authorizer,
            CheckRequest {
                method: &Method::GET,
                path: "/",
                host: "shop",
                scheme: "http",
                headers: if decision == "allow" { &h } else { &h2 },
                body: None,
                source: ("10.0.0.1:5000".parse().expect("addr"), ""),
                destination: "10.0.0.2:8080".parse().expect("addr"),
            },
        )
        .await;
        assert_eq!(
            matches!(verdict, Verdict::Allow { .. }),
            decision == "allow",
            "{verdict:?}"
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for all checks"
    );
}

#[tokio::test]
async fn checks_of_one_grpc_provider_share_one_connection() {
    let (addr, accepted) = grpc_service_counting().await;
    let authorizer = Authorizer::new(provider(addr, ExtAuthzKind::Grpc));
    let h = headers("allow");
    for _ in 0..3 {
        let verdict = check(
            &authorizer,
            CheckRequest {
                method: &Method::GET,
                path: "/",
                host: "shop",
                scheme: "http",
                headers: &h,
                body: None,
                source: ("10.0.0.1:5000".parse().expect("addr"), ""),
                destination: "10.0.0.2:8080".parse().expect("addr"),
            },
        )
        .await;
        assert!(matches!(verdict, Verdict::Allow { .. }), "{verdict:?}");
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 1);
}

/// `POST path` on `addr` with `x-ext-authz: decision` and `body`: (status, head, body).
async fn post(addr: SocketAddr, path: &str, decision: &str, body: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: reviews\r\nx-ext-authz: {decision}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), rest.to_string())
}

async fn proxy_with(
    name: &str,
    app: SocketAddr,
    authz: ExtAuthzProvider,
) -> (weft_proxy::RunningProxy, SocketAddr) {
    let dir = weft_testkit::fresh_dir(name);
    let labels = [("app".to_string(), "reviews".to_string())].into();
    let proxy = weft_testkit::mesh::start_proxy(weft_proxy::ProxyOptions {
        app: Some(app),
        scope: weft_model::ProxyScope {
            namespace: "default".into(),
            labels,
            gateway: false,
        },
        ext_authz: vec![authz],
        ..weft_testkit::mesh::file_options(&dir, &CUSTOM.replace("PROVIDER", "ext"), name)
    })
    .await;
    let inbound = proxy.inbound.expect("inbound");
    (proxy, inbound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_goes_into_the_check_and_an_allowing_answer_adds_response_headers() {
    let app = weft_testkit::upstream::named("reviews").await;
    let mut authz = http_provider(http_service().await);
    authz.body = Some(BodyInCheck {
        max_request_bytes: 10,
        allow_partial_message: false,
        pack_as_bytes: false,
    });
    if let ExtAuthzKind::Http(h) = &mut authz.kind {
        h.headers_to_downstream_on_allow = vec![HeaderPattern::parse("x-authz-*")];
    }
    let (_proxy, inbound) = proxy_with("ext-authz-body", app.addr, authz.clone()).await;

    // Within the limit: the service sees the whole body, the app gets it too, and the
    // client gets the header the service named for the response.
    let (status, head, _) = post(inbound, "/admin/orders", "allow", "order=7").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-authz-note: checked"), "{head}");
    assert!(
        !head.contains("x-internal"),
        "only the allowed headers: {head}"
    );
    let seen = app.seen();
    let last = seen.last().expect("the app was called");
    assert_eq!(last.headers["x-ext-authz-body"], "order=7");
    assert_eq!(last.headers["x-ext-authz-partial"], "false");
    assert_eq!(last.body, "order=7");
    // Exactly the limit is still whole.
    let (status, _, _) = post(inbound, "/admin/orders", "allow", "0123456789").await;
    assert_eq!(status, 200);
    assert_eq!(app.seen().last().expect("seen").body, "0123456789");

    // Over the limit without allowPartialMessage: 413, and neither the service nor the
    // app sees the request.
    let before = app.seen().len();
    let (status, head, body) = post(inbound, "/admin/orders", "allow", "0123456789A").await;
    assert_eq!((status, body.trim()), (413, "Payload Too Large"), "{head}");
    assert_eq!(app.seen().len(), before);

    // With allowPartialMessage the service gets the first bytes, flagged partial, and the
    // app still gets the whole body.
    let app = weft_testkit::upstream::named("reviews").await;
    if let Some(b) = &mut authz.body {
        b.max_request_bytes = 4;
        b.allow_partial_message = true;
    }
    let (_partial, inbound) = proxy_with("ext-authz-partial", app.addr, authz).await;
    let long = "x".repeat(100_000);
    let (status, head, _) = post(inbound, "/admin/orders", "allow", &long).await;
    assert_eq!(status, 200, "{head}");
    let seen = app.seen();
    let last = seen.last().expect("the app was called");
    assert_eq!(last.headers["x-ext-authz-body"], "xxxx");
    assert_eq!(last.headers["x-ext-authz-partial"], "true");
    assert_eq!(last.body.len(), long.len(), "the app gets the whole body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_check_carries_the_body_as_text_or_bytes_and_adds_response_headers() {
    let app = weft_testkit::upstream::named("reviews").await;
    let mut authz = provider(grpc_service().await, ExtAuthzKind::Grpc);
    authz.body = Some(BodyInCheck {
        max_request_bytes: 64,
        allow_partial_message: true,
        pack_as_bytes: false,
    });
    let (_proxy, inbound) = proxy_with("ext-authz-grpc-body", app.addr, authz.clone()).await;
    let (status, head, _) = post(inbound, "/admin/orders", "allow", "order=7").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-grpc-note: checked"), "{head}");
    let seen = app.seen();
    let last = seen.last().expect("the app was called");
    assert_eq!(
        last.headers["x-checked-body"],
        "text \"order=7\" bytes \"\" partial false"
    );
    assert_eq!(last.body, "order=7");

    let app = weft_testkit::upstream::named("reviews").await;
    if let Some(b) = &mut authz.body {
        b.pack_as_bytes = true;
    }
    let (_bytes, inbound) = proxy_with("ext-authz-grpc-bytes", app.addr, authz).await;
    let (status, _, _) = post(inbound, "/admin/orders", "allow", "order=8").await;
    assert_eq!(status, 200);
    assert_eq!(
        app.seen().last().expect("seen").headers["x-checked-body"],
        "text \"\" bytes \"order=8\" partial false"
    );
}
