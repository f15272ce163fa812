//! An ingress gateway as a client outside the mesh sees it: a Gateway selecting the
//! proxy's labels opens a server, the VirtualServices bound to that Gateway route it,
//! and nothing else does (mesh-only rules, other gateways' rules, CONNECT tunnels).

mod common;

use common::{Harness, service};
use weft_testkit::client::{Send, direct};
use weft_testkit::upstream;

const GATEWAY: &str = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other-gateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
"#;

async fn get(h: &Harness, host: &str, path: &str) -> weft_testkit::client::Got {
    let addr = h.proxy.gateways[0].1;
    let url = format!("http://{host}{path}");
    direct(
        addr,
        Send {
            url: &url,
            ..Default::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_services_bound_to_the_selected_gateway_route_its_traffic() {
    let web = upstream::named("web").await;
    let admin = upstream::named("admin").await;
    let yaml = format!(
        r#"{}{}{GATEWAY}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [web-gateway]
  http:
  - match: [{{uri: {{prefix: /admin}}, gateways: [other-gateway]}}]
    route: [{{destination: {{host: admin}}}}]
  - match: [{{uri: {{prefix: /}}}}]
    route: [{{destination: {{host: web.default.svc.cluster.local}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: admin-shop, namespace: default}}
spec:
  hosts: [admin.example.com]
  gateways: [default/web-gateway]
  http:
  - route: [{{destination: {{host: admin}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: mesh-only, namespace: default}}
spec:
  hosts: [mesh.example.com]
  http:
  - route: [{{destination: {{host: admin}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: elsewhere, namespace: default}}
spec:
  hosts: [other.example.com]
  gateways: [other-gateway]
  http:
  - route: [{{destination: {{host: admin}}}}]
---
"#,
        service("web", 8080, "HTTP", &[(web.addr, "v1")]),
        service("admin", 8080, "HTTP", &[(admin.addr, "v1")]),
    );
    let h = Harness::gateway(&yaml, &[("istio", "ingressgateway")]).await;

    // "*" serves any host a browser sends, including the gateway's own address.
    let got = get(&h, "127.0.0.1:8000", "/").await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "web"));
    // The /admin entry names another gateway: dropped here, so / catches it.
    let got = get(&h, "shop.example.com", "/admin").await;
    assert_eq!(got.body, "web");
    // An exact host bound by namespace/name beats "*".
    let got = get(&h, "admin.example.com", "/").await;
    assert_eq!(got.body, "admin");
    // Neither a mesh-only VirtualService nor another gateway's takes a host here.
    assert_eq!(get(&h, "mesh.example.com", "/").await.body, "web");
    assert_eq!(get(&h, "other.example.com", "/").await.body, "web");

    // A gateway is not a forward proxy.
    let connect = direct(
        h.proxy.gateways[0].1,
        Send {
            method: "CONNECT",
            url: "http://admin.example.com:8080/",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(connect.status.as_u16(), 405);
    assert_eq!(admin.hits(), 1, "only admin.example.com reached admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_no_gateway_resource_selects_serves_nothing() {
    let web = upstream::named("web").await;
    let yaml = format!(
        r#"{}{GATEWAY}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [web-gateway]
  http:
  - route: [{{destination: {{host: web}}}}]
---
"#,
        service("web", 8080, "HTTP", &[(web.addr, "v1")]),
    );
    let h = Harness::gateway(&yaml, &[("istio", "some-other-gateway")]).await;
    let got = get(&h, "web.example.com", "/").await;
    assert_eq!(got.status.as_u16(), 404);
    assert_eq!(got.header("x-weft-response-flags"), Some("NR"));
    assert_eq!(web.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_hosts_merge_virtual_services_and_clients_cannot_pick_destinations() {
    let a = upstream::named("a").await;
    let b = upstream::named("b").await;
    let yaml = format!(
        r#"{}{}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: shop, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [a.example.com, b.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: first, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}}
spec:
  hosts: ["*"]
  gateways: [shop]
  http:
  - match: [{{uri: {{prefix: /a}}}}]
    route: [{{destination: {{host: a}}}}]
  - match: [{{uri: {{prefix: /elsewhere}}}}]
    route: [{{destination: {{host: anywhere.example.com}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: second, namespace: default, creationTimestamp: "2026-01-02T00:00:00Z"}}
spec:
  hosts: [b.example.com]
  gateways: [shop]
  http:
  - route: [{{destination: {{host: b}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: anywhere, namespace: default}}
spec:
  hosts: [anywhere.example.com]
  resolution: NONE
  ports: [{{number: 80, name: http, protocol: HTTP}}]
---
"#,
        service("a", 8080, "HTTP", &[(a.addr, "v1")]),
        service("b", 8080, "HTTP", &[(b.addr, "v1")]),
    );
    let h = Harness::gateway(&yaml, &[("istio", "ingressgateway")]).await;
    // "*" under a server listing two hosts serves both.
    assert_eq!(get(&h, "a.example.com", "/a").await.body, "a");
    assert_eq!(get(&h, "b.example.com", "/a").await.body, "a");
    // The later VirtualService for b.example.com adds its routes after the older one's.
    assert_eq!(get(&h, "b.example.com", "/other").await.body, "b");
    assert_eq!(
        get(&h, "a.example.com", "/other").await.status.as_u16(),
        404
    );
    // A destination without endpoints would forward to whatever the Host header names:
    // a gateway refuses instead of connecting where its client says.
    let upstream_port = a.addr.port();
    let got = get(&h, &format!("a.example.com:{upstream_port}"), "/elsewhere").await;
    assert_eq!(got.status.as_u16(), 503);
    assert_eq!(got.header("x-weft-response-flags"), Some("NC"));
    assert_eq!(a.hits(), 2);
}
