//! Turning Istio's metric labels into the keys the history keeps series by, with
//! repeated label values shared (a mesh has few distinct workloads, many samples).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::exposition::Sample;
use super::{Peer, Reporter, RequestKey, TcpKey};

/// Keys from labels, sharing repeated strings.
#[derive(Debug, Default)]
pub struct Labels {
    interned: Mutex<HashSet<Arc<str>>>,
}

impl Labels {
    fn intern(&self, s: &str) -> Arc<str> {
        let mut set = self.interned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = set.get(s) {
            return found.clone();
        }
        let new: Arc<str> = Arc::from(s);
        set.insert(new.clone());
        new
    }

    /// Forgets strings no key holds any more (run once a tick, after old rows go).
    pub fn prune(&self) {
        self.interned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| Arc::strong_count(s) > 1);
    }

    /// Strings held.
    pub fn len(&self) -> usize {
        self.interned.lock().map_or(0, |s| s.len())
    }

    /// True when no string is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn peer(&self, s: &Sample<'_>, side: Side) -> Peer {
        let [workload, namespace, canonical, app, version] = match side {
            Side::Source => SOURCE,
            Side::Destination => DESTINATION,
        };
        let get = |name: &str| s.label(name).unwrap_or("unknown");
        let service = match get(canonical) {
            "unknown" => get(app),
            known => known,
        };
        Peer {
            workload: self.intern(get(workload)),
            namespace: self.intern(get(namespace)),
            service: self.intern(service),
            version: self.intern(get(version)),
        }
    }

    /// The request series a sample of `istio_request*` belongs to.
    pub fn request_key(&self, s: &Sample<'_>) -> Option<RequestKey> {
        Some(RequestKey {
            edge: self.tcp_key(s)?,
            protocol: self.intern(s.label("request_protocol").unwrap_or("http")),
            code: s
                .label("response_code")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
            flags: self.intern(s.label("response_flags").unwrap_or("-")),
        })
    }

    /// The TCP series a sample of `istio_tcp_*` belongs to: who called whom.
    pub fn tcp_key(&self, s: &Sample<'_>) -> Option<TcpKey> {
        Some(TcpKey {
            reporter: reporter(s)?,
            source: self.peer(s, Side::Source),
            destination: self.peer(s, Side::Destination),
            service: self.intern(s.label("destination_service_name").unwrap_or("unknown")),
            service_namespace: self.intern(
                s.label("destination_service_namespace")
                    .unwrap_or("unknown"),
            ),
            mtls: s.label("connection_security_policy") == Some("mutual_tls"),
        })
    }
}

#[derive(Clone, Copy)]
enum Side {
    Source,
    Destination,
}

/// Workload, namespace, canonical service, app and version labels of each side.
const SOURCE: [&str; 5] = [
    "source_workload",
    "source_workload_namespace",
    "source_canonical_service",
    "source_app",
    "source_version",
];
const DESTINATION: [&str; 5] = [
    "destination_workload",
    "destination_workload_namespace",
    "destination_canonical_service",
    "destination_app",
    "destination_version",
];

fn reporter(s: &Sample<'_>) -> Option<Reporter> {
    match s.label("reporter")? {
        "source" => Some(Reporter::Source),
        "destination" => Some(Reporter::Destination),
        _ => None,
    }
}
