//! PeerAuthentication as Istio resolves it for one workload: the oldest workload policy
//! (selector matching its labels) over the oldest namespace policy over the oldest
//! mesh-wide policy (root namespace, no selector); `UNSET` inherits from the next level,
//! and `PERMISSIVE` applies when nothing is set. `portLevelMtls` (workload policies only)
//! overrides the mode per workload port.

use std::collections::BTreeMap;

use serde::Serialize;
use weft_api::security::peer_authentication::{MtlsMode, PeerAuthentication};
use weft_api::{Object, Resource};

use crate::translate::scope::{ROOT_NAMESPACE, age, selects};

/// A resolved mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    /// Plaintext only: TLS is not terminated.
    Disable,
    /// Mutual TLS and plaintext on the same port.
    #[default]
    Permissive,
    /// Mutual TLS only: plaintext connections are closed.
    Strict,
}

/// What applies to one workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerAuthn {
    /// The workload-wide mode.
    pub mode: Mode,
    /// Per workload port, from the workload policy's `portLevelMtls`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<u16, Mode>,
    /// The policies that decided it (`namespace/name`), most specific first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
}

impl PeerAuthn {
    /// The mode on workload port `port`.
    pub fn mode_on(&self, port: u16) -> Mode {
        self.ports.get(&port).copied().unwrap_or(self.mode)
    }
}

/// The PeerAuthentications of a configuration, oldest first.
#[derive(Debug, Default)]
pub struct PeerPolicies<'r>(Vec<&'r Object<PeerAuthentication>>);

impl<'r> PeerPolicies<'r> {
    /// Collects them from `resources`.
    pub fn new(resources: &'r [Resource]) -> Self {
        let mut all: Vec<&Object<PeerAuthentication>> = resources
            .iter()
            .filter_map(|r| match r {
                Resource::PeerAuthentication(p) => Some(p),
                _ => None,
            })
            .collect();
        all.sort_by_key(|p| age(p));
        PeerPolicies(all)
    }

    /// What applies to a workload of `namespace` with `labels`.
    pub fn resolve(&self, namespace: &str, labels: &BTreeMap<String, String>) -> PeerAuthn {
        let wide = |p: &&&Object<PeerAuthentication>| {
            p.spec
                .selector
                .as_ref()
                .is_none_or(|s| s.match_labels.is_empty())
        };
        let workload = self.0.iter().find(|p| {
            p.metadata.namespace() == namespace
                && p.spec
                    .selector
                    .as_ref()
                    .is_some_and(|s| !s.match_labels.is_empty() && selects(&s.match_labels, labels))
        });
        let namespace_wide = self
            .0
            .iter()
            .filter(wide)
            .find(|p| p.metadata.namespace() == namespace);
        let mesh_wide = self
            .0
            .iter()
            .filter(wide)
            .find(|p| p.metadata.namespace() == ROOT_NAMESPACE);
        let levels = [workload, namespace_wide, mesh_wide];
        let mut out = PeerAuthn::default();
        let mut decided = false;
        for p in levels.iter().flatten() {
            out.policies
                .push(format!("{}/{}", p.metadata.namespace(), p.metadata.name));
            if !decided {
                if let Some(mode) = resolved(p.spec.mtls.map(|m| m.mode)) {
                    out.mode = mode;
                    decided = true;
                }
            }
        }
        if let Some(p) = workload {
            for (port, mtls) in p.spec.port_level() {
                out.ports
                    .insert(port, resolved(Some(mtls.mode)).unwrap_or(out.mode));
            }
        }
        out
    }
}

fn resolved(mode: Option<MtlsMode>) -> Option<Mode> {
    match mode? {
        MtlsMode::Unset => None,
        MtlsMode::Disable => Some(Mode::Disable),
        MtlsMode::Permissive => Some(Mode::Permissive),
        MtlsMode::Strict => Some(Mode::Strict),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(yaml: &str) -> Vec<Resource> {
        let loaded = weft_api::load_str("t.yaml", yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.resources.into_iter().map(|l| l.resource).collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: mesh, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ns, namespace: legacy}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: db, namespace: legacy}
spec:
  selector: {matchLabels: {app: db}}
  mtls: {mode: UNSET}
  portLevelMtls:
    5432: {mode: DISABLE}
    9000: {mode: UNSET}
"#;

    #[test]
    fn workload_over_namespace_over_mesh_with_unset_inheriting() {
        let r = resources(POLICIES);
        let p = PeerPolicies::new(&r);
        assert_eq!(p.resolve("default", &labels(&[])).mode, Mode::Strict);
        assert_eq!(p.resolve("legacy", &labels(&[])).mode, Mode::Permissive);
        let db = p.resolve("legacy", &labels(&[("app", "db")]));
        assert_eq!(db.mode, Mode::Permissive, "UNSET inherits the namespace's");
        assert_eq!(db.mode_on(5432), Mode::Disable);
        assert_eq!(db.mode_on(9000), Mode::Permissive);
        assert_eq!(db.mode_on(80), Mode::Permissive);
        assert_eq!(db.policies, ["legacy/db", "legacy/ns", "istio-system/mesh"]);
        // Nothing at all: PERMISSIVE.
        let none = PeerPolicies::new(&[]);
        assert_eq!(none.resolve("default", &labels(&[])), PeerAuthn::default());
    }
}
