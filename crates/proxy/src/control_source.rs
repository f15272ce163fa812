//! Configuration from the control plane: one delta xDS stream. Each response updates the
//! proxy's copy of its resources; the result is validated and translated like files are,
//! then ACKed and swapped in, or NACKed with the reason (the last good configuration
//! stays). When the control plane is away the proxy keeps serving and reconnects with
//! backoff and jitter, telling the server which versions it has so it gets only changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use weft_api::Resource;
use weft_api::mesh_config::{MeshConfig, load_mesh_config};
use weft_model::ProxyScope;
use weft_proto::config::IstioResource;
use weft_proto::discovery::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use weft_proto::discovery::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Node, Status};
use weft_proto::{ISTIO_RESOURCE_TYPE, MESH_CONFIG_RESOURCE};

use crate::snapshot::{Snapshot, SnapshotCell};
use crate::telemetry::mesh::{MeshSettings, MeshTelemetry};

/// Where the control plane is and who this proxy is.
#[derive(Debug, Clone)]
pub struct ControlSource {
    /// Control plane stream address (`host:port`).
    pub address: String,
    /// Proxy id.
    pub id: String,
    /// Namespace and labels.
    pub scope: ProxyScope,
    /// The local application, for the inbound cluster.
    pub app: Option<SocketAddr>,
    /// The workload this proxy registers, so ServiceEntries can select it.
    pub registration: Option<Registration>,
    /// The proxy's admin address, so `weft proxy-config` can read its configuration.
    pub admin: Option<SocketAddr>,
    /// The proxy's stats address (`/stats/prometheus`), so the control plane can collect
    /// its metrics for the dashboard.
    pub stats: Option<SocketAddr>,
    /// Where the pushed mesh config's telemetry settings go.
    pub mesh_telemetry: Arc<MeshTelemetry>,
    /// The external authorization providers, replaced by each mesh config's.
    pub ext_authz: Arc<crate::http::ext_authz::Providers>,
    /// The CA bootstrap token, sent on the stream so the control plane knows the proxy's
    /// namespace is proven (a gateway then gets the Secrets it may read).
    pub token: Option<String>,
}

/// One item of the stream: a resource, or the mesh config ([`MESH_CONFIG_RESOURCE`]).
#[derive(Debug, Clone)]
enum Pushed {
    Resource(Resource),
    Mesh(Arc<MeshConfig>),
}

/// What the proxy holds from the stream, by name: (version, item).
type Held = BTreeMap<String, (String, Pushed)>;

/// A workload as the proxy registers it (the control plane keeps it as a WorkloadEntry
/// while the proxy is connected, and for a grace period after).
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// Workload name.
    pub workload: String,
    /// Service account.
    pub service_account: String,
    /// Address other proxies reach it at.
    pub address: String,
    /// Port numbers by service port name.
    pub ports: BTreeMap<String, u32>,
    /// The proxy terminates mesh mTLS (it gets a workload certificate): the control plane
    /// labels the workload `security.istio.io/tlsMode: istio`, so callers send it mTLS.
    pub mesh_tls: bool,
}

