use super::*;
use crate::history::Edge;

fn peer(workload: &str, ns: &str, service: &str, version: &str) -> Peer {
    Peer {
        workload: workload.into(),
        namespace: ns.into(),
        service: service.into(),
        version: version.into(),
    }
}

fn unknown() -> Peer {
    peer("unknown", "unknown", "unknown", "unknown")
}

fn key(
    reporter: Reporter,
    src: Peer,
    dst: Peer,
    service: &str,
    code: u16,
    flags: &str,
) -> RequestKey {
    RequestKey {
        edge: Edge {
            reporter,
            source: src,
            destination: dst,
            service: service.into(),
            service_namespace: "default".into(),
            mtls: reporter == Reporter::Destination,
        },
        protocol: "http".into(),
        code,
        flags: flags.into(),
    }
}

fn row(requests: f32) -> RequestRow {
    let mut r = RequestRow {
        requests,
        ..RequestRow::default()
    };
    r.duration[2] = requests;
    r
}

fn edge<'v>(graph: &'v Value, id: &str) -> &'v Value {
    graph["edges"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["id"] == id))
        .unwrap_or_else(|| panic!("no edge {id} in {graph:#}"))
}

#[test]
fn the_seed_graph_counts_each_request_once_and_shows_faults() {
    let gw = peer(
        "istio-ingressgateway",
        "istio-system",
        "istio-ingressgateway",
        "unknown",
    );
    let bff = peer("bff-service", "default", "bff-service", "unknown");
    let v1 = peer(
        "recommendation-v1",
        "default",
        "recommendation-service",
        "v1",
    );
    let v2 = peer(
        "recommendation-v2",
        "default",
        "recommendation-service",
        "v2",
    );
    let totals = vec![
        // Both sides report the gateway's calls; the graph counts the client's, and takes
        // mTLS from the server's.
        (
            key(
                Reporter::Destination,
                gw.clone(),
                bff.clone(),
                "bff-service",
                200,
                "-",
            ),
            row(60.0),
        ),
        (
            key(
                Reporter::Source,
                gw.clone(),
                bff.clone(),
                "bff-service",
                200,
                "-",
            ),
            row(60.0),
        ),
        (
            key(
                Reporter::Destination,
                bff.clone(),
                v1.clone(),
                "recommendation-service",
                200,
                "-",
            ),
            row(6.0),
        ),
        (
            key(
                Reporter::Destination,
                bff.clone(),
                v2.clone(),
                "recommendation-service",
                200,
                "-",
            ),
            row(54.0),
        ),
        // The client side of the same calls (the server side's only give the lock).
        (
            key(
                Reporter::Source,
                bff.clone(),
                v1.clone(),
                "recommendation-service",
                200,
                "-",
            ),
            row(6.0),
        ),
        (
            key(
                Reporter::Source,
                bff.clone(),
                v2.clone(),
                "recommendation-service",
                200,
                "-",
            ),
            row(54.0),
        ),
        // A fault answered at the client: only the client side knows.
        (
            key(
                Reporter::Source,
                bff.clone(),
                unknown(),
                "recommendation-service",
                500,
                "FI",
            ),
            row(60.0),
        ),
        // A caller outside the mesh, straight to bff's sidecar.
        (
            key(
                Reporter::Destination,
                unknown(),
                bff.clone(),
                "bff-service",
                200,
                "-",
            ),
            row(6.0),
        ),
    ];
    let g = build(&totals, 60, None, &[], &[]);
    let gw_edge = edge(
        &g,
        "wl:istio-system/istio-ingressgateway>svc:default/bff-service",
    );
    assert_eq!(gw_edge["rps"], 1.0, "{gw_edge}");
    assert_eq!(gw_edge["health"], "healthy");
    assert_eq!(gw_edge["mtls"], true);
    assert_eq!(
        edge(
            &g,
            "svc:default/recommendation-service>wl:default/recommendation-v2"
        )["rps"],
        0.9
    );
    assert_eq!(
        edge(
            &g,
            "svc:default/recommendation-service>wl:default/recommendation-v1"
        )["rps"],
        0.1
    );
    let into = edge(
        &g,
        "wl:default/bff-service>svc:default/recommendation-service",
    );
    assert_eq!(into["rps"], 2.0);
    assert_eq!(into["errorRate"], 0.5);
    assert_eq!(into["health"], "failing");
    assert_eq!(into["flags"]["FI"], 0.5);
    assert_eq!(edge(&g, "outside>svc:default/bff-service")["rps"], 0.1);
    let kinds: BTreeMap<String, String> = g["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap_or_default().to_string(),
                n["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(kinds["wl:istio-system/istio-ingressgateway"], "gateway");
    assert_eq!(kinds["outside"], "outside");
    assert_eq!(kinds["svc:default/recommendation-service"], "service");
    // The namespace filter keeps istio-system's gateway because it calls into default.
    let only = build(&totals, 60, Some("istio-system"), &[], &[]);
    assert_eq!(only["edges"].as_array().map(Vec::len), Some(1));
}

#[test]
fn health_thresholds() {
    assert_eq!(health(0.0, 0.0), "idle");
    assert_eq!(health(1.0, 0.0), "healthy");
    assert_eq!(health(1.0, 0.001), "degraded");
    assert_eq!(health(1.0, 0.2), "failing");
}

#[test]
fn markers_come_from_virtual_services_and_destination_rules() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: default}
spec:
  hosts: [recommendation-service]
  http:
  - fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
    route:
    - {destination: {host: recommendation-service, subset: v1}, weight: 10}
    - {destination: {host: recommendation-service, subset: v2}, weight: 90}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b, namespace: default}
