//! The `weft up` manifest: the workloads of a mesh, its ingress, and the Istio resources
//! to apply once it is up (format: docs/up.md).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::Deserialize;

/// Most workloads one mesh can hold (one address each in a /24).
pub const MAX_WORKLOADS: usize = 250;

/// A `weft up` manifest.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The workloads to run (with those of the Deployments among `resources`).
    #[serde(default)]
    pub workloads: Vec<Workload>,
    /// The Kubernetes Services and Deployments among `resources`.
    #[serde(skip)]
    pub kube: super::kube::KubeResources,
    /// Istio resource files to apply once the mesh is up.
    #[serde(default)]
    pub resources: Vec<PathBuf>,
    /// The ingress gateway.
    #[serde(default)]
    pub ingress: Ingress,
    /// Tracing.
    #[serde(default)]
    pub tracing: Tracing,
}

/// How the mesh's proxies trace.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    /// Percent of new traces sampled (Istio's default: 1).
    #[serde(default = "default_sampling")]
    pub sampling: f64,
    /// Send spans to this OTLP/HTTP endpoint (Jaeger, Tempo, a collector:
    /// `http://host:4318/v1/traces`) instead of the control plane's trace store.
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing {
            sampling: default_sampling(),
            endpoint: None,
        }
    }
}

fn default_sampling() -> f64 {
    1.0
}

/// One workload: an app and its sidecar.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Workload name (unique; a DNS label of at most 40 characters).
    pub name: String,
    /// The service it belongs to.
    pub service: String,
    /// Namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Service account.
    #[serde(default = "default_namespace")]
    pub service_account: String,
    /// Extra labels (`version: v2`); `app: <service>` is added.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The app's command and arguments.
    pub command: Vec<String>,
    /// The port the app listens on (also the service port).
    pub port: u16,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of the Kubernetes Service ports that reach this workload (a Deployment's), which
    /// its sidecar registers besides `http`.
    #[serde(skip)]
    pub port_names: Vec<String>,
}

/// The ingress gateway `weft up` runs: a `weft proxy` labelled `istio: ingressgateway`
/// serving the Gateway servers of `port` at `address` on the host.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ingress {
    /// Where browsers and curl reach it.
    #[serde(default = "default_ingress_address")]
    pub address: SocketAddr,
    /// The Gateway server port it serves (`servers[].port.number`).
    #[serde(default = "default_ingress_port")]
    pub port: u16,
    /// More Gateway server ports it serves, each at an address of its own (HTTPS on 443,
    /// a TCP server, ...), as an ingress gateway's Service lists its ports.
    #[serde(default)]
    pub extra_ports: Vec<IngressPort>,
}

/// One more Gateway server port of the ingress gateway, and where it listens on the host.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressPort {
    /// The Gateway server port (`servers[].port.number`).
    pub port: u16,
    /// Where clients reach it.
    pub address: SocketAddr,
}

impl Default for Ingress {
    fn default() -> Self {
        Ingress {
            address: default_ingress_address(),
            port: default_ingress_port(),
            extra_ports: Vec::new(),
        }
    }
}

fn default_namespace() -> String {
    "default".into()
}

fn default_ingress_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8000))
}

fn default_ingress_port() -> u16 {
    80
}

/// Reads and checks a manifest; every mistake names the file, line and field.
pub fn read(path: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let docs = weft_api::source::parse_documents(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), e.pos, e.message))?;
    let doc = docs
        .first()
        .ok_or_else(|| anyhow::anyhow!("{} is empty", path.display()))?;
    let ctx = std::cell::RefCell::new(weft_api::source::ReadContext::default());
    let read = weft_api::source::from_node::<Manifest>(doc, "", &ctx);
    let located = |pos: Option<weft_api::source::Pos>, field: Option<String>, message: &str| {
        format!(
            "{}:{}: {}: {message}",
            path.display(),
            pos.unwrap_or_default(),
            field.unwrap_or_default()
        )
    };
    let mut errors: Vec<String> = ctx
        .borrow()
        .errors
        .iter()
        .map(|e| located(e.pos, e.path.clone(), &e.message))
        .collect();
    let manifest = match read {
        Ok(m) => Some(m),
        Err(e) => {
            errors.push(located(e.pos, e.path, &e.message));
            None
        }
    };
    if !errors.is_empty() {
        bail!("invalid manifest:\n  {}", errors.join("\n  "));
    }
    let mut manifest = manifest.ok_or_else(|| anyhow::anyhow!("invalid manifest"))?;
    manifest.kube = super::kube::read(&manifest.resources)
        .map_err(|e| anyhow::anyhow!("{}: resources: {e:#}", path.display()))?;
    super::gateways::check(&manifest.kube.gateways)
        .map_err(|e| anyhow::anyhow!("{}: resources: {e:#}", path.display()))?;
    let deployed = manifest
        .kube
        .workloads()
        .map_err(|e| anyhow::anyhow!("{}: resources: {e:#}", path.display()))?;
    manifest.workloads.extend(deployed);
    if manifest.workloads.is_empty() {
        bail!(
            "{}: workloads: none (list `workloads`, or Deployments among `resources`)",
            path.display()
        );
    }
    check(&manifest).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(manifest)
}

