//! A proxy started in-process from Istio YAML written to a temporary directory.

#![allow(dead_code)]

pub mod jwt;
pub mod pki;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;

use weft_model::ProxyScope;
use weft_proxy::{ProxyOptions, RunningProxy};
use weft_testkit::{any_port, fresh_dir, mesh};

/// A running proxy and the directory holding its configuration.
pub struct Harness {
    pub proxy: RunningProxy,
    pub dir: PathBuf,
}

impl Harness {
    /// Starts a proxy on ephemeral ports with `yaml` as its configuration.
    pub async fn start(yaml: &str) -> Harness {
        Harness::start_with(yaml, None).await
    }

    /// Starts a proxy fronting `app` on its inbound listener.
    pub async fn start_with(yaml: &str, app: Option<SocketAddr>) -> Harness {
        Harness::start_as(yaml, app, ProxyScope::default(), Vec::new(), None, None).await
    }

    /// Starts a sidecar for workload `identity` (its labels are the scope's), fronting `app`.
    pub async fn sidecar(
        yaml: &str,
        app: Option<SocketAddr>,
        identity: weft_model::service::WorkloadInfo,
        labels: &[(&str, &str)],
    ) -> Harness {
        Harness::traced_sidecar(yaml, app, identity, labels, None).await
    }

    /// A sidecar as [`Harness::sidecar`], sending spans per `tracing`.
    pub async fn traced_sidecar(
        yaml: &str,
        app: Option<SocketAddr>,
        identity: weft_model::service::WorkloadInfo,
        labels: &[(&str, &str)],
        tracing: Option<weft_proxy::TracingOptions>,
    ) -> Harness {
        let scope = ProxyScope {
            namespace: identity.namespace.clone(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            gateway: false,
        };
        Harness::start_as(yaml, app, scope, Vec::new(), Some(identity), tracing).await
    }

    /// Starts an ingress gateway proxy with `labels`, serving Gateway port 80 on an
    /// ephemeral port (`proxy.gateways[0].1`).
    pub async fn gateway(yaml: &str, labels: &[(&str, &str)]) -> Harness {
        let scope = ProxyScope {
            namespace: "istio-system".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            gateway: true,
        };
        Harness::start_as(yaml, None, scope, vec![(80, any_port())], None, None).await
    }

    /// A gateway proxy serving the Gateway server `ports`, each on a port of its own.
    pub async fn gateway_on(yaml: &str, labels: &[(&str, &str)], ports: &[u16]) -> Harness {
        let scope = ProxyScope {
            namespace: "istio-system".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            gateway: true,
        };
        let listeners = ports.iter().map(|p| (*p, any_port())).collect();
        Harness::start_as(yaml, None, scope, listeners, None, None).await
    }

    /// The gateway proxy of Gateway API Gateway `namespace/name` (labelled with its name,
    /// as Istio's automated deployment labels it), serving listener `ports`.
    pub async fn kubernetes_gateway(
        yaml: &str,
        namespace: &str,
        name: &str,
        ports: &[u16],
    ) -> Harness {
        let scope = ProxyScope {
            namespace: namespace.into(),
            labels: [(
                "gateway.networking.k8s.io/gateway-name".to_string(),
                name.to_string(),
            )]
            .into(),
            gateway: true,
        };
        let listeners = ports.iter().map(|p| (*p, any_port())).collect();
        Harness::start_as(yaml, None, scope, listeners, None, None).await
    }

    async fn start_as(
        yaml: &str,
        app: Option<SocketAddr>,
        scope: ProxyScope,
        gateways: Vec<(u16, SocketAddr)>,
        identity: Option<weft_model::service::WorkloadInfo>,
        tracing: Option<weft_proxy::TracingOptions>,
    ) -> Harness {
        let access_log = std::env::var_os("WEFT_TEST_ACCESS_LOG").map(|_| {
            (
                weft_proxy::telemetry::access_log::Target::Stdout,
                weft_proxy::telemetry::access_log::Format::Text,
            )
        });
        let dir = fresh_dir("proxy-test");
        let opts = ProxyOptions {
            app,
            gateways,
            scope,
            stats: Some(any_port()),
            identity,
            tracing,
            access_log,
            ..mesh::file_options(&dir, yaml, "test")
        };
        let proxy = mesh::start_proxy(opts).await;
        Harness { proxy, dir }
    }

    /// Replaces the configuration file.
    pub fn write(&self, yaml: &str) {
        mesh::write_config(&self.dir, yaml);
    }

    /// The proxy's `/stats/prometheus` text.
    pub async fn stats(&self) -> String {
        let addr = self.proxy.stats.expect("a stats listener");
        weft_testkit::client::admin_get(addr, "/stats/prometheus")
            .await
            .body
    }

    /// The configuration version in force.
    pub fn version(&self) -> u64 {
        self.proxy.snapshots.load().version
    }
}

/// A ServiceEntry for `host` (FQDN in `default`) on `port` with endpoints `(addr, version)`.
pub fn service(name: &str, port: u16, protocol: &str, endpoints: &[(SocketAddr, &str)]) -> String {
    let mut eps = String::new();
    for (addr, version) in endpoints {
        eps.push_str(&format!(
            "  - address: {}\n    ports: {{{}: {}}}\n    labels: {{version: {version}}}\n",
            addr.ip(),
            protocol.to_lowercase(),
            addr.port()
        ));
    }
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{name}.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: {port}, name: {}, protocol: {protocol}}}]\n  endpoints:\n{eps}---\n",
        protocol.to_lowercase()
    )
}

/// A DestinationRule with subsets v1 and v2 for `name`.
pub fn subsets(name: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}}}\nspec:\n  host: {name}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\n"
    )
}

/// A VirtualService for `name` with `http` as its (indented) rules.
pub fn virtual_service(name: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{name}]\n  http:\n{http}---\n"
    )
}
