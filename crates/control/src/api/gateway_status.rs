//! The Gateway API status of the objects read (GatewayClass, Gateway, HTTPRoute,
//! GRPCRoute), worked
//! out at each read from the resources in force and the gateway proxies connected
//! ([`weft_model::gateway::status`]), so `kubectl get -o yaml` and `weft get -o yaml`
//! always show the current conditions.

use weft_api::{Kind, Resource};
use weft_model::gateway::kubernetes::GATEWAY_NAME_LABEL;
use weft_model::gateway::status::{self, ConnectedGateway};

use crate::store::Store;
use crate::xds::Proxies;

/// Replaces the status of the Gateway API objects among `items` with the current one.
pub fn fill(store: &Store, proxies: &Proxies, items: &mut [Resource]) {
    let kinds = [
        Kind::GatewayClass,
        Kind::KubernetesGateway,
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::TcpRoute,
        Kind::TlsRoute,
    ];
    if !items.iter().any(|r| kinds.contains(&r.kind())) {
        return;
    }
    let resources = store.all();
    let connected = connected(&resources, proxies);
    for r in items.iter_mut() {
        if let Some(s) = status::of(&resources, r, &connected) {
            set_status(r, s);
        }
    }
}

fn set_status(r: &mut Resource, value: serde_json::Value) {
    match r {
        Resource::GatewayClass(o) => o.status = Some(value),
        Resource::KubernetesGateway(o) => o.status = Some(value),
        Resource::HttpRoute(o) => o.status = Some(value),
        Resource::GrpcRoute(o) => o.status = Some(value),
        Resource::TcpRoute(o) => o.status = Some(value),
        Resource::TlsRoute(o) => o.status = Some(value),
        _ => {}
    }
}

/// The Gateways served by a connected gateway proxy: the one named `<gateway>-<class>`
/// (as `weft up` names it) or whose registered workload carries the Gateway's name label.
fn connected(resources: &[Resource], proxies: &Proxies) -> Vec<ConnectedGateway> {
    let list = proxies.list();
    resources
        .iter()
        .filter_map(|r| match r {
            Resource::KubernetesGateway(g) => Some(g),
            _ => None,
        })
        .filter_map(|g| {
            let (ns, name) = (g.metadata.namespace(), &g.metadata.name);
            let id =
                weft_proto::node_id(true, &format!("{name}-{}", g.spec.gateway_class_name), ns);
            let proxy = list.iter().find(|p| {
                p.id == id
                    || (weft_proto::is_gateway_id(&p.id)
                        && p.namespace == ns
                        && p.workload.as_ref().is_some_and(|w| {
                            w["spec"]["labels"][GATEWAY_NAME_LABEL].as_str() == Some(name)
                        }))
            })?;
            Some(ConnectedGateway {
                gateway: (ns.to_string(), name.clone()),
                address: proxy
                    .admin
                    .as_deref()
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                    .map(|a| a.ip().to_string()),
            })
        })
        .collect()
}
