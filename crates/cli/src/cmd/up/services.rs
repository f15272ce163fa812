//! The services `weft up` creates: one per service of the manifest (its workloads share
//! it). A Kubernetes Service among the manifest's resources is created as written (with the
//! virtual IP as its cluster IP); any other service becomes a ServiceEntry, `MESH_INTERNAL`
//! and `STATIC`, with one HTTP port, selecting its workloads by `app=<service>`. In
//! namespace mode each gets the virtual IP the hosts files give it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::bail;
use http::Method;
use weft_api::kube::KubeObject;
use weft_api::meta::ObjectMeta;
use weft_api::networking::ServiceEntry;
use weft_api::networking::service_entry::{Location, Resolution, ServicePort};
use weft_api::networking::sidecar::LabelSelector;
use weft_api::{Kind, Object};

use super::Starting;
use super::manifest::Manifest;
use super::netns;
use crate::client::call;

/// The label marking the ServiceEntries `weft up` created.
const UP_LABEL: &str = "weft.io/up";

/// A service of the manifest.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Service {
    /// Its namespace.
    pub namespace: String,
    /// Its name (the workloads' `service`).
    pub name: String,
    /// Its port (its workloads' port).
    pub port: u16,
    /// Its virtual IP (used in namespace mode).
    pub vip: Ipv4Addr,
    /// The Kubernetes Service among the manifest's resources that declares it, if one does:
    /// created in place of a ServiceEntry.
    pub kube: Option<KubeObject<weft_api::kube::Service>>,
}

impl Service {
    /// The ServiceEntry for this service; `with_vip` gives it its virtual IP.
    pub fn entry(&self, with_vip: bool) -> Object<ServiceEntry> {
        let Service {
            namespace,
            name,
            port,
            vip,
            ..
        } = self;
        Object {
            api_version: format!("{}/v1", Kind::ServiceEntry.group()),
            kind: Kind::ServiceEntry.name().into(),
            metadata: ObjectMeta {
                name: name.clone(),
                namespace: Some(namespace.clone()),
                labels: BTreeMap::from([(UP_LABEL.into(), "true".into())]),
                ..ObjectMeta::default()
            },
            spec: ServiceEntry {
                hosts: vec![format!("{name}.{namespace}.svc.cluster.local")],
                addresses: if with_vip {
                    vec![vip.to_string()]
                } else {
                    vec![]
                },
                ports: vec![ServicePort {
                    number: u32::from(*port),
                    name: "http".into(),
                    protocol: "HTTP".into(),
                    ..ServicePort::default()
                }],
                location: Location::MeshInternal,
                resolution: Resolution::Static,
                workload_selector: Some(LabelSelector {
                    labels: BTreeMap::from([("app".into(), name.clone())]),
                }),
                ..ServiceEntry::default()
            },
            status: None,
        }
    }

    /// The Kubernetes Service to create: as written, with the virtual IP as its `clusterIP`
    /// when it names none (`with_vip`), as a Kubernetes API server allocates one.
    pub fn kube_service(&self, with_vip: bool) -> Option<serde_json::Value> {
        let svc = self.kube.as_ref()?;
        let mut value = serde_json::to_value(svc).ok()?;
        if with_vip
            && svc
                .view
                .spec
                .cluster_ip
                .as_deref()
                .is_none_or(str::is_empty)
        {
            value["spec"]["clusterIP"] = self.vip.to_string().into();
        }
        Some(value)
    }

    /// The address names resolve to in namespace mode: the Service's own cluster IP when
    /// it gives one, else the virtual IP.
    pub fn address(&self) -> Ipv4Addr {
        self.kube
            .as_ref()
            .and_then(|s| s.view.spec.cluster_ip.as_deref())
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(self.vip)
    }
}

/// The manifest's services, in (namespace, name) order, each with the virtual IP of its
/// place in that order: those its workloads belong to, and the Kubernetes Services among its
/// resources.
pub(super) fn services(manifest: &Manifest) -> Vec<Service> {
    // The manifest is checked: the workloads of a service agree on its port.
    let mut ports: BTreeMap<(&str, &str), u16> = manifest
        .workloads
        .iter()
        .map(|w| ((w.namespace.as_str(), w.service.as_str()), w.port))
        .collect();
    for s in &manifest.kube.services {
        let port = s
            .view
            .spec
            .ports
            .first()
            .map_or(0, |p| u16::try_from(p.port).unwrap_or(0));
        ports.insert((s.metadata.namespace(), s.metadata.name.as_str()), port);
    }
    ports
        .into_iter()
        .enumerate()
        .map(|(i, ((namespace, name), port))| Service {
            namespace: namespace.into(),
            name: name.into(),
            port,
            vip: netns::service_vip(i),
            kube: manifest.kube.service(namespace, name).cloned(),
        })
        .collect()
}