spec:
  host: bff-service.default.svc.cluster.local
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}
"#;
    let loaded = weft_api::load_str("t.yaml", text);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let resources: Vec<Resource> = loaded.resources.into_iter().map(|l| l.resource).collect();
    let m = markers(&resources);
    let rec = m[&("default".to_string(), "recommendation-service".to_string())];
    assert!(rec.split && rec.fault && !rec.circuit_breaker);
    assert!(m[&("default".to_string(), "bff-service".to_string())].circuit_breaker);
}

#[test]
fn an_http_route_attached_to_a_service_marks_its_split() {
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: recommendation-service, port: 8080}]
  rules:
  - backendRefs:
    - {name: recommendation-v1, port: 8080, weight: 10}
    - {name: recommendation-v2, port: 8080, weight: 90}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: one, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: bff-service}]
  rules:
  - backendRefs:
    - {name: bff-v1, port: 8080}
    - {name: bff-v2, port: 8080, weight: 0}
"#;
    let loaded = weft_api::load_str("t.yaml", text);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let resources: Vec<Resource> = loaded.resources.into_iter().map(|l| l.resource).collect();
    let m = markers(&resources);
    assert!(m[&("default".to_string(), "recommendation-service".to_string())].split);
    assert!(
        !m[&("default".to_string(), "bff-service".to_string())].split,
        "one backend with weight is no split"
    );
}

#[test]
fn a_gateway_api_gateways_proxy_is_a_gateway_node_carrying_its_traffic() {
    // `weft up` names it `<gateway>-<class>`; it registered as a gateway (router~ id).
    let gw = peer("bff-gateway-weft", "default", "bff-gateway-weft", "unknown");
    let bff = peer("bff-service", "default", "bff-service", "v1");
    let registered = weft_api::load_str(
        "registration",
        r#"{"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
            "metadata": {"name": "bff-gateway-weft", "namespace": "default",
                         "annotations": {"weft.io/registered-by": "router~bff-gateway-weft.default"}},
            "spec": {"address": "127.0.20.1"}}"#,
    )
    .resources
    .into_iter()
    .map(|r| r.resource)
    .collect::<Vec<_>>();
    assert_eq!(registered.len(), 1);
    let totals = vec![(
        key(Reporter::Source, gw, bff, "bff-service", 200, "-"),
        row(30.0),
    )];
    let g = build(&totals, 60, None, &registered, &[]);
    let node = g["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == "wl:default/bff-gateway-weft"))
        .unwrap_or_else(|| panic!("{g:#}"));
    assert_eq!(node["kind"], "gateway", "{node}");
    assert_eq!(node["rps"], 0.5, "its outbound traffic: {node}");
    // Without the registration it is a plain workload (nothing says it is a gateway).
    let g = build(&totals, 60, None, &[], &[]);
    assert!(
        g["nodes"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n["id"] == "wl:default/bff-gateway-weft" && n["kind"] == "workload")),
        "{g:#}"
    );
}
