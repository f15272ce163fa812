//! Annotation analyzers: IST0108 UnknownAnnotation (an `istio.io` annotation Istio does
//! not define), IST0107 MisplacedAnnotation (one defined for another kind, such as a Pod
//! annotation on a VirtualService), IST0135 DeprecatedAnnotation and IST0125
//! InvalidAnnotation (a value the injector refuses, see `annotation_values`). The table holds
//! Istio's annotations; only keys whose prefix is an `istio.io` domain are judged.

use super::annotation_values;
use super::{Context, Finding, SUPPRESS_ANNOTATION, codes, finding, involved};

/// Where an annotation belongs.
#[derive(Clone, Copy, PartialEq)]
enum Applies {
    /// Any resource.
    Any,
    /// One kind of resource, by its kind name.
    Kind(&'static str),
}

/// An Istio annotation: its key, where it belongs, and whether it is deprecated.
struct Known {
    key: &'static str,
    applies: Applies,
    deprecated: bool,
}

const fn known(key: &'static str, applies: Applies, deprecated: bool) -> Known {
    Known {
        key,
        applies,
        deprecated,
    }
}

use Applies::{Any, Kind};

const POD: Applies = Kind("Pod");

/// Istio's annotations (istio/api `annotation/annotations.yaml`).
const KNOWN: &[Known] = &[
    known(SUPPRESS_ANNOTATION, Any, false),
    known("istio.io/dry-run", Kind("AuthorizationPolicy"), false),
    known("istio.io/rev", Any, false),
    known("networking.istio.io/exportTo", Kind("Service"), false),
    known(
        "networking.istio.io/traffic-distribution",
        Kind("Service"),
        false,
    ),
    known(
        "topology.istio.io/controlPlaneClusters",
        Kind("Namespace"),
        false,
    ),
    known("inject.istio.io/templates", POD, false),
    known("proxy.istio.io/config", POD, false),
    known("proxy.istio.io/overrides", POD, false),
    known("prometheus.istio.io/merge-metrics", POD, false),
    known("ambient.istio.io/redirection", POD, false),
    known("status.sidecar.istio.io/port", POD, false),
    known(
        "readiness.status.sidecar.istio.io/applicationPorts",
        POD,
        false,
    ),
    known(
        "readiness.status.sidecar.istio.io/failureThreshold",
        POD,
        false,
    ),
    known(
        "readiness.status.sidecar.istio.io/initialDelaySeconds",
        POD,
        false,
    ),
    known(
        "readiness.status.sidecar.istio.io/periodSeconds",
        POD,
        false,
    ),
    known("sidecar.istio.io/agentLogLevel", POD, false),
    known("sidecar.istio.io/bootstrapOverride", POD, false),
    known("sidecar.istio.io/componentLogLevel", POD, false),
    known("sidecar.istio.io/discoveryAddress", POD, false),
    known("sidecar.istio.io/enableCoreDump", POD, false),
    known("sidecar.istio.io/extraStatTags", POD, true),
    known("sidecar.istio.io/inject", POD, true),
    known("sidecar.istio.io/interceptionMode", POD, false),
    known("sidecar.istio.io/logLevel", POD, false),
    known("sidecar.istio.io/nativeSidecar", POD, false),
    known("sidecar.istio.io/proxyCPU", POD, false),
    known("sidecar.istio.io/proxyCPULimit", POD, false),
    known("sidecar.istio.io/proxyImage", POD, false),
    known("sidecar.istio.io/proxyImageType", POD, false),
    known("sidecar.istio.io/proxyMemory", POD, false),
    known("sidecar.istio.io/proxyMemoryLimit", POD, false),
    known("sidecar.istio.io/rewriteAppHTTPProbers", POD, false),
    known("sidecar.istio.io/statsHistogramBuckets", POD, false),
    known("sidecar.istio.io/statsInclusionPrefixes", POD, true),
    known("sidecar.istio.io/statsInclusionRegexps", POD, true),
    known("sidecar.istio.io/statsInclusionSuffixes", POD, true),
    known("sidecar.istio.io/status", POD, false),
    known("sidecar.istio.io/userVolume", POD, false),
    known("sidecar.istio.io/userVolumeMount", POD, false),
    known("traffic.sidecar.istio.io/excludeInboundPorts", POD, false),
    known("traffic.sidecar.istio.io/excludeInterfaces", POD, false),
    known(
        "traffic.sidecar.istio.io/excludeOutboundIPRanges",
        POD,
        false,
    ),
    known("traffic.sidecar.istio.io/excludeOutboundPorts", POD, false),
    known("traffic.sidecar.istio.io/includeInboundPorts", POD, false),
    known(
        "traffic.sidecar.istio.io/includeOutboundIPRanges",
        POD,
        false,
    ),
    known("traffic.sidecar.istio.io/includeOutboundPorts", POD, false),
    known("traffic.sidecar.istio.io/kubevirtInterfaces", POD, true),
];

/// True for keys Istio owns: a prefix that is `istio.io` or one of its subdomains.
fn is_istio(key: &str) -> bool {
    key.split_once('/')
        .is_some_and(|(prefix, _)| prefix == "istio.io" || prefix.ends_with(".istio.io"))
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for r in ctx.resources {
        let kind = r.resource.kind().name();
        for (key, value) in &r.resource.metadata().annotations {
            if !is_istio(key) {
                continue;
            }
            let path = format!("metadata.annotations.{key}");
            let Some(k) = KNOWN.iter().find(|k| k.key == key) else {
                out.push(finding(
                    codes::UNKNOWN_ANNOTATION,
                    format!("Unknown annotation: {key}"),
                    vec![involved(r, &path)],
                ));
                continue;
            };
            if k.deprecated {
                out.push(finding(
                    codes::DEPRECATED_ANNOTATION,
                    format!(
                        "Annotation \"{key}\" has been deprecated and may not work in future Istio versions."
                    ),
                    vec![involved(r, &path)],
                ));
            }
            if let Kind(wanted) = k.applies {
                if wanted != kind {
                    out.push(finding(
                        codes::MISPLACED_ANNOTATION,
                        format!("Misplaced annotation: {key} can only be applied to {wanted}"),
                        vec![involved(r, &path)],
                    ));
                    continue;
                }
            }
            if let Some(problem) = annotation_values::problem(key, value) {
                out.push(finding(
                    codes::INVALID_ANNOTATION,
                    format!("Invalid annotation {key}: {problem}"),
                    vec![involved(r, &path)],
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    fn policy(annotation: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: p, annotations: {{{annotation}: 'true'}}}}
spec: {{action: DENY, rules: [{{from: [{{source: {{namespaces: [evil]}}}}]}}]}}
"
        )
    }

    #[test]
    fn an_unknown_istio_annotation_is_reported() {
        let f = run(&policy("networking.istio.io/nonsense"));
        assert_eq!(codes_of(&f), vec!["IST0108"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Unknown annotation: networking.istio.io/nonsense"
        );
        for fine in [
            "istio.io/dry-run",
            "example.com/istio.io",
            "galley.istio.io/analyze-suppress",
        ] {
            assert_eq!(run(&policy(fine)), vec![], "{fine}");
        }
    }

    #[test]
    fn a_pod_annotation_on_a_policy_is_misplaced() {
        let f = run(&policy("sidecar.istio.io/proxyCPU"));
        assert_eq!(codes_of(&f), vec!["IST0107"], "{f:?}");
        assert!(
            f[0].message.ends_with("can only be applied to Pod"),
            "{f:?}"
        );
    }

    #[test]
    fn a_deprecated_annotation_is_reported() {
        let f = run(&policy("sidecar.istio.io/inject"));
        assert!(codes_of(&f).contains(&"IST0135"), "{f:?}");
        let f = run(&policy("sidecar.istio.io/logLevel"));
        assert!(!codes_of(&f).contains(&"IST0135"), "{f:?}");
    }
    #[test]
    fn a_pod_annotation_value_the_injector_refuses_is_invalid() {
        let pod = "apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations: {sidecar.istio.io/interceptionMode: MODE}
spec: {containers: [{name: web, image: web:1}]}
";
        let f = run(&pod.replace("MODE", "ISTIO"));
        assert_eq!(codes_of(&f), vec!["IST0125"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Invalid annotation sidecar.istio.io/interceptionMode: interceptionMode invalid, use REDIRECT,TPROXY,NONE: ISTIO"
        );
        assert_eq!(run(&pod.replace("MODE", "REDIRECT")), vec![]);
    }
}
