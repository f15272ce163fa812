//! Kubernetes manifests in `weft up`: the Deployments among the manifest's `resources` run
//! as workloads, and its Services are the mesh's services in place of the ServiceEntries
//! `weft up` otherwise creates, so an app's Kubernetes YAML runs unchanged on one machine.
//!
//! Each replica of a Deployment is one workload: its first container's `command` and `args`
//! run as a local process (the image is not pulled: `weft up` runs no containers) with the
//! container's literal `env`, listening on its first `containerPort`, labelled with the pod
//! template's labels and running as its service account. Replica `i` is named
//! `<deployment>-<i>` (or `<deployment>` alone for one replica).

use std::path::PathBuf;

use anyhow::bail;
use weft_api::kube::{Deployment, KubeObject, Service};
use weft_api::{Diagnostic, Resource};

use super::manifest::Workload;

/// The Kubernetes objects of the manifest's resource files that `weft up` acts on.
#[derive(Debug, Default)]
pub struct KubeResources {
    /// The Services: created before the workloads start, with their virtual IPs.
    pub services: Vec<KubeObject<Service>>,
    /// The Deployments: run as workloads.
    pub deployments: Vec<KubeObject<Deployment>>,
    /// The Gateway API Gateways and GatewayClasses: a gateway proxy is started for each
    /// Gateway of a class weft serves.
    pub gateways: Vec<Resource>,
}

