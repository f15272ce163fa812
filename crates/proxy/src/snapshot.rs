//! The configuration a proxy runs on: the model plus the live state that belongs to it
//! (balancers, endpoints with their pools and counters). Immutable once built and
//! swapped atomically; requests in flight keep the snapshot they started with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;
use weft_model::service::{EndpointAddress, Protocol};
use weft_model::{Cluster, Mesh, ProxyScope};

use crate::balancer::{BalancedEndpoint, Balancer};
use crate::http::body::Body;
use crate::pool::Pool;
use crate::target::Target;

/// Live counters of one endpoint.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Requests in flight.
    pub active: AtomicU64,
    /// Requests sent.
    pub requests: AtomicU64,
    /// Requests that failed (connect failure, reset, timeout or 5xx).
    pub failures: AtomicU64,
}

/// One endpoint of a cluster, with its connection pool.
#[derive(Debug)]
pub struct Endpoint {
    /// Where it is.
    pub target: Target,
    /// `address:port`, its identity.
    pub key: String,
    /// Counters.
    pub stats: EndpointStats,
    /// Pooled upstream connections.
    pub pool: Pool<Body>,
    /// Outlier detection and active health check state.
    pub health: crate::outlier::EndpointHealth,
    /// Who runs it (a registered workload), for telemetry; refreshed on every configuration.
    pub workload: arc_swap::ArcSwapOption<weft_model::service::WorkloadInfo>,
    /// It runs a sidecar that accepts mesh mTLS (auto mTLS); refreshed on every configuration.
    pub mesh_tls: std::sync::atomic::AtomicBool,
}

/// A cluster ready to serve: its endpoints and balancer.
#[derive(Debug)]
pub struct ClusterRuntime {
    /// The model.
    pub model: Arc<Cluster>,
    /// Endpoints (unix-socket endpoints are left out; see docs).
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Endpoint selection.
    pub balancer: Balancer,
    /// Live counters (kept across reloads).
    pub state: Arc<crate::circuit::ClusterState>,
    /// Connection pool limits of this configuration.
    pub limits: crate::circuit::Limits,
    /// The service host, shared by the telemetry of every request to it.
    pub service: Arc<str>,
    /// True when the service is in the mesh (its sidecars get the caller's identity).
    pub mesh_internal: bool,
    /// TLS toward its endpoints.
    pub tls: Arc<crate::tls::ClusterTls>,
}

impl ClusterRuntime {
    /// Which endpoints health leaves out: those ejected or failing their active check,
    /// unless so few are available that the cluster panics (`minHealthPercent`) and
    /// takes them all. `None` when no endpoint may be used.
    pub fn unhealthy(&self) -> Option<impl Fn(usize) -> bool + '_> {
        let available = |i: usize| self.endpoints.get(i).is_some_and(|e| e.health.available());
        let total = self.endpoints.len();
        let count = (0..total).filter(|i| available(*i)).count();
        let min_health = self
            .model
            .policy
            .outlier
            .as_ref()
            .map_or(0, |o| o.min_health_percent);
        let panic = crate::outlier::panic(min_health, total, count);
        if count == 0 && !panic {
            return None;
        }
        Some(move |i: usize| !panic && !available(i))
    }

    /// Requests in flight to endpoint `i` (for least-request balancing).
    pub fn active(&self, i: usize) -> u64 {
        self.endpoints
            .get(i)
            .map_or(0, |e| e.stats.active.load(Ordering::Relaxed))
    }

    /// An endpoint chosen by the balancer with no request key among the healthy ones
    /// (see [`Self::unhealthy`]), for connections: TCP, CONNECT, WebSocket.
    pub fn pick_any(&self) -> Option<&Arc<Endpoint>> {
        let excluded = self.unhealthy()?;
        let input = crate::balancer::PickInput {
            hash: None,
            random: fastrand::u64(..),
            active: &|i| self.active(i),
            excluded: &excluded,
        };
        self.endpoints.get(self.balancer.pick(&input)?)
    }

    /// True when the upstream speaks HTTP/2 (declared HTTP2 or GRPC).
    /// `None` follows the client. `useClientProtocol` always follows the client;
    /// `h2UpgradePolicy: UPGRADE` sends HTTP/1.1 ports' requests over HTTP/2.
    pub fn http2(&self) -> Option<bool> {
        let pool = &self.model.policy.pool;
        if pool.use_client_protocol {
            return None;
        }
        match self.model.protocol {
            Protocol::Http2 | Protocol::Grpc => Some(true),
            Protocol::Http => Some(pool.h2_upgrade),
            _ => pool.h2_upgrade.then_some(true),
        }
    }
}

