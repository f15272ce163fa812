//! The control plane of a `weft up` mesh: the one already running on `--api`, or one
//! started as `weft control` and waited for until its API answers; then the manifest's
//! resources applied to it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;

use super::Starting;
use super::state::alive;
use super::status::wait_for_config;
use super::workloads::spawn;
use weft_api::mesh_config::{
    DefaultProviders, ExtensionProvider, MeshConfig, OpenTelemetryProvider, OtlpHttp, ProxyConfig,
    TracingConfig,
};

use crate::client::call;

impl Starting<'_> {
    /// Records where the proxies reach the control plane, then uses the one running on
    /// `--api` (when its proxy stream is reachable there too) or starts one.
    pub(super) fn start_control_plane(&mut self, weft: &Path) -> anyhow::Result<()> {
        // The sidecars dial the control plane where they are: the bridge in namespace mode.
        let xds = self.reachable(self.args.xds);
        self.state.xds = xds.to_string();
        let otlp = self.reachable(self.args.otlp);
        self.state.otlp = otlp.to_string();
        self.state.query = self.args.query.to_string();
        self.state.dashboard = self.args.dashboard.to_string();
        let api = self.args.api;
        let running = self
            .runtime
            .block_on(call(&api.to_string(), Method::GET, "/debug/proxies", None))
            .is_ok_and(|a| a.status.is_success());
        if running {
            println!("▸ using the control plane already running on {api}");
            if std::net::TcpStream::connect_timeout(&xds, Duration::from_secs(1)).is_err() {
                bail!(
                    "the running control plane's proxy stream is not reachable at {xds}, where the sidecars dial it; stop it, or start it with `--xds {xds}`"
                );
            }
            return Ok(());
        }
        println!(
            "▸ starting the control plane on {api} (proxy stream on {xds}, traces in on {otlp}, trace search on {}, dashboard on http://{}/)",
            self.args.query, self.args.dashboard
        );
        let mesh_config = self.args.state_dir.join("mesh-config.json");
        let text = serde_json::to_string_pretty(&mesh_config_of(&self.manifest.tracing)?)?;
        std::fs::write(&mesh_config, text)
            .with_context(|| format!("writing {}", mesh_config.display()))?;
        let pid = spawn(
            Command::new(weft)
                .args([
                    "control",
                    "--api",
                    &api.to_string(),
                    "--xds",
                    &xds.to_string(),
                ])
                .args(["--otlp", &otlp.to_string()])
                .args(["--query", &self.args.query.to_string()])
                .args(["--dashboard", &self.args.dashboard.to_string()])
                .arg("--api-token-file")
                .arg(token_file(&self.args.state_dir))
                .arg("--mesh-config")
                .arg(&mesh_config)
                .arg("--state-dir")
                .arg(self.args.state_dir.join("control")),
            &self.logs.join("control.log"),
        )?;
        self.state.control_pid = Some(pid);
        self.mesh_config_pushed = true;
        self.save()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect_timeout(&api, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline || !alive(pid) {
                bail!(
                    "the control plane did not start; see {}",
                    self.logs.join("control.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The CA of the API's HTTPS (for the kubeconfig), as the control plane serves it.
    pub(super) fn api_ca(&self) -> anyhow::Result<String> {
        let server = self.args.api.to_string();
        let answer = self
            .runtime
            .block_on(call(&server, Method::GET, "/ca/api", None))?;
        match answer.body["ca"].as_str() {
            Some(pem) if answer.status.is_success() => Ok(pem.to_string()),
            _ => bail!(
                "the control plane on {server} did not give the CA of its HTTPS ({}): is it weft's, and as new as this weft?",
                answer.message()
            ),
        }
    }

    /// Where the workloads reach a control-plane listener given as `addr`: on the bridge
    /// (same port) in namespace mode, `addr` itself on loopback.
    fn reachable(&self, addr: SocketAddr) -> SocketAddr {
        if self.namespaces() {
            SocketAddr::from((super::netns::BRIDGE_IP, addr.port()))
        } else {
            addr
        }
    }

    /// Applies the manifest's resource files with `weft apply`, then waits until every
    /// proxy has acknowledged them.
    pub(super) fn apply_resources(&self, weft: &Path) -> anyhow::Result<()> {
        let server = self.args.api.to_string();
        for file in &self.manifest.resources {
            let applied = Command::new(weft)
                .env("WEFT_TOKEN", &self.token)
                .args(["apply", "--server", &server, "-f"])
                .arg(file)
                .status()?;
            if !applied.success() {
                bail!("applying {} failed", file.display());
            }
        }
        if !self.manifest.resources.is_empty() {
            wait_for_config(self.runtime, &server, &self.state.proxy_ids());
        }
        Ok(())
    }
}

/// Where `weft up` keeps the API's bearer token.
fn token_file(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("api-token")
}

/// The API's bearer token: the one in the state directory (a control plane from an
/// earlier `weft up` there may still run with it), else a new one written there.
pub(super) fn api_token(state_dir: &Path) -> anyhow::Result<String> {
    let file = token_file(state_dir);
    if let Ok(text) = std::fs::read_to_string(&file) {
        if weft_control::api::auth::ApiToken::new(text.trim()).is_ok() {
            return Ok(text.trim().to_string());
        }
    }
    let token = weft_control::api::auth::generate_token()
        .context("reading random bytes for the API token")?;
    super::super::kubeconfig::write_private(&file, &token)?;
    Ok(token)
}

/// The name of the manifest's `tracing.endpoint` in the mesh config `weft up` gives the
/// control plane.
const MANIFEST_COLLECTOR: &str = "manifest-collector";

/// The mesh config for the manifest's tracing: its sampling and, with `tracing.endpoint`,
/// that collector as the default tracing provider (without it, the control plane's own
/// trace store is).
fn mesh_config_of(tracing: &super::manifest::Tracing) -> anyhow::Result<MeshConfig> {
    let mut mesh = MeshConfig {
        default_config: Some(ProxyConfig {
            tracing: Some(TracingConfig {
                sampling: Some(tracing.sampling),
            }),
        }),
        ..MeshConfig::default()
    };
    if let Some(endpoint) = &tracing.endpoint {
        let uri: http::Uri = endpoint
            .parse()
            .with_context(|| format!("tracing.endpoint {endpoint:?}"))?;
        let host = uri
            .host()
            .with_context(|| format!("tracing.endpoint {endpoint:?} has no host"))?;
        mesh.extension_providers.push(ExtensionProvider {
            name: MANIFEST_COLLECTOR.into(),
            opentelemetry: Some(OpenTelemetryProvider {
                service: host.trim_start_matches('[').trim_end_matches(']').into(),
                port: u32::from(uri.port_u16().unwrap_or(80)),
                http: Some(OtlpHttp {
                    path: Some(uri.path().to_string()),
                    ..OtlpHttp::default()
                }),
            }),
            ..ExtensionProvider::default()
        });
        mesh.default_providers = Some(DefaultProviders {
            tracing: vec![MANIFEST_COLLECTOR.into()],
            ..DefaultProviders::default()
        });
    }
    Ok(mesh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifests_tracing_becomes_the_mesh_config() {
        let mut tracing = super::super::manifest::Tracing {
            sampling: 100.0,
            endpoint: None,
        };
        let mesh = mesh_config_of(&tracing).expect("built");
        assert_eq!(mesh.sampling(), 100.0);
        assert_eq!(
            mesh.trace_export(),
            None,
            "the control plane adds its trace store"
        );

        tracing.endpoint = Some("http://127.0.0.1:4318/v1/traces".into());
        let mesh = mesh_config_of(&tracing).expect("built");
        let export = mesh.trace_export().expect("a provider");
        assert_eq!(export.endpoint, "http://127.0.0.1:4318/v1/traces");
        // What the control plane reads back.
        let json = serde_json::to_string(&mesh).expect("json");
        let read = weft_api::mesh_config::load_mesh_config("mesh-config.json", &json);
        assert!(read.diagnostics.is_empty(), "{:?}", read.diagnostics);
    }
}