/// Reads the Services and Deployments of `files`; a file that does not load is an error
/// naming every problem, as `weft apply` would report it.
pub fn read(files: &[PathBuf]) -> anyhow::Result<KubeResources> {
    let mut out = KubeResources::default();
    let files = weft_api::files::config_files(files)?;
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
        let loaded = weft_api::load_str(&file.display().to_string(), &text);
        if loaded.has_errors() {
            let errors: Vec<String> = loaded
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(Diagnostic::to_string)
                .collect();
            bail!("invalid resources:\n  {}", errors.join("\n  "));
        }
        for r in loaded.resources {
            match r.resource {
                Resource::Service(s) => out.services.push(s),
                Resource::Deployment(d) => out.deployments.push(d),
                r @ (Resource::KubernetesGateway(_) | Resource::GatewayClass(_)) => {
                    out.gateways.push(r)
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

impl KubeResources {
    /// The Service of `namespace` named `name`, if the resources declare one.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&KubeObject<Service>> {
        self.services
            .iter()
            .find(|s| s.metadata.namespace() == namespace && s.metadata.name == name)
    }

    /// The workloads the Deployments run; a Deployment `weft up` cannot run is an error
    /// naming its field.
    pub fn workloads(&self) -> anyhow::Result<Vec<Workload>> {
        let mut out = Vec::new();
        for d in &self.deployments {
            let ns = d.metadata.namespace();
            let at = format!("Deployment {ns}/{}", d.metadata.name);
            let template = &d.view.spec.template;
            let Some(container) = template.spec.containers.first() else {
                bail!("{at}: spec.template.spec.containers: Required value");
            };
            let mut command = container.command.clone();
            command.extend(container.args.iter().cloned());
            if command.is_empty() {
                bail!(
                    "{at}: spec.template.spec.containers[0].command: weft up runs the container's command as a local process (it runs no images); give `command` (and `args`)"
                );
            }
            let Some(port) = container
                .ports
                .first()
                .and_then(|p| u16::try_from(p.container_port).ok())
            else {
                bail!(
                    "{at}: spec.template.spec.containers[0].ports: weft up needs the port the app listens on (`containerPort`)"
                );
            };
            let labels = &template.metadata.labels;
            // The Services selecting the pods: the first names the workload's service.
            let selecting: Vec<&KubeObject<Service>> = self
                .services
                .iter()
                .filter(|s| {
                    s.metadata.namespace() == ns
                        && !s.view.spec.selector.is_empty()
                        && s.view
                            .spec
                            .selector
                            .iter()
                            .all(|(k, v)| labels.get(k) == Some(v))
                })
                .collect();
            let service = labels
                .get("app")
                .cloned()
                .or_else(|| selecting.first().map(|s| s.metadata.name.clone()))
                .unwrap_or_else(|| d.metadata.name.clone());
            // Service ports reaching this container port, by name: the sidecar registers them.
            let port_names: Vec<String> = selecting
                .iter()
                .flat_map(|s| &s.view.spec.ports)
                .filter(|p| {
                    let target = match &p.target_port {
                        Some(weft_api::kube::IntOrString::Int(t)) => Some(*t),
                        Some(weft_api::kube::IntOrString::String(name)) => {
                            template.spec.named_port(name).map(i64::from)
                        }
                        None => Some(p.port),
                    };
                    target == Some(i64::from(port))
                })
                .filter_map(|p| p.name.clone().filter(|n| !n.is_empty()))
                .collect();
            let replicas = d.view.spec.replicas();
            for i in 0..replicas {
                let name = match replicas {
                    1 => d.metadata.name.clone(),
                    _ => format!("{}-{i}", d.metadata.name),
                };
                out.push(Workload {
                    name,
                    service: service.clone(),
                    namespace: ns.to_string(),
                    service_account: template.spec.service_account().to_string(),
                    labels: labels.clone(),
                    command: command.clone(),
                    port,
                    env: container
                        .env
                        .iter()
                        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                        .collect(),
                    port_names: port_names.clone(),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(yaml: &str) -> KubeResources {
        let dir = std::env::temp_dir().join(format!(
            "weft-up-kube-{}-{}",
            std::process::id(),
            yaml.len()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("app.yaml");
        std::fs::write(&file, yaml).expect("write");
        let read = read(&[file]).expect("reads");
        let _ = std::fs::remove_dir_all(&dir);
        read
    }

    #[test]
    fn deployments_become_workloads_of_the_service_selecting_them() {
        let k = resources(
            r#"
apiVersion: v1
kind: Service
metadata: {name: recommendation-service}
spec:
  selector: {app: recommendation-service}
  ports: [{name: http-api, port: 80, targetPort: api}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: recommendation-v2}
spec:
  replicas: 2
  selector: {matchLabels: {app: recommendation-service, version: v2}}
  template:
    metadata: {labels: {app: recommendation-service, version: v2}}
    spec:
      serviceAccountName: recommendation
      containers:
      - name: app
        image: ignored
        command: [python3]
        args: [app.py]
        env: [{name: VERSION, value: v2}, {name: FROM_SECRET, valueFrom: {secretKeyRef: {name: s, key: k}}}]
        ports: [{name: api, containerPort: 8080}]
"#,
        );
        let w = k.workloads().expect("workloads");
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].name, "recommendation-v2-0");
        assert_eq!(w[1].name, "recommendation-v2-1");
        assert_eq!(w[0].service, "recommendation-service");
        assert_eq!(w[0].service_account, "recommendation");
        assert_eq!(w[0].command, ["python3", "app.py"]);
        assert_eq!(w[0].port, 8080);
        assert_eq!(w[0].env.len(), 1, "only literal values");
        assert_eq!(w[0].port_names, ["http-api"]);
        assert!(k.service("default", "recommendation-service").is_some());
    }

    #[test]
    fn a_deployment_without_command_or_port_is_refused_by_field() {
        let base = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec:\n      containers: [CONTAINER]\n";
        let no_command = resources(&base.replace(
            "CONTAINER",
            "{name: c, image: i, ports: [{containerPort: 80}]}",
        ));
        let e = no_command.workloads().expect_err("refused").to_string();
        assert!(
            e.contains("Deployment default/d: spec.template.spec.containers[0].command"),
            "{e}"
        );
        let no_port = resources(&base.replace("CONTAINER", "{name: c, command: [x]}"));
        let e = no_port.workloads().expect_err("refused").to_string();
        assert!(e.contains("containers[0].ports"), "{e}");
    }
}