/// Everything one configuration version needs at run time.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every accepted configuration.
    pub version: u64,
    /// When it was accepted.
    pub accepted_at: SystemTime,
    /// Where it came from (files, or a control plane).
    pub source: String,
    /// The model.
    pub mesh: Mesh,
    /// Clusters by name.
    pub clusters: HashMap<Arc<str>, Arc<ClusterRuntime>>,
    /// The inbound cluster fronting the local application.
    pub inbound: Option<Arc<ClusterRuntime>>,
    /// Who the configuration was built for.
    pub scope: ProxyScope,
    /// Every name of every service (`reviews`, `reviews.default`, ...) to its host.
    pub service_names: HashMap<String, Arc<str>>,
    /// The service this proxy's workload belongs to: one with an endpoint carrying
    /// exactly the workload's labels.
    pub local_service: Option<Arc<str>>,
    /// Rate limits with their buckets (kept across reloads while a limit is unchanged).
    pub rate_limits: Vec<Arc<crate::ratelimit::Limiter>>,
    /// The Telemetry API's decisions (sampling, tags, access log filters, metric
    /// overrides), compiled once for this configuration.
    pub telemetry: Arc<crate::telemetry::policy::TelemetryPolicy>,
}

impl Snapshot {
    /// Builds a snapshot, reusing the endpoints (pools and counters) of `previous`
    /// that are still there, so a reload neither drops connections nor resets counters.
    pub fn build(
        mesh: Mesh,
        scope: ProxyScope,
        version: u64,
        source: String,
        app: Option<SocketAddr>,
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let reuse = |name: &str| -> Option<&ClusterRuntime> {
            let prev = previous?;
            let c = if name.starts_with("inbound|") {
                prev.inbound.as_ref()
            } else {
                prev.clusters.get(name)
            };
            c.map(|c| &**c)
        };
        let clusters = mesh
            .clusters
            .values()
            .map(|c| {
                let internal = mesh
                    .services
                    .get(&c.service)
                    .is_some_and(|s| s.mesh_internal);
                let runtime = runtime(c.clone(), reuse(&c.name), internal);
                (c.name.clone(), Arc::new(runtime))
            })
            .collect();
        let mut service_names: HashMap<String, Arc<str>> = HashMap::new();
        for s in mesh.services.values() {
            let canonical: Arc<str> = Arc::from(s.hostname.as_str());
            for alias in weft_model::host::aliases(&s.hostname, &scope.namespace) {
                service_names
                    .entry(alias)
                    .or_insert_with(|| canonical.clone());
            }
        }
        let inbound = app.map(|addr| {
            let model = Arc::new(Cluster {
                name: format!("inbound|{}||", addr.port()).into(),
                service: String::new(),
                port: addr.port(),
                subset: None,
                protocol: Protocol::Unknown,
                endpoints: vec![weft_model::translate::ClusterEndpoint {
                    address: EndpointAddress::Ip(addr.ip()),
                    port: addr.port(),
                    labels: Default::default(),
                    weight: 1,
                    workload: None,
                    mesh_tls: false,
                }],
                policy: Default::default(),
                identities: Vec::new(),
            });
            let previous = reuse(&model.name);
            Arc::new(runtime(model, previous, true))
        });
        let local_service = (!scope.labels.is_empty())
            .then(|| {
                mesh.services
                    .values()
                    // Registration adds labels (`security.istio.io/tlsMode`): the
                    // workload's own labels are a subset of its endpoint's.
                    .find(|s| s.endpoints.iter().any(|e| e.has_labels(&scope.labels)))
                    .and_then(|s| service_names.get(&s.hostname).cloned())
            })
            .flatten();
        let rate_limits = crate::ratelimit::limiters(
            &mesh.rate_limits,
            previous.map(|p| p.rate_limits.as_slice()),
        );
        // Expressions were compiled when their resources were validated (and again by the
        // control source before it accepts an update); this cannot fail for those.
        let telemetry = crate::telemetry::policy::TelemetryPolicy::compile(&mesh.telemetry)
            .unwrap_or_else(|error| {
                tracing::error!(%error, "telemetry policy left at its defaults");
                Default::default()
            });
        Snapshot {
            telemetry: Arc::new(telemetry),
            service_names,
            local_service,
            rate_limits,
            version,
            accepted_at: SystemTime::now(),
            source,
            mesh,
            clusters,
            inbound,
            scope,
        }
    }

    /// The cluster named `name`.
    pub fn cluster(&self, name: &str) -> Option<&Arc<ClusterRuntime>> {
        self.clusters.get(name)
    }
}

