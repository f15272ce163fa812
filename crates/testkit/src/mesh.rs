//! A mesh in the test's own process: a control plane on ephemeral ports (with a CA or a
//! trace store when asked), resources applied to it as `weft apply` would store them, and
//! proxies fed by it or by configuration files.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use weft_control::ca::SuppliedRoot;
use weft_control::{CaOptions, ControlOptions, RunningControl, StartError};
use weft_proxy::{ProxyOptions, RunningProxy};

use crate::any_port;

/// A control plane to start: its state in a directory, its API and proxy stream on
/// ephemeral loopback ports, no CA and no trace store unless asked for.
#[derive(Debug)]
pub struct ControlPlane {
    options: ControlOptions,
}

impl ControlPlane {
    /// A control plane keeping its state in `state`.
    pub fn new(state: &Path) -> ControlPlane {
        ControlPlane {
            options: ControlOptions::ephemeral(state),
        }
    }

    /// Serves the proxy stream on `xds`: a restarted control plane comes back where its
    /// proxies look for it.
    pub fn xds(mut self, xds: SocketAddr) -> ControlPlane {
        self.options.xds = xds;
        self
    }

    /// Keeps a disconnected proxy's registered workload for `grace`.
    pub fn registration_grace(mut self, grace: Duration) -> ControlPlane {
        self.options.registration_grace = grace;
        self
    }

    /// Fetches RequestAuthentication `jwksUri`s again every `every` (after the first fetch).
    pub fn jwks_refresh(mut self, every: Duration) -> ControlPlane {
        self.options.jwks_refresh = every;
        self
    }

    /// With a CA for trust domain `cluster.local`, its root generated in the state
    /// directory, issuing certificates that live `ttl`.
    pub fn with_ca(mut self, ttl: Duration) -> ControlPlane {
        self.options.ca = Some(CaOptions {
            trust_domain: "cluster.local".into(),
            ttl,
            supplied: None,
            extra_roots: Vec::new(),
        });
        self
    }

    /// The CA signs with the operator's `root` instead of generating one (after
    /// [`ControlPlane::with_ca`]).
    pub fn supplied_root(mut self, root: SuppliedRoot) -> ControlPlane {
        self.ca("supplied_root").supplied = Some(root);
        self
    }

    /// Proxies also trust `roots` (PEM), as during a root rotation (after
    /// [`ControlPlane::with_ca`]).
    pub fn extra_roots(mut self, roots: Vec<String>) -> ControlPlane {
        self.ca("extra_roots").extra_roots = roots;
        self
    }

    /// With a trace store of at most `spans` spans and about `bytes` bytes, its OTLP
    /// receiver and Jaeger query API on ephemeral ports.
    pub fn trace_store(mut self, spans: usize, bytes: usize) -> ControlPlane {
        self.options.otlp = Some(any_port());
        self.options.query = Some(any_port());
        self.options.trace_spans = spans;
        self.options.trace_bytes = bytes;
        self
    }

    /// Pushes the mesh config in `yaml` (Istio's mesh config YAML or its ConfigMap) to the
    /// proxies; panics, naming every diagnostic, when it does not read without errors.
    pub fn mesh_config(mut self, yaml: &str) -> ControlPlane {
        let loaded = weft_api::mesh_config::load_mesh_config("mesh.yaml", yaml);
        let Some(config) = loaded.config else {
            let diagnostics: Vec<String> =
                loaded.diagnostics.iter().map(|d| d.to_string()).collect();
            panic!(
                "the mesh config does not load:
{}",
                diagnostics.join(
                    "
"
                )
            );
        };
        self.options.mesh_config = Some(config);
        self
    }

    /// Starts it; panics with the reason when it cannot.
    pub async fn start(self) -> RunningControl {
        match self.try_start().await {
            Ok(control) => control,
            Err(e) => panic!("control plane starts: {e}"),
        }
    }

    /// Starts it, or says why it cannot (for tests of a refused start).
    pub async fn try_start(self) -> Result<RunningControl, StartError> {
        weft_control::start(self.options).await
    }

    fn ca(&mut self, setting: &str) -> &mut CaOptions {
        match &mut self.options.ca {
            Some(ca) => ca,
            None => panic!("ControlPlane::{setting} needs a CA: call with_ca first"),
        }
    }
}

/// Stores the resources in `yaml` in `control`, creating or replacing them as `weft apply`
/// does. Panics, naming every diagnostic, when `yaml` does not load without errors.
pub fn apply(control: &RunningControl, yaml: &str) {
    let loaded = weft_api::load_str("test.yaml", yaml);
    if loaded.has_errors() {
        let diagnostics: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
        panic!(
            "the resources to apply do not load:\n{}",
            diagnostics.join("\n")
        );
    }
    for r in loaded.resources {
        control.store.put(r.resource, false).expect("stored");
    }
}

/// Options for sidecar `id` (`sidecar~<workload>.<namespace>`) on ephemeral ports, fed by
/// the control plane at `xds` and, given a bootstrap `token`, asking its CA for a
/// certificate.
pub fn sidecar_options(xds: SocketAddr, id: &str, token: Option<&str>) -> ProxyOptions {
    ProxyOptions {
        control: Some(xds.to_string()),
        ca_token: token.map(str::to_string),
        ..ProxyOptions::ephemeral(id)
    }
}

/// Starts the sidecar of [`sidecar_options`].
pub async fn sidecar(xds: SocketAddr, id: &str, token: Option<&str>) -> RunningProxy {
    start_proxy(sidecar_options(xds, id, token)).await
}

/// Options for proxy `id` on ephemeral ports configured from files, not by a control
/// plane: `yaml` is written to `dir/mesh.yaml` and the proxy reads (and watches) `dir`.
pub fn file_options(dir: &Path, yaml: &str, id: &str) -> ProxyOptions {
    write_config(dir, yaml);
    ProxyOptions {
        config: vec![dir.to_path_buf()],
        ..ProxyOptions::ephemeral(id)
    }
}

/// Replaces `dir/mesh.yaml` with `yaml` in one step (a rename), so a watching proxy never
/// reads half a file.
pub fn write_config(dir: &Path, yaml: &str) {
    let tmp = dir.join(".mesh.yaml.tmp");
    std::fs::write(&tmp, yaml).expect("write the configuration");
    std::fs::rename(&tmp, dir.join("mesh.yaml")).expect("replace the configuration");
}

/// Starts a proxy; panics with the reason when it cannot.
pub async fn start_proxy(options: ProxyOptions) -> RunningProxy {
    match weft_proxy::start(options).await {
        Ok(proxy) => proxy,
        Err(e) => panic!("proxy starts: {e}"),
    }
}
