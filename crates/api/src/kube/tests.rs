use crate::load_str;
use crate::resource::{Kind, Resource};

/// The located `field: message` of every diagnostic of `yaml`.
fn diagnostics(yaml: &str) -> Vec<String> {
    load_str("k.yaml", yaml)
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.field.clone().unwrap_or_default(), d.message))
        .collect()
}

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: shop
  labels: {app: reviews}
spec:
  selector: {app: reviews}
  sessionAffinity: ClientIP
  ports:
  - name: http-web
    port: 9080
    targetPort: web
  - name: grpc
    port: 9090
    targetPort: 9091
    appProtocol: grpc
"#;

#[test]
fn a_service_is_read_and_kept_whole() {
    let loaded = load_str("k.yaml", SERVICE);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let Resource::Service(s) = &loaded.resources[0].resource else {
        panic!("not a Service: {:?}", loaded.resources[0].resource);
    };
    assert_eq!(loaded.resources[0].resource.namespace(), "shop");
    assert_eq!(s.view.spec.selector["app"], "reviews");
    assert_eq!(
        s.view.spec.ports[0].target_port,
        Some(super::IntOrString::String("web".into()))
    );
    assert_eq!(
        s.view.spec.ports[1].target_port,
        Some(super::IntOrString::Int(9091))
    );
    // A field weft does not read is kept as written, and served back.
    let json = serde_json::to_value(&loaded.resources[0].resource).expect("serializes");
    assert_eq!(json["spec"]["sessionAffinity"], "ClientIP");
    assert_eq!(json["apiVersion"], "v1");
    assert_eq!(json["metadata"]["name"], "reviews");
    // And it reads back the same from JSON (the store's form).
    let again = load_str("k.json", &json.to_string());
    assert!(again.diagnostics.is_empty(), "{:?}", again.diagnostics);
    assert_eq!(again.resources[0].resource, loaded.resources[0].resource);
}

