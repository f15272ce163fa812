use super::*;

const ROUTES: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bff-gateway, namespace: default}
spec:
  gatewayClassName: weft
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: recommendation-split, namespace: default}
spec:
  parentRefs: [{kind: Service, group: "", name: recommendation-service, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-canary, value: "true"}], method: GET}]
    timeouts: {request: 2s}
    backendRefs:
    - {name: recommendation-v1, port: 8080, weight: 10}
    - {name: recommendation-v2, port: 8080, weight: 90}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bff-ingress, namespace: default}
spec:
  parentRefs: [{name: bff-gateway}, {name: missing-gateway}]
  rules:
  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: bff-shadow, port: 8080}, percent: 5}}]
    backendRefs: [{name: bff-service, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{kind: Service, group: "", name: echo}]
  rules:
  - matches: [{method: {service: echo.Echo, method: Say}}]
    backendRefs: [{name: echo, port: 9000}]
"#;

#[test]
fn routes_show_parents_with_their_status_matches_and_backend_shares() {
    let (store, dir) = crate::dashboard::test_store("routes", ROUTES);
    let page = list(&store, &Proxies::default());
    let routes = page["routes"].as_array().expect("routes");
    let find = |kind: &str, name: &str| {
        routes
            .iter()
            .find(|r| r["kind"] == kind && r["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} in {page:#}"))
    };
    assert_eq!(routes.len(), 3, "{page:#}");

    let split = find("HTTPRoute", "recommendation-split");
    let rule = &split["rules"][0];
    assert_eq!(
        rule["matches"],
        json!(["PathPrefix /api · GET · header x-canary=true"])
    );
    assert_eq!(rule["timeouts"], "request 2s");
    assert_eq!(rule["backends"][0]["name"], "recommendation-v1");
    assert_eq!(rule["backends"][0]["percent"], 10.0);
    assert_eq!(rule["backends"][1]["percent"], 90.0);
    let parent = &split["parents"][0];
    assert_eq!(parent["kind"], "Service");
    assert_eq!(parent["name"], "recommendation-service");
    // No Service recommendation-service is stored: the status says so, and the page shows it.
    assert!(parent["accepted"]["status"].is_string(), "{parent:#}");

    let ingress = find("HTTPRoute", "bff-ingress");
    let parents = ingress["parents"].as_array().expect("parents");
    assert_eq!(parents[0]["accepted"]["status"], "True", "{ingress:#}");
    // No Service bff-service is stored: the backend does not resolve.
    assert_eq!(parents[0]["resolvedRefs"]["reason"], "BackendNotFound");
    // A Gateway that does not exist is no controller's: no conditions, shown as such.
    assert_eq!(parents[1]["name"], "missing-gateway");
    assert_eq!(parents[1]["accepted"], Value::Null, "{ingress:#}");
    assert_eq!(
        ingress["rules"][0]["filters"],
        json!(["RequestMirror to bff-shadow (5 %)"])
    );
    assert_eq!(ingress["rules"][0]["backends"][0]["percent"], 100.0);
    assert_eq!(ingress["rules"][0]["matches"], json!([]));

    let grpc = find("GRPCRoute", "echo");
    assert_eq!(grpc["rules"][0]["matches"], json!(["method echo.Echo/Say"]));
    let _ = std::fs::remove_dir_all(&dir);
}
