//! The ServiceEntries `weft up` creates: one per service of the manifest (its workloads
//! share it), `MESH_INTERNAL` and `STATIC`, with one HTTP port, selecting its workloads by
//! `app=<service>`; in namespace mode each also gets the virtual IP the hosts files give it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::bail;
use http::Method;

use super::Starting;
use super::netns;
use crate::client::call;

impl Starting<'_> {
    /// One ServiceEntry per service, selecting its workloads by label; in namespace
    /// mode each gets a virtual IP. Returns (namespace, service, virtual IP).
    pub(super) fn create_services(&mut self) -> anyhow::Result<Vec<(String, String, Ipv4Addr)>> {
        let mut services: BTreeMap<(String, String), u16> = BTreeMap::new();
        for w in &self.manifest.workloads {
            services.insert((w.namespace.clone(), w.service.clone()), w.port);
        }
        let server = self.args.api.to_string();
        let mut vips = Vec::new();
        for (i, ((ns, service), port)) in services.iter().enumerate() {
            let vip = netns::service_vip(i);
            let mut spec = serde_json::json!({
                "hosts": [format!("{service}.{ns}.svc.cluster.local")],
                "location": "MESH_INTERNAL", "resolution": "STATIC",
                "ports": [{"number": port, "name": "http", "protocol": "HTTP"}],
                "workloadSelector": {"labels": {"app": service}}
            });
            if self.namespaces() {
                spec["addresses"] = serde_json::json!([vip.to_string()]);
            }
            let se = serde_json::json!({
                "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                "metadata": {"name": service, "namespace": ns, "labels": {"weft.io/up": "true"}},
                "spec": spec,
            });
            let path = crate::client::path(weft_api::Kind::ServiceEntry, Some(ns), None);
            let answer = self.runtime.block_on(call(
                &server,
                Method::POST,
                &path,
                Some(serde_json::to_vec(&se)?),
            ))?;
            if answer.status.is_success() {
                self.state.services.push((ns.clone(), service.clone()));
                self.save()?;
            } else if answer.status != http::StatusCode::CONFLICT {
                bail!("creating the service {service}: {}", answer.message());
            } else if self.namespaces() {
                // Its virtual IP must be the one the hosts files give.
                bail!(
                    "ServiceEntry {ns}/{service} already exists in the control plane; delete it (`weft delete se {service} -n {ns}`) or stop the mesh that created it"
                );
            }
            if self.namespaces() {
                println!("▸ service {service}.{ns} (port {port}, virtual IP {vip})");
            } else {
                println!("▸ service {service}.{ns} (port {port})");
            }
            vips.push((ns.clone(), service.clone(), vip));
        }
        Ok(vips)
    }
}