#[test]
fn service_mistakes_are_located_as_kubernetes_words_them() {
    let bad = SERVICE
        .replace("port: 9080", "port: 99999")
        .replace("name: grpc", "name: http-web")
        .replace("targetPort: web", "targetPort: Not_A_Name")
        .replace(
            "selector: {app: reviews}",
            "selector: {app: reviews}\n  type: Cluster",
        );
    let got = diagnostics(&bad);
    let want = [
        "spec.type: Unsupported value: \"Cluster\"",
        "spec.ports[0].port: Invalid value: 99999: must be between 1 and 65535",
        "spec.ports[0].targetPort: Invalid value: \"Not_A_Name\"",
        "spec.ports[1].name: Duplicate value: \"http-web\"",
    ];
    for w in want {
        assert!(
            got.iter().any(|g| g.starts_with(w)),
            "missing {w:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    let two_unnamed = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 1}, {port: 2}]\n";
    assert_eq!(
        diagnostics(two_unnamed),
        [
            "spec.ports[0].name: Required value",
            "spec.ports[1].name: Required value"
        ]
    );
    let no_ports = "apiVersion: v1\nkind: Service\nmetadata: {name: 1a}\nspec: {}\n";
    let got = diagnostics(no_ports);
    assert!(
        got.iter()
            .any(|g| g.starts_with("spec.ports: Required value")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("metadata.name: Invalid value: \"1a\"")),
        "{got:?}"
    );
    let external =
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {type: ExternalName}\n";
    assert_eq!(diagnostics(external), ["spec.externalName: Required value"]);
}

#[test]
fn pods_give_address_identity_and_named_ports() {
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1-abc, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  serviceAccountName: bookinfo-reviews
  nodeName: node-1
  containers:
  - name: reviews
    image: docker.io/istio/examples-bookinfo-reviews-v1:1.20
    ports: [{name: web, containerPort: 9080}]
status: {phase: Running, podIP: 10.1.0.7}
"#;
    let loaded = load_str("p.yaml", pod);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let Resource::Pod(p) = &loaded.resources[0].resource else {
        panic!("not a Pod");
    };
    assert_eq!(p.view.spec.service_account(), "bookinfo-reviews");
    assert_eq!(p.view.spec.named_port("web"), Some(9080));
    assert_eq!(p.view.address(), Some("10.1.0.7".parse().expect("ip")));
    assert!(!p.view.spec.has_sidecar());
    let done = pod.replace("phase: Running", "phase: Succeeded");
    let Resource::Pod(p) = &load_str("p.yaml", &done).resources[0].resource else {
        panic!("not a Pod");
    };
    assert_eq!(p.view.address(), None, "a finished pod serves nothing");
    let bad = pod
        .replace("podIP: 10.1.0.7", "podIP: ten")
        .replace("containerPort: 9080", "containerPort: 0");
    let got = diagnostics(&bad);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("spec.containers[0].ports[0].containerPort: Invalid value: 0"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("status.podIP: Invalid value: \"ten\""),
        "{got:?}"
    );
}

#[test]
fn endpoint_slices_deployments_and_namespaces() {
    let text = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: legacy-1, labels: {kubernetes.io/service-name: legacy}}
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
- addresses: [10.0.0.2]
  conditions: {ready: false}
ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
spec:
  replicas: 2
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec:
      containers: [{name: app, image: reviews, command: [python3, app.py], ports: [{containerPort: 9080}]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
"#;
    let loaded = load_str("k.yaml", text);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let kinds: Vec<Kind> = loaded.resources.iter().map(|r| r.resource.kind()).collect();
    assert_eq!(
        kinds,
        [Kind::EndpointSlice, Kind::Deployment, Kind::Namespace]
    );
    let Resource::EndpointSlice(s) = &loaded.resources[0].resource else {
        panic!()
    };
    assert!(s.view.endpoints[0].is_ready() && !s.view.endpoints[1].is_ready());
    let Resource::Deployment(d) = &loaded.resources[1].resource else {
        panic!()
    };
    assert_eq!(d.view.spec.replicas(), 2);
    assert_eq!(
        d.view.spec.template.spec.containers[0].command,
        ["python3", "app.py"]
    );
    // A Namespace is cluster-scoped.
    assert_eq!(loaded.resources[2].resource.namespace(), "");

    let bad = text
        .replace("addressType: IPv4", "addressType: IPv5")
        .replace("matchLabels: {app: reviews}", "matchLabels: {app: ratings}")
        .replace("name: shop,", "name: shop, namespace: x,");
    let got = diagnostics(&bad);
    assert_eq!(got.len(), 3, "{got:#?}");
    let wrong_family = text.replace("addresses: [10.0.0.1]", "addresses: ['fd00::1']");
    assert_eq!(
        diagnostics(&wrong_family),
        ["endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address"]
    );
    assert!(
        got[0].starts_with("addressType: Unsupported value: \"IPv5\""),
        "{got:?}"
    );
    assert!(
        got[1]
            .starts_with("spec.template.metadata.labels: Invalid value: `selector` does not match"),
        "{got:?}"
    );
    assert!(
        got[2].starts_with("metadata.namespace: Forbidden"),
        "{got:?}"
    );
}

#[test]
fn kinds_weft_has_no_use_for_are_skipped_and_istio_typos_stay_errors() {
    let text = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: s}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\n---\napiVersion: networking.istio.io/v1\nkind: Servce\nmetadata: {name: s}\n";
    let loaded = load_str("k.yaml", text);
    let errors: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(loaded.diagnostics.len(), 3, "{:?}", loaded.diagnostics);
    assert_eq!(errors.len(), 1, "{:?}", loaded.diagnostics);
    assert!(
        errors[0].message.contains("unsupported kind `Servce`"),
        "{:?}",
        errors[0]
    );
    assert!(
        loaded.diagnostics[0]
            .message
            .starts_with("skipped: weft has no use for `LimitRange` (v1)")
    );
}
