//! Sidecar injection analyzers, over the Namespaces and Pods among the files: IST0102
//! NamespaceNotInjected (neither `istio-injection` nor `istio.io/rev`), IST0123
//! NamespaceMultipleInjectionLabels (both), and IST0103 PodMissingProxy (a Pod in an
//! injected namespace without the `istio-proxy` container, unless it opts out or uses the
//! host's network). `istio-system`, Kubernetes' system namespaces and ambient namespaces
//! (`istio.io/dataplane-mode: ambient`) are not expected to inject.
//!
//! And the `image: auto` checks: a Pod whose `istio-proxy` container still has the
//! placeholder image `auto` was never injected (IST0147 ImageAutoWithoutInjectionError); a
//! Deployment with it whose pods will not be injected (IST0146
//! ImageAutoWithoutInjectionWarning) opts out with `sidecar.istio.io/inject: "false"` or is
//! in a Namespace the files declare not injecting (and does not opt in). Istio matches the
//! injector's webhooks; weft takes the default injector's selectors.

use weft_api::Resource;

use super::workloads::{
    DATAPLANE_MODE_LABEL, INJECTION_LABEL, Namespaces, PROXY_CONTAINER, REVISION_LABEL,
    SYSTEM_NAMESPACES, Workload, workloads,
};
use super::{Context, Finding, codes, finding, involved};

const ISTIO_SYSTEM: &str = "istio-system";

/// The index of an `istio-proxy` container whose image is the placeholder `auto`.
fn auto_image(w: &Workload<'_>) -> Option<usize> {
    w.spec
        .containers
        .iter()
        .position(|c| c.name == PROXY_CONTAINER && c.image.as_deref() == Some("auto"))
}