impl Starting<'_> {
    /// Creates the ServiceEntry of every service; a service already there is kept in
    /// loopback mode and refused in namespace mode (its virtual IP may differ). Returns
    /// (namespace, service, virtual IP) for the hosts files.
    pub(super) fn create_services(&mut self) -> anyhow::Result<Vec<(String, String, Ipv4Addr)>> {
        let server = self.args.api.to_string();
        let mut vips = Vec::new();
        for service in services(self.manifest) {
            if let Some(body) = service.kube_service(self.namespaces()) {
                let (ns, name) = (&service.namespace, &service.name);
                let path = Kind::Service.api_path(Some(ns), None);
                let answer = self.runtime.block_on(call(
                    &server,
                    Method::POST,
                    &path,
                    Some(serde_json::to_vec(&body)?),
                ))?;
                if !answer.status.is_success() && answer.status != http::StatusCode::CONFLICT {
                    bail!("creating the Service {ns}/{name}: {}", answer.message());
                }
                let address = service.address();
                println!(
                    "▸ service {name}.{ns} (Kubernetes Service, port {}, cluster IP {address})",
                    service.port
                );
                vips.push((ns.clone(), name.clone(), address));
                continue;
            }
            let Service {
                namespace: ns,
                name,
                port,
                vip,
                ..
            } = &service;
            let body = serde_json::to_vec(&service.entry(self.namespaces()))?;
            let path = crate::client::path(Kind::ServiceEntry, Some(ns), None);
            let answer = self
                .runtime
                .block_on(call(&server, Method::POST, &path, Some(body)))?;
            if answer.status.is_success() {
                self.state.services.push((ns.clone(), name.clone()));
                self.save()?;
            } else if answer.status != http::StatusCode::CONFLICT {
                bail!("creating the service {name}: {}", answer.message());
            } else if self.namespaces() {
                // Its virtual IP must be the one the hosts files give.
                bail!(
                    "ServiceEntry {ns}/{name} already exists in the control plane; delete it (`weft delete se {name} -n {ns}`) or stop the mesh that created it"
                );
            }
            if self.namespaces() {
                println!("▸ service {name}.{ns} (port {port}, virtual IP {vip})");
            } else {
                println!("▸ service {name}.{ns} (port {port})");
            }
            vips.push((ns.clone(), name.clone(), *vip));
        }
        Ok(vips)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ServiceEntry as `weft up` wrote it with `serde_json::json!` before it was typed.
    fn untyped(ns: &str, service: &str, port: u16, vip: Option<Ipv4Addr>) -> serde_json::Value {
        let mut spec = serde_json::json!({
            "hosts": [format!("{service}.{ns}.svc.cluster.local")],
            "location": "MESH_INTERNAL", "resolution": "STATIC",
            "ports": [{"number": port, "name": "http", "protocol": "HTTP"}],
            "workloadSelector": {"labels": {"app": service}}
        });
        if let Some(vip) = vip {
            spec["addresses"] = serde_json::json!([vip.to_string()]);
        }
        serde_json::json!({
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": service, "namespace": ns, "labels": {"weft.io/up": "true"}},
            "spec": spec,
        })
    }

    #[test]
    fn typed_entries_match_the_untyped_ones() {
        // Resource paths are relative to where weft up runs (the repository's root).
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let text = std::fs::read_to_string(format!("{root}/examples/up/recommendation.yaml"))
            .expect("example")
            .replace("- examples/", &format!("- {root}/examples/"));
        let file = std::env::temp_dir().join(format!("weft-typed-{}.yaml", std::process::id()));
        std::fs::write(&file, text).expect("written");
        let manifest = super::super::manifest::read(&file).expect("reads");
        let _ = std::fs::remove_file(&file);
        let services = services(&manifest);
        let names: Vec<_> = services
            .iter()
            .map(|s| (s.namespace.as_str(), s.name.as_str(), s.port, s.vip))
            .collect();
        assert_eq!(
            names,
            [
                ("default", "bff-service", 8080, Ipv4Addr::new(198, 19, 0, 1)),
                (
                    "default",
                    "recommendation-service",
                    8080,
                    Ipv4Addr::new(198, 19, 0, 2)
                ),
            ]
        );
        for s in &services {
            for with_vip in [false, true] {
                let old = untyped(&s.namespace, &s.name, s.port, with_vip.then_some(s.vip));
                let mut new = serde_json::to_value(s.entry(with_vip)).expect("serializes");
                // The typed port also writes its default `targetPort: 0` (none set),
                // which the control plane reads as absent.
                let port = &mut new["spec"]["ports"][0];
                assert_eq!(port["targetPort"], 0);
                port.as_object_mut()
                    .expect("an object")
                    .remove("targetPort");
                assert_eq!(new, old, "{} (with_vip {with_vip})", s.name);
                // And the control plane reads both as the same resource.
                let read = |v: &serde_json::Value| {
                    let text = serde_json::to_string(v).expect("serializes");
                    let loaded = weft_api::load_str("test", &text);
                    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
                    loaded
                        .resources
                        .into_iter()
                        .map(|r| r.resource)
                        .collect::<Vec<_>>()
                };
                let typed = serde_json::to_value(s.entry(with_vip)).expect("serializes");
                assert_eq!(read(&typed), read(&old));
            }
        }
    }
}