fn runtime(
    model: Arc<Cluster>,
    previous: Option<&ClusterRuntime>,
    mesh_internal: bool,
) -> ClusterRuntime {
    // Unix-socket endpoints are not dialled yet; weights stay paired with their endpoints.
    let (endpoints, weights): (Vec<Arc<Endpoint>>, Vec<u32>) = model
        .endpoints
        .iter()
        .filter_map(|e| {
            let target = match &e.address {
                EndpointAddress::Ip(ip) => Target::Socket(SocketAddr::new(*ip, e.port)),
                EndpointAddress::Dns(host) => Target::Host(host.clone(), e.port),
                EndpointAddress::Unix(_) => return None,
            };
            let key = target.to_string();
            let kept = previous.and_then(|p| p.endpoints.iter().find(|e| e.key == key).cloned());
            let endpoint = kept.unwrap_or_else(|| Arc::new(Endpoint::new(target)));
            endpoint.workload.store(e.workload.clone());
            endpoint.mesh_tls.store(e.mesh_tls, Ordering::Relaxed);
            Some((endpoint, e.weight))
        })
        .unzip();
    let balanced: Vec<BalancedEndpoint<'_>> = endpoints
        .iter()
        .zip(&weights)
        .map(|(e, w)| BalancedEndpoint {
            key: &e.key,
            weight: *w,
        })
        .collect();
    let balancer = Balancer::new(&model.policy.load_balancer, &balanced);
    let state = previous.map(|p| p.state.clone()).unwrap_or_default();
    let limits = crate::circuit::Limits::new(&model.policy, previous.map(|p| &p.limits));
    // Kept while the TLS settings are the same, with the client configurations it built.
    let tls = match previous {
        Some(p)
            if p.model.policy.tls == model.policy.tls
                && p.model.identities == model.identities
                && p.model.service == model.service =>
        {
            p.tls.clone()
        }
        _ => Arc::new(crate::tls::ClusterTls::new(
            &model.policy.tls,
            &model.name,
            &model.service,
            &model.identities,
        )),
    };
    ClusterRuntime {
        tls,
        service: Arc::from(model.service.as_str()),
        model,
        endpoints,
        balancer,
        state,
        limits,
        mesh_internal,
    }
}

/// A cluster of one endpoint with default policy (passthrough traffic).
pub fn single_endpoint_cluster(name: &str, endpoint: Arc<Endpoint>) -> ClusterRuntime {
    let model = Arc::new(Cluster {
        name: name.into(),
        service: String::new(),
        port: 0,
        subset: None,
        protocol: Protocol::Unknown,
        endpoints: Vec::new(),
        policy: Default::default(),
        identities: Vec::new(),
    });
    let balancer = Balancer::new(
        &model.policy.load_balancer,
        &[BalancedEndpoint {
            key: &endpoint.key,
            weight: 1,
        }],
    );
    let limits = crate::circuit::Limits::new(&model.policy, None);
    ClusterRuntime {
        service: Arc::from(name),
        model,
        endpoints: vec![endpoint],
        balancer,
        state: Default::default(),
        limits,
        mesh_internal: false,
        tls: Arc::new(crate::tls::ClusterTls::new(
            &Default::default(),
            name,
            name,
            &[],
        )),
    }
}

/// The current snapshot, swapped atomically; readers never block.
#[derive(Debug, Clone)]
pub struct SnapshotCell(Arc<Cell>);

#[derive(Debug)]
struct Cell {
    current: ArcSwap<Snapshot>,
    /// Told of every new snapshot (its version), for long-lived connections that must
    /// react to a change (a plaintext connection when PeerAuthentication becomes STRICT).
    changed: tokio::sync::watch::Sender<u64>,
}

impl SnapshotCell {
    /// A cell holding `initial`.
    pub fn new(initial: Snapshot) -> Self {
        let (changed, _) = tokio::sync::watch::channel(initial.version);
        SnapshotCell(Arc::new(Cell {
            current: ArcSwap::from_pointee(initial),
            changed,
        }))
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.current.load_full()
    }

    /// Replaces the current snapshot.
    pub fn store(&self, next: Snapshot) {
        let version = next.version;
        self.0.current.store(Arc::new(next));
        self.0.changed.send_replace(version);
    }

    /// Resolves once a snapshot in which `holds` is true is stored (not the current one).
    pub async fn until(&self, holds: impl Fn(&Snapshot) -> bool) {
        let mut changes = self.0.changed.subscribe();
        while changes.changed().await.is_ok() {
            if holds(&self.load()) {
                return;
            }
        }
        std::future::pending::<()>().await;
    }
}

/// What `/clusters` shows of one endpoint.
#[derive(Debug, Serialize)]
pub struct EndpointView {
    /// Address.
    pub address: String,
    /// Health: outlier ejection and active checks.
    #[serde(flatten)]
    pub health: crate::outlier::HealthView,
    /// Requests in flight.
    pub active: u64,
    /// Requests sent.
    pub requests: u64,
    /// Failed requests.
    pub failures: u64,
    /// Idle pooled connections.
    pub idle_connections: usize,
    /// Open HTTP connections (idle and in use).
    pub open_connections: u64,
}

impl Endpoint {
    /// A new endpoint at `target`: no connections, no history.
    pub fn new(target: Target) -> Self {
        Endpoint {
            key: target.to_string(),
            target,
            stats: EndpointStats::default(),
            pool: Pool::default(),
            health: Default::default(),
            workload: Default::default(),
            mesh_tls: Default::default(),
        }
    }

    /// A view for the admin API.
    pub fn view(&self) -> EndpointView {
        EndpointView {
            address: self.key.clone(),
            health: self.health.view(),
            active: self.stats.active.load(Ordering::Relaxed),
            requests: self.stats.requests.load(Ordering::Relaxed),
            failures: self.stats.failures.load(Ordering::Relaxed),
            idle_connections: self.pool.idle(),
            open_connections: self.pool.open(),
        }
    }
}