fn image_auto(namespaces: &Namespaces<'_>, w: &Workload<'_>, out: &mut Vec<Finding>) {
    let Some(i) = auto_image(w) else {
        return;
    };
    let (code, kind, prefix) = match &w.resource.resource {
        Resource::Pod(_) => (codes::IMAGE_AUTO_WITHOUT_INJECTION_ERROR, "Pod", "spec"),
        _ => {
            let injected = match w.inject_override() {
                Some(v) => v == "true",
                None => namespaces.injects(w.namespace) != Some(false),
            };
            if injected {
                return;
            }
            (
                codes::IMAGE_AUTO_WITHOUT_INJECTION_WARNING,
                "Deployment",
                "spec.template.spec",
            )
        }
    };
    out.push(finding(
        code,
        format!(
            "{kind} {} contains `image: auto` but does not match any Istio injection webhook selectors.",
            w.name
        ),
        vec![involved(w.resource, &format!("{prefix}.containers[{i}].image"))],
    ));
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for r in ctx.resources {
        let Resource::Namespace(n) = &r.resource else {
            continue;
        };
        let ns = n.metadata.name.as_str();
        let labels = &n.metadata.labels;
        if ns == ISTIO_SYSTEM
            || SYSTEM_NAMESPACES.contains(&ns)
            || labels
                .get(DATAPLANE_MODE_LABEL)
                .is_some_and(|m| m == "ambient")
        {
            continue;
        }
        let injection = labels.get(INJECTION_LABEL).filter(|v| !v.is_empty());
        let revision = labels.contains_key(REVISION_LABEL);
        match (injection, revision) {
            (None, false) => out.push(finding(
                codes::NAMESPACE_NOT_INJECTED,
                format!(
                    "The namespace is not enabled for Istio injection. Run 'kubectl label namespace {ns} istio-injection=enabled' to enable it, or 'kubectl label namespace {ns} istio-injection=disabled' to explicitly mark it as not needing injection."
                ),
                vec![involved(r, "metadata.name")],
            )),
            (Some(_), true) => out.push(finding(
                codes::NAMESPACE_MULTIPLE_INJECTION_LABELS,
                format!(
                    "The namespace has more than one type of injection labels [{INJECTION_LABEL} {REVISION_LABEL}], which may lead to undefined behavior. Make sure only one injection label exists."
                ),
                vec![involved(r, "metadata.labels")],
            )),
            _ => {}
        }
    }
    let namespaces = Namespaces::new(ctx.resources);
    for w in workloads(ctx.resources) {
        image_auto(&namespaces, &w, out);
        let Resource::Pod(p) = &w.resource.resource else {
            continue;
        };
        // Only namespaces the files declare injected: elsewhere nothing says a proxy is due.
        if namespaces.injects(w.namespace) != Some(true) {
            continue;
        }
        let host_network = p
            .fields
            .get("spec")
            .and_then(|s| s.get("hostNetwork"))
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        let opted_out = w
            .inject_override()
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        if !opted_out && !host_network && !w.has_proxy() && auto_image(&w).is_none() {
            out.push(finding(
                codes::POD_MISSING_PROXY,
                format!(
                    "The pod {}/{} is missing the Istio proxy. This can often be resolved by restarting or redeploying the workload.",
                    w.namespace, w.name
                ),
                vec![involved(w.resource, "spec.containers")],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    fn namespace(name: &str, labels: &str) -> String {
        format!(
            "---
apiVersion: v1
kind: Namespace
metadata: {{name: {name}, labels: {{{labels}}}}}
"
        )
    }

    fn pod(name: &str, labels: &str, containers: &str) -> String {
        format!(
            "---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: shop, labels: {{{labels}}}}}
spec:
  containers: {containers}
"
        )
    }

    #[test]
    fn a_namespace_without_injection_labels_is_not_injected() {
        let f = run(&namespace("bar", ""));
        assert_eq!(codes_of(&f), vec!["IST0102"], "{f:?}");
        assert_eq!(
            f[0].to_string(),
            "Info [IST0102] (Namespace bar t.yaml:4) The namespace is not enabled for Istio injection. Run 'kubectl label namespace bar istio-injection=enabled' to enable it, or 'kubectl label namespace bar istio-injection=disabled' to explicitly mark it as not needing injection."
        );
        for labels in [
            "istio-injection: enabled",
            "istio-injection: disabled",
            "istio.io/rev: canary",
            "istio.io/dataplane-mode: ambient",
        ] {
            assert_eq!(run(&namespace("bar", labels)), vec![], "{labels}");
        }
        assert_eq!(run(&namespace("istio-system", "")), vec![]);
        assert_eq!(run(&namespace("kube-system", "")), vec![]);
    }

    const AUTO: &str = "[{name: app, image: app:1}, {name: istio-proxy, image: auto}]";

    fn deployment(labels: &str) -> String {
        format!(
            "---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web{labels}}}}}
    spec:
      containers: {AUTO}
"
        )
    }

    #[test]
    fn a_pod_with_the_auto_proxy_image_was_never_injected() {
        let f = run(&pod("web-1", "app: web", AUTO));
        assert_eq!(codes_of(&f), vec!["IST0147"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Pod web-1 contains `image: auto` but does not match any Istio injection webhook selectors."
        );
        assert_eq!(f[0].level.as_str(), "Error");
        assert_eq!(
            run(&pod("web-1", "app: web", "[{name: app, image: app:1}]")),
            vec![]
        );
    }

    #[test]
    fn a_deployment_with_the_auto_proxy_image_that_is_not_injected_is_reported() {
        let disabled = namespace("shop", "istio-injection: disabled");
        let f = run(&format!("{disabled}{}", deployment("")));
        assert_eq!(codes_of(&f), vec!["IST0146"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Deployment web contains `image: auto` but does not match any Istio injection webhook selectors."
        );
        let f = run(&deployment(", sidecar.istio.io/inject: 'false'"));
        assert_eq!(codes_of(&f), vec!["IST0146"], "{f:?}");
        let enabled = namespace("shop", "istio-injection: enabled");
        assert_eq!(run(&format!("{enabled}{}", deployment(""))), vec![]);
        let opt_in = deployment(", sidecar.istio.io/inject: 'true'");
        assert_eq!(run(&format!("{disabled}{opt_in}")), vec![]);
        assert_eq!(run(&deployment("")), vec![]);
    }

    #[test]
    fn a_namespace_with_both_injection_labels_is_ambiguous() {
        let f = run(&namespace(
            "busted",
            "istio-injection: enabled, istio.io/rev: canary",
        ));
        assert_eq!(codes_of(&f), vec!["IST0123"], "{f:?}");
        assert!(
            f[0].message
                .starts_with("The namespace has more than one type of injection labels [istio-injection istio.io/rev]"),
            "{f:?}"
        );
    }

    #[test]
    fn a_pod_in_an_injected_namespace_without_a_proxy_is_reported() {
        let injected = namespace("shop", "istio-injection: enabled");
        let app = "[{name: app, image: app:1}]";
        let f = run(&format!(
            "{injected}{}",
            pod("noninjected", "app: web", app)
        ));
        assert_eq!(codes_of(&f), vec!["IST0103"], "{f:?}");
        assert_eq!(
            f[0].message,
            "The pod shop/noninjected is missing the Istio proxy. This can often be resolved by restarting or redeploying the workload."
        );
        let with_proxy = "[{name: app, image: app:1}, {name: istio-proxy, image: proxyv2:1.24}]";
        for clean in [
            pod("injected", "app: web", with_proxy),
            pod("optout", "sidecar.istio.io/inject: 'false'", app),
        ] {
            assert_eq!(run(&format!("{injected}{clean}")), vec![], "{clean}");
        }
        // Without a Namespace saying so, nothing says a proxy is due.
        assert_eq!(run(&pod("noninjected", "app: web", app)), vec![]);
        let disabled = namespace("shop", "istio-injection: disabled");
        assert_eq!(
            run(&format!("{disabled}{}", pod("p", "app: web", app))),
            vec![]
        );
        // An empty istio-injection label leaves the revision label to decide.
        let revision = namespace("shop", "istio-injection: '', istio.io/rev: canary");
        let f = run(&format!("{revision}{}", pod("p", "app: web", app)));
        assert_eq!(codes_of(&f), vec!["IST0103"], "{f:?}");
    }
}
