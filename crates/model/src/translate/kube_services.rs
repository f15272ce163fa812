//! Services from Kubernetes Services, as istiod's Kubernetes registry builds them: the host
//! `<name>.<namespace>.svc.cluster.local`, the Service's ports (protocol from `appProtocol`,
//! then the port name's prefix), its cluster IPs, and as endpoints the Pods and
//! WorkloadEntries its selector picks in its namespace, or, for a Service without a
//! selector, the EndpointSlices labelled with its name.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use weft_api::Resource;
use weft_api::kube::endpoint_slice::SERVICE_NAME_LABEL;
use weft_api::kube::service::ServicePort as KubePort;
use weft_api::kube::{EndpointSlice, IntOrString, KubeObject, Pod, Service as KubeService};
use weft_api::networking::workload_entry::WorkloadEntry;

use super::registry_entries::{endpoint, health_check_of};
use super::scope::{ProxyScope, selects, visible};
use crate::service::{
    Endpoint, EndpointAddress, Protocol, Resolution, Service, ServicePort, WorkloadInfo,
};

/// The annotation that limits where a Kubernetes Service is visible (Istio's `exportTo` for Services).
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// The mesh host of the Service `name` in `namespace`.
pub fn host(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

/// The services of the Kubernetes Services visible to the proxy.
pub(super) fn visible_services(resources: &[Resource], scope: &ProxyScope) -> Vec<Service> {
    let mut pods = Vec::new();
    let mut entries = Vec::new();
    let mut slices = Vec::new();
    for r in resources {
        match r {
            Resource::Pod(p) => pods.push(p),
            Resource::WorkloadEntry(w) => entries.push(w),
            Resource::EndpointSlice(s) => slices.push(s),
            _ => {}
        }
    }
    resources
        .iter()
        .filter_map(|r| match r {
            Resource::Service(s)
                if visible(&export_to(s), s.metadata.namespace(), &scope.namespace) =>
            {
                Some(service(s, &pods, &entries, &slices))
            }
            _ => None,
        })
        .collect()
}

/// The Service's `exportTo`, from its annotation (`.`, `*`, namespaces, comma-separated).
fn export_to(s: &KubeObject<KubeService>) -> Vec<String> {
    s.metadata
        .annotations
        .get(EXPORT_TO_ANNOTATION)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A Kubernetes port's protocol, as Istio decides it: `appProtocol` first (including
/// Kubernetes' `kubernetes.io/h2c`, `kubernetes.io/ws` and `kubernetes.io/wss`), then the
/// port name (`http-web`, `grpc`), UDP as TCP-only, and otherwise detected from the traffic.
pub fn protocol(port: &KubePort) -> Protocol {
    let app = port.app_protocol.as_deref().map(|a| match a {
        "kubernetes.io/h2c" => "HTTP2",
        "kubernetes.io/ws" => "HTTP",
        "kubernetes.io/wss" => "HTTPS",
        other => other,
    });
    match Protocol::parse(app, port.name.as_deref()) {
        Protocol::Unknown if port.protocol.as_deref() == Some("UDP") => Protocol::Tcp,
        p => p,
    }
}

fn service(
    s: &KubeObject<KubeService>,
    pods: &[&KubeObject<Pod>],
    entries: &[&weft_api::Object<WorkloadEntry>],
    slices: &[&KubeObject<EndpointSlice>],
) -> Service {
    let ns = s.metadata.namespace();
    let spec = &s.view.spec;
    let ports: Vec<ServicePort> = spec
        .ports
        .iter()
        .map(|p| {
            let number = u16::try_from(p.port).unwrap_or_default();
            ServicePort {
                number,
                name: p.name.clone().unwrap_or_default(),
                protocol: protocol(p),
                target_port: match p.target_port {
                    Some(IntOrString::Int(t)) => u16::try_from(t).ok().filter(|t| *t != number),
                    _ => None,
                },
            }
        })
        .collect();
    let external = spec.service_type() == "ExternalName";
    let endpoints = if external {
        let name = spec.external_name.clone().unwrap_or_default();
        vec![Endpoint {
            address: EndpointAddress::Dns(name.trim_end_matches('.').to_ascii_lowercase()),
            ports: BTreeMap::new(),
            labels: BTreeMap::new(),
            weight: 1,
            locality: None,
            service_account: None,
            workload: None,
        }]
    } else if spec.selector.is_empty() {
        slice_endpoints(s, slices)
    } else {
        selected_endpoints(s, pods, entries)
    };
    Service {
        hostname: host(&s.metadata.name, ns),
        namespace: ns.to_string(),
        ports,
        endpoints,
        resolution: if external {
            Resolution::Dns
        } else {
            Resolution::Static
        },
        mesh_internal: !external,
        addresses: spec.addresses(),
        source: format!("Service {ns}/{}", s.metadata.name),
        subject_alt_names: Vec::new(),
        health_check: health_check_of(&s.metadata.annotations),
    }
}

/// The ports of one endpoint by Service port name, where a named `targetPort` resolves
/// through `named` (a container port's name) or the endpoint's own port map.
fn named_target_ports(
    s: &KubeService,
    named: impl Fn(&str) -> Option<u16>,
) -> BTreeMap<String, u16> {
    s.spec
        .ports
        .iter()
        .filter_map(|p| match &p.target_port {
            Some(IntOrString::String(target)) => {
                Some((p.name.clone().unwrap_or_default(), named(target)?))
            }
            _ => None,
        })
        .collect()
}

/// The Pods and WorkloadEntries in the Service's namespace whose labels its selector matches.
fn selected_endpoints(
    s: &KubeObject<KubeService>,
    pods: &[&KubeObject<Pod>],
    entries: &[&weft_api::Object<WorkloadEntry>],
) -> Vec<Endpoint> {
    let ns = s.metadata.namespace();
    let selector = &s.view.spec.selector;
    let mut out: Vec<Endpoint> = Vec::new();
    for pod in pods {
        if pod.metadata.namespace() != ns || !selects(selector, &pod.metadata.labels) {
            continue;
        }
        let Some(ip) = pod.view.address() else {
            continue;
        };
        let sa = pod.view.spec.service_account();
        out.push(Endpoint {
            address: EndpointAddress::Ip(ip),
            ports: named_target_ports(&s.view, |name| pod.view.spec.named_port(name)),
            labels: pod.metadata.labels.clone(),
            weight: 1,
            locality: None,
            service_account: Some(sa.to_string()),
            workload: Some(Arc::new(WorkloadInfo::new(
                &pod.metadata.name,
                ns,
                sa,
                &pod.metadata.labels,
            ))),
        });
    }
    for w in entries {
        if w.metadata.namespace() != ns || !selects(selector, &w.spec.labels) {
            continue;
        }
        let mut e = endpoint(&w.spec);
        // A named targetPort is the WorkloadEntry's port of that name.
        for (port, target) in named_target_ports(&s.view, |name| {
            w.spec.ports.get(name).and_then(|p| u16::try_from(*p).ok())
        }) {
            e.ports.entry(port).or_insert(target);
        }
        e.workload = Some(Arc::new(WorkloadInfo::new(
            &w.metadata.name,
            ns,
            w.spec.service_account.as_deref().unwrap_or_default(),
            &w.spec.labels,
        )));
        if !out.iter().any(|o| o.address == e.address) {
            out.push(e);
        }
    }
    out
}

/// The ready endpoints of the EndpointSlices labelled with the Service's name, each port
/// as the slice names it.
fn slice_endpoints(
    s: &KubeObject<KubeService>,
    slices: &[&KubeObject<EndpointSlice>],
) -> Vec<Endpoint> {
    let ns = s.metadata.namespace();
    let mut out: Vec<Endpoint> = Vec::new();
    for slice in slices {
        let owned = slice.metadata.namespace() == ns
            && slice.metadata.labels.get(SERVICE_NAME_LABEL) == Some(&s.metadata.name);
        if !owned {
            continue;
        }
        let ports: BTreeMap<String, u16> = slice
            .view
            .ports
            .iter()
            .filter_map(|p| {
                Some((
                    p.name.clone().unwrap_or_default(),
                    u16::try_from(p.port?).ok()?,
                ))
            })
            .collect();
        for e in slice.view.endpoints.iter().filter(|e| e.is_ready()) {
            let Some(address) = e.addresses.first() else {
                continue;
            };
            let address = match address.parse::<IpAddr>() {
                Ok(ip) => EndpointAddress::Ip(ip),
                Err(_) => EndpointAddress::Dns(address.to_ascii_lowercase()),
            };
            if out.iter().any(|o| o.address == address) {
                continue;
            }
            out.push(Endpoint {
                address,
                ports: ports.clone(),
                labels: BTreeMap::new(),
                weight: 1,
                locality: e.zone.clone(),
                service_account: None,
                workload: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::build;

    fn resources(yaml: &str) -> Vec<Resource> {
        let loaded = weft_api::load_str("k.yaml", yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.resources.into_iter().map(|r| r.resource).collect()
    }

    const REVIEWS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: web}
  - {name: metrics, port: 9090, targetPort: 19090, appProtocol: kubernetes.io/h2c}
  - {name: tcp-raw, port: 7000}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1-a, namespace: shop, labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}}
spec:
  serviceAccountName: bookinfo-reviews
  containers: [{name: app, ports: [{name: web, containerPort: 8080}]}]
status: {phase: Running, podIP: 10.1.0.7}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-old, namespace: shop, labels: {app: reviews}}
spec: {containers: [{name: app}]}
status: {phase: Failed, podIP: 10.1.0.8}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-elsewhere, namespace: other, labels: {app: reviews}}
spec: {containers: [{name: app}]}
status: {phase: Running, podIP: 10.1.0.9}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm, namespace: shop}
spec: {address: 10.2.0.1, labels: {app: reviews, version: v2}, ports: {web: 8081}, serviceAccount: vm}
"#;

    #[test]
    fn a_selector_makes_pods_and_workload_entries_the_endpoints() {
        let mesh = build(&resources(REVIEWS), &ProxyScope::default()).expect("builds");
        let svc = &mesh.services["reviews.shop.svc.cluster.local"];
        assert_eq!(svc.addresses, ["10.96.0.10"]);
        let protocols: Vec<(u16, Protocol)> =
            svc.ports.iter().map(|p| (p.number, p.protocol)).collect();
        assert_eq!(
            protocols,
            [
                (9080, Protocol::Http),
                (9090, Protocol::Http2),
                (7000, Protocol::Tcp)
            ]
        );
        // The running pod of the namespace and the WorkloadEntry; not the failed pod, nor
        // the pod of another namespace.
        let addresses: Vec<String> = svc
            .endpoints
            .iter()
            .map(|e| format!("{:?}", e.address))
            .collect();
        assert_eq!(addresses.len(), 2, "{addresses:?}");
        let (pod, vm) = (&svc.endpoints[0], &svc.endpoints[1]);
        assert_eq!(
            pod.address,
            EndpointAddress::Ip("10.1.0.7".parse().expect("ip"))
        );
        assert_eq!(
            vm.address,
            EndpointAddress::Ip("10.2.0.1".parse().expect("ip"))
        );
        // A named targetPort is the pod's container port of that name, the entry's port of that name.
        assert_eq!(pod.port_for(&svc.ports[0]), 8080);
        assert_eq!(vm.port_for(&svc.ports[0]), 8081);
        assert_eq!(pod.port_for(&svc.ports[1]), 19090);
        assert_eq!(pod.port_for(&svc.ports[2]), 7000);
        // Identity is the pod's service account; the injected label makes it a mesh endpoint.
        assert_eq!(pod.service_account.as_deref(), Some("bookinfo-reviews"));
        let cluster = &mesh.clusters["outbound|9080||reviews.shop.svc.cluster.local"];
        assert!(cluster.endpoints[0].mesh_tls && !cluster.endpoints[1].mesh_tls);
        // Short names resolve to it from its namespace.
        let scope = ProxyScope {
            namespace: "shop".into(),
            ..ProxyScope::default()
        };
        let mesh = build(&resources(REVIEWS), &scope).expect("builds");
        assert!(mesh.http_routes.contains_key(&9080));
    }

    #[test]
    fn slices_external_names_and_export_to() {
        let text = r#"
apiVersion: v1
kind: Service
metadata: {name: legacy, annotations: {networking.istio.io/exportTo: "."}}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: legacy-abc, labels: {kubernetes.io/service-name: legacy}}
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
- addresses: [10.0.0.2]
  conditions: {ready: false}
ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: search}
spec: {type: ExternalName, externalName: search.example.com, ports: [{name: https, port: 443}]}
"#;
        let mesh = build(&resources(text), &ProxyScope::default()).expect("builds");
        let legacy = &mesh.services["legacy.default.svc.cluster.local"];
        assert_eq!(
            legacy.endpoints.len(),
            1,
            "the unready endpoint is left out"
        );
        assert_eq!(legacy.endpoints[0].port_for(&legacy.ports[0]), 8080);
        let search = &mesh.services["search.default.svc.cluster.local"];
        assert_eq!(search.resolution, Resolution::Dns);
        assert!(!search.mesh_internal);
        assert_eq!(
            search.endpoints[0].address,
            EndpointAddress::Dns("search.example.com".into())
        );
        // exportTo "." hides the Service from other namespaces.
        let elsewhere = ProxyScope {
            namespace: "shop".into(),
            ..ProxyScope::default()
        };
        let mesh = build(&resources(text), &elsewhere).expect("builds");
        assert!(
            !mesh
                .services
                .contains_key("legacy.default.svc.cluster.local")
        );
        assert!(
            mesh.services
                .contains_key("search.default.svc.cluster.local")
        );
    }
}