fn check(manifest: &Manifest) -> Result<(), String> {
    use weft_api::validate::checks::is_dns1123_label;
    let ingress = &manifest.ingress;
    let mut ports = std::collections::BTreeSet::from([ingress.port]);
    let mut addresses = std::collections::BTreeSet::from([ingress.address]);
    for (i, p) in ingress.extra_ports.iter().enumerate() {
        let at = format!("ingress.extraPorts[{i}]");
        if p.port == 0 {
            return Err(format!("{at}.port: 0 is not a Gateway server port"));
        }
        if !ports.insert(p.port) {
            return Err(format!(
                "{at}.port: Gateway port {} is already served",
                p.port
            ));
        }
        if !addresses.insert(p.address) {
            return Err(format!(
                "{at}.address: {} is already the address of another ingress port",
                p.address
            ));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, w) in manifest.workloads.iter().enumerate() {
        let at = format!("workloads[{i}]");
        // The name becomes the network namespace `weft-<name>`.
        if !is_dns1123_label(&w.name) || w.name.len() > 40 {
            return Err(format!(
                "{at}.name: {:?} must be a DNS label (lower-case letters, digits, '-') of at most 40 characters",
                w.name
            ));
        }
        if !names.insert(&w.name) {
            return Err(format!("{at}.name: workload {:?} is listed twice", w.name));
        }
        for (field, value) in [("service", &w.service), ("namespace", &w.namespace)] {
            if !is_dns1123_label(value) {
                return Err(format!("{at}.{field}: {value:?} must be a DNS label"));
            }
        }
        if w.command.is_empty() {
            return Err(format!(
                "{at}.command: workload {:?} has an empty command",
                w.name
            ));
        }
        if w.port == 0 || [15000, 15001, 15006, 15020].contains(&w.port) {
            return Err(format!(
                "{at}.port: {} is not available to apps (0 and the sidecar's 15000, 15001, 15006, 15020 are taken)",
                w.port
            ));
        }
    }
    if !(0.0..=100.0).contains(&manifest.tracing.sampling) {
        return Err(format!(
            "tracing.sampling: {} is not a percentage between 0 and 100",
            manifest.tracing.sampling
        ));
    }
    if let Some(endpoint) = &manifest.tracing.endpoint {
        let ok = endpoint
            .parse::<http::Uri>()
            .is_ok_and(|u| u.scheme_str() == Some("http") && u.authority().is_some());
        if !ok {
            return Err(format!(
                "tracing.endpoint: {endpoint:?} is not an http:// URL like http://127.0.0.1:4318/v1/traces"
            ));
        }
    }
    if manifest.workloads.len() > MAX_WORKLOADS {
        return Err(format!(
            "workloads: at most {MAX_WORKLOADS} workloads fit one mesh"
        ));
    }
    // A service's port is its workloads' port: they must agree (a Kubernetes Service says
    // its own ports).
    let mut ports: BTreeMap<(&str, &str), u16> = BTreeMap::new();
    for w in &manifest.workloads {
        if manifest.kube.service(&w.namespace, &w.service).is_some() {
            continue;
        }
        let port = *ports.entry((&w.namespace, &w.service)).or_insert(w.port);
        if port != w.port {
            return Err(format!(
                "workload {:?}: service {}.{} already has port {port} (from another workload), not {}",
                w.name, w.service, w.namespace, w.port
            ));
        }
    }
    Ok(())
}
