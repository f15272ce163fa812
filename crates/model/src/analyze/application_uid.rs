//! IST0144 InvalidApplicationUID: a Pod or Deployment whose pod or application container
//! runs as user 1337, the UID the sidecar runs as (its own traffic is not intercepted, so
//! the application's would bypass the proxy). The sidecar's and Istio's own workloads
//! (labelled `istio` or `release: istio`) are not checked.

use serde_json::Value;
use weft_api::Resource;
use weft_api::load::LocatedResource;

use super::workloads::PROXY_CONTAINER;
use super::{Context, Finding, codes, finding, involved};

/// The user ID reserved for the sidecar.
const PROXY_UID: i64 = 1337;
/// The container of Istio's operator, which may run as the proxy's user.
const OPERATOR_CONTAINER: &str = "istio-operator";

fn runs_as_proxy(security_context: Option<&Value>) -> bool {
    security_context
        .and_then(|c| c.get("runAsUser"))
        .and_then(Value::as_i64)
        == Some(PROXY_UID)
}

fn check_pod_spec(r: &LocatedResource, spec: &Value, prefix: &str, out: &mut Vec<Finding>) {
    let mut report = |path: String| {
        out.push(finding(
            codes::INVALID_APPLICATION_UID,
            "User ID (UID) 1337 is reserved for the sidecar proxy.".to_string(),
            vec![involved(r, &path)],
        ));
    };
    if runs_as_proxy(spec.get("securityContext")) {
        report(format!("{prefix}.securityContext.runAsUser"));
    }
    let containers = spec.get("containers").and_then(Value::as_array);
    for (i, c) in containers.into_iter().flatten().enumerate() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        if name != PROXY_CONTAINER
            && name != OPERATOR_CONTAINER
            && runs_as_proxy(c.get("securityContext"))
        {
            report(format!(
                "{prefix}.containers[{i}].securityContext.runAsUser"
            ));
        }
    }
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for r in ctx.resources {
        let (labels, spec, prefix) = match &r.resource {
            Resource::Pod(p) => (&p.metadata.labels, p.fields.get("spec"), "spec"),
            Resource::Deployment(d) => (
                &d.metadata.labels,
                d.fields
                    .get("spec")
                    .and_then(|s| s.get("template"))
                    .and_then(|t| t.get("spec")),
                "spec.template.spec",
            ),
            _ => continue,
        };
        if labels.contains_key("istio") || labels.get("release").is_some_and(|v| v == "istio") {
            continue;
        }
        if let Some(spec) = spec {
            check_pod_spec(r, spec, prefix, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    const DEPLOYMENT: &str = "---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsUser: POD}
      containers:
      - {name: web, image: web:1, securityContext: {runAsUser: APP}}
      - {name: istio-proxy, image: proxyv2, securityContext: {runAsUser: 1337}}
";

    #[test]
    fn an_application_running_as_the_proxy_uid_is_reported() {
        let f = run(&DEPLOYMENT.replace("POD", "1337").replace("APP", "1000"));
        assert_eq!(codes_of(&f), vec!["IST0144"], "{f:?}");
        assert_eq!(
            f[0].message,
            "User ID (UID) 1337 is reserved for the sidecar proxy."
        );
        assert_eq!(f[0].resources[0].line, 10);
        let f = run(&DEPLOYMENT.replace("POD", "1000").replace("APP", "1337"));
        assert_eq!(codes_of(&f), vec!["IST0144"], "{f:?}");
        assert_eq!(f[0].resources[0].line, 12);
        let pod = "---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: web, image: web:1, securityContext: {runAsUser: 1337}}]
";
        assert_eq!(codes_of(&run(pod)), vec!["IST0144"]);
    }

    #[test]
    fn the_sidecar_and_other_uids_are_clean() {
        let f = run(&DEPLOYMENT.replace("POD", "1000").replace("APP", "1001"));
        assert_eq!(f, vec![]);
        let istio = DEPLOYMENT
            .replace(
                "metadata: {name: web}",
                "metadata: {name: web, labels: {istio: pilot}}",
            )
            .replace("POD", "1337")
            .replace("APP", "1337");
        assert_eq!(run(&istio), vec![]);
    }
}