impl ControlSource {
    fn node(&self) -> Node {
        let mut fields = BTreeMap::new();
        let string = |s: &str| prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(s.to_string())),
        };
        fields.insert("NAMESPACE".to_string(), string(&self.scope.namespace));
        if let Some(admin) = self.admin {
            fields.insert("ADMIN".to_string(), string(&admin.to_string()));
        }
        if let Some(stats) = self.stats {
            fields.insert("STATS".to_string(), string(&stats.to_string()));
        }
        if let Some(r) = &self.registration {
            fields.insert("WORKLOAD_NAME".to_string(), string(&r.workload));
            fields.insert("SERVICE_ACCOUNT".to_string(), string(&r.service_account));
            fields.insert("INSTANCE_IP".to_string(), string(&r.address));
            if r.mesh_tls {
                fields.insert("TLS_MODE".to_string(), string("istio"));
            }
            let ports = r
                .ports
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::NumberValue(f64::from(*v))),
                        },
                    )
                })
                .collect();
            fields.insert(
                "PORTS".to_string(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StructValue(prost_types::Struct {
                        fields: ports,
                    })),
                },
            );
        }
        let labels = self
            .scope
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), string(v)))
            .collect();
        fields.insert(
            "LABELS".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StructValue(prost_types::Struct {
                    fields: labels,
                })),
            },
        );
        Node {
            id: self.id.clone(),
            cluster: String::new(),
            metadata: Some(prost_types::Struct { fields }),
        }
    }

    /// Follows the control plane until `stop` fires, storing each accepted configuration.
    pub async fn run(self, cell: SnapshotCell, mut stop: watch::Receiver<bool>) {
        let mut resources: Held = BTreeMap::new();
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = tokio::time::Instant::now();
            let session = self.session(&cell, &mut resources);
            tokio::select! {
                ended = session => {
                    match ended {
                        Ok(()) => tracing::warn!(control = %self.address, "control plane closed the stream; reconnecting"),
                        Err(e) => tracing::warn!(control = %self.address, "control plane unreachable, serving the last configuration: {e}"),
                    }
                }
                _ = stop.changed() => return,
            }
            // A stream that lasted is a good session: the next failure starts the backoff over.
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(100);
            }
            let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 2));
            tokio::select! {
                _ = tokio::time::sleep(backoff + jitter) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn session(&self, cell: &SnapshotCell, resources: &mut Held) -> Result<(), String> {
        // Keepalive pings notice a control plane that vanished without closing the
        // connection; the proxy then reconnects instead of waiting forever.
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let mut client = AggregatedDiscoveryServiceClient::connect(endpoint)
            .await
            .map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(8);
        let first = DeltaDiscoveryRequest {
            node: Some(self.node()),
            type_url: ISTIO_RESOURCE_TYPE.into(),
            resource_names_subscribe: vec!["*".into()],
            initial_resource_versions: resources
                .iter()
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect(),
            ..Default::default()
        };
        tx.send(first).await.map_err(|e| e.to_string())?;
        let requests =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
            );
        let mut request = tonic::Request::new(requests);
        if let Some(token) = &self.token {
            if let Ok(value) = format!("Bearer {token}").parse() {
                request.metadata_mut().insert("authorization", value);
            }
        }
        let mut stream = client
            .delta_aggregated_resources(request)
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        tracing::info!(control = %self.address, "connected to the control plane");
        // Parts of one update (all but the last marked partial) are gathered, then applied together.
        // Once one part of an update is refused, the rest of that update (up to and
        // including its last part) is refused too: nothing of it is applied.
        let mut pending: Option<Held> = None;
        let mut refused_part = false;
        while let Some(resp) = stream.message().await.map_err(|e| e.to_string())? {
            let nonce = resp.nonce.clone();
            let partial = resp.system_version_info.ends_with("+partial");
            let base = pending.take().unwrap_or_else(|| resources.clone());
            let merged = if refused_part {
                Err("an earlier part of this update was refused".to_string())
            } else {
                merge(base, &resp)
            };
            refused_part = partial && merged.is_err();
            let outcome = match merged {
                Ok(next) if partial => {
                    pending = Some(next);
                    Ok(None)
                }
                Ok(next) => self.apply(cell, resources, next).map(Some),
                Err(e) => Err(e),
            };
            let ack = match outcome {
                Ok(None) => DeltaDiscoveryRequest {
                    type_url: ISTIO_RESOURCE_TYPE.into(),
                    response_nonce: nonce,
                    ..Default::default()
                },
                Ok(Some(version)) => {
                    tracing::info!(version, nonce = %nonce, "configuration from the control plane applied");
                    DeltaDiscoveryRequest {
                        type_url: ISTIO_RESOURCE_TYPE.into(),
                        response_nonce: nonce,
                        ..Default::default()
                    }
                }
                Err(reason) => {
                    tracing::error!(nonce = %nonce, "configuration from the control plane refused (NACK), keeping the last good one: {reason}");
                    DeltaDiscoveryRequest {
                        type_url: ISTIO_RESOURCE_TYPE.into(),
                        response_nonce: nonce,
                        error_detail: Some(Status {
                            code: 3,
                            message: reason,
                            details: Vec::new(),
                        }),
                        ..Default::default()
                    }
                }
            };
            tx.send(ack).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Translates `next` (the resources and mesh config after an update) and, when that
    /// works, makes it the configuration in force.
    fn apply(&self, cell: &SnapshotCell, resources: &mut Held, next: Held) -> Result<u64, String> {
        let all: Vec<Resource> = next
            .values()
            .filter_map(|(_, p)| match p {
                Pushed::Resource(r) => Some(r.clone()),
                Pushed::Mesh(_) => None,
            })
            .collect();
        let mesh_config = next.values().find_map(|(_, p)| match p {
            Pushed::Mesh(m) => Some(m.clone()),
            Pushed::Resource(_) => None,
        });
        let defaults = MeshConfig::default();
        let mesh = weft_model::build_with_mesh_config(
            &all,
            &self.scope,
            mesh_config.as_deref().unwrap_or(&defaults),
        )
        .map_err(|e| e.to_string())?;
        // Refused here, so a bad expression is NACKed rather than dropped.
        crate::telemetry::policy::TelemetryPolicy::compile(&mesh.telemetry)?;
        let settings = match &mesh_config {
            Some(m) => MeshSettings::of(m, &mesh.telemetry)?,
            None => MeshSettings::of(&defaults, &mesh.telemetry)?,
        };
        let telemetry = self.mesh_telemetry.prepare(settings)?;
        let current = cell.load();
        let version = current.version + 1;
        cell.store(Snapshot::build(
            mesh,
            self.scope.clone(),
            version,
            format!("control plane {}", self.address),
            self.app,
            Some(&current),
        ));
        self.mesh_telemetry.commit(telemetry);
        if let Some(m) = &mesh_config {
            self.ext_authz.set(weft_model::ext_authz::providers(m));
        }
        *resources = next;
        Ok(version)
    }
}

/// Decodes `bytes` as a pushed update (a protobuf `DeltaDiscoveryResponse`) and checks it
/// as the proxy checks every push: how many resources it would hold, or why the update
/// is refused (NACKed). For the fuzz targets.
pub fn check_update(bytes: &[u8]) -> Result<usize, String> {
    let resp: DeltaDiscoveryResponse =
        prost::Message::decode(bytes).map_err(|e| format!("undecodable update: {e}"))?;
    merge(Held::new(), &resp).map(|held| held.len())
}

/// Applies one response's removals and resources to `base`; every resource (and the mesh
/// config) must validate.
fn merge(mut next: Held, resp: &DeltaDiscoveryResponse) -> Result<Held, String> {
    for name in &resp.removed_resources {
        next.remove(name);
    }
    for r in &resp.resources {
        let any = r
            .resource
            .as_ref()
            .ok_or_else(|| format!("{}: no payload", r.name))?;
        if any.type_url != ISTIO_RESOURCE_TYPE {
            return Err(format!("{}: unexpected type {}", r.name, any.type_url));
        }
        let payload: IstioResource =
            prost::Message::decode(any.value.as_slice()).map_err(|e| format!("{}: {e}", r.name))?;
        if r.name == MESH_CONFIG_RESOURCE {
            let loaded = load_mesh_config(&r.name, &payload.json);
            let Some(config) = loaded.config else {
                let errors: Vec<String> = loaded
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(ToString::to_string)
                    .collect();
                return Err(errors.join("; "));
            };
            next.insert(
                r.name.clone(),
                (r.version.clone(), Pushed::Mesh(Arc::new(config))),
            );
            continue;
        }
        let loaded = weft_api::load_str(&r.name, &payload.json);
        if loaded.has_errors() {
            let errors: Vec<String> = loaded
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(ToString::to_string)
                .collect();
            return Err(errors.join("; "));
        }
        let resource = loaded
            .resources
            .into_iter()
            .next()
            .map(|l| l.resource)
            .ok_or_else(|| format!("{}: empty", r.name))?;
        next.insert(
            r.name.clone(),
            (r.version.clone(), Pushed::Resource(resource)),
        );
    }
    Ok(next)
}
