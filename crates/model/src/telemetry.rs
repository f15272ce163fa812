//! Which traces, access logs and metrics one proxy produces, from the Telemetry resources
//! that apply to it, resolved as Istio does: the root namespace's (mesh-wide) <
//! its namespace's (no selector) < its workload's (selector). Each level's fields
//! override the less specific ones', section by section (tracing, access logging,
//! metrics) and side by side (CLIENT is the outbound side, SERVER the inbound); providers
//! left unset come from the mesh config's `defaultProviders`.
//!
//! Pure: resources, scope and mesh config in, a [`ProxyTelemetry`] out; expressions stay
//! text here and are compiled by the proxy once per configuration.

use std::collections::BTreeMap;

use serde::Serialize;
use weft_api::mesh_config::{MeshConfig, PROMETHEUS_PROVIDER};
use weft_api::telemetry::{
    AccessLogging, IstioMetric, Metrics, ModeSelector, TagOperation, Telemetry, Tracing,
};
use weft_api::{Object, Resource};

use crate::translate::scope::{ProxyScope, ROOT_NAMESPACE, age, selects};

/// One proxy's resolved telemetry, per side.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ProxyTelemetry {
    /// The client side: requests this proxy sends out (outbound, gateways).
    pub client: SideTelemetry,
    /// The server side: requests to this proxy's workload (inbound).
    pub server: SideTelemetry,
    /// The Telemetry resources applied, least specific first (`namespace/name`).
    pub applied: Vec<String>,
}

impl ProxyTelemetry {
    /// The side of `client` (true: outbound) or the server side.
    pub fn side(&self, client: bool) -> &SideTelemetry {
        if client { &self.client } else { &self.server }
    }
}

/// The resolved telemetry of one side.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SideTelemetry {
    /// Traces.
    pub tracing: TracingPolicy,
    /// Access logs.
    pub access_log: AccessLogPolicy,
    /// Metrics.
    pub metrics: MetricsPolicy,
}

/// How spans are made and reported.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TracingPolicy {
    /// The tracing provider; `None`: the mesh's default one (or the proxy's own flag).
    pub provider: Option<String>,
    /// Percent of new traces sampled; `None`: the mesh config's sampling.
    pub sampling: Option<f64>,
    /// Propagate trace context, report no span.
    pub disable_span_reporting: bool,
    /// Tags added to every span, by name.
    pub custom_tags: BTreeMap<String, TagSource>,
}

/// Where a custom span tag's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TagSource {
    /// A fixed value.
    Literal(String),
    /// An environment variable of the proxy, or `default` when unset.
    Environment {
        /// The variable.
        name: String,
        /// The value when it is unset.
        default: String,
    },
    /// A request header, or `default` when absent.
    Header {
        /// The header (lower case).
        name: String,
        /// The value when it is absent.
        default: String,
    },
}

/// Which access logs a request is written to, each under its own rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AccessLogPolicy {
    /// The mesh's `accessLogFile` (or the proxy's `--access-log`) takes the lines.
    pub legacy: Option<LogRule>,
    /// Access log providers (`envoyFileAccessLog`, the built-in `envoy`) by name.
    pub providers: BTreeMap<String, LogRule>,
}

impl AccessLogPolicy {
    /// Every log on, without filter (no Telemetry says anything).
    fn unfiltered(legacy: bool, providers: impl IntoIterator<Item = String>) -> AccessLogPolicy {
        AccessLogPolicy {
            legacy: legacy.then(LogRule::default),
            providers: providers
                .into_iter()
                .map(|p| (p, LogRule::default()))
                .collect(),
        }
    }

    /// True when no request is logged.
    pub fn is_off(&self) -> bool {
        self.legacy.is_none() && self.providers.is_empty()
    }
}

/// What one access log takes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LogRule {
    /// A CEL expression: only requests for which it is true are logged.
    pub filter: Option<String>,
}

/// Which metrics are recorded, and their labels.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MetricsPolicy {
    /// False when the metrics providers in force include no Prometheus one: nothing recorded.
    pub disabled_all: bool,
    /// Changes to single metrics (only those with one).
    pub overrides: BTreeMap<IstioMetric, MetricOverride>,
}

impl MetricsPolicy {
    /// True when `metric` is recorded.
    pub fn enabled(&self, metric: IstioMetric) -> bool {
        !self.disabled_all && !self.overrides.get(&metric).is_some_and(|o| o.disabled)
    }

    /// True when every request metric is off (nothing to record per request).
    pub fn requests_off(&self) -> bool {
        [
            IstioMetric::RequestCount,
            IstioMetric::RequestDuration,
            IstioMetric::RequestSize,
            IstioMetric::ResponseSize,
        ]
        .into_iter()
        .all(|m| !self.enabled(m))
    }
}

/// One metric's override.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MetricOverride {
    /// Not recorded.
    pub disabled: bool,
    /// Label changes, by label name.
    pub tags: BTreeMap<String, TagChange>,
}

/// A label change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TagChange {
    /// The label is dropped.
    Remove,
    /// The label is set to the value of a CEL expression.
    Upsert(String),
}

/// The Telemetry resources that apply to a proxy in `scope`, least specific first: the
/// root namespace's without selector, its namespace's without selector, the one selecting
/// its workload. Of several at one level the oldest applies (Istio's IST0159 reports the
/// conflict). targetRefs attach to waypoints and Gateway API gateways, which weft does
/// not run: such a resource applies to no sidecar.
pub fn applicable<'r>(resources: &'r [Resource], scope: &ProxyScope) -> Vec<&'r Object<Telemetry>> {
    let mut levels: [Option<&Object<Telemetry>>; 3] = [None, None, None];
    let mut all: Vec<&Object<Telemetry>> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Telemetry(t) => Some(t),
            _ => None,
        })
        .filter(|t| t.spec.target_ref.is_none() && t.spec.target_refs.is_empty())
        .collect();
    all.sort_by_key(|t| age(t));
    for t in all {
        let ns = t.metadata.namespace();
        let selector = t
            .spec
            .selector
            .as_ref()
            .filter(|s| !s.match_labels.is_empty());
        let level = match selector {
            Some(s) if ns == scope.namespace && selects(&s.match_labels, &scope.labels) => 2,
            Some(_) => continue,
            None if ns == scope.namespace && ns != ROOT_NAMESPACE => 1,
            None if ns == ROOT_NAMESPACE => 0,
            None => continue,
        };
        levels[level].get_or_insert(t);
    }
    levels.into_iter().flatten().collect()
}

/// The telemetry of a proxy in `scope`, under `mesh`'s default providers.
pub fn resolve(resources: &[Resource], scope: &ProxyScope, mesh: &MeshConfig) -> ProxyTelemetry {
    let chain = applicable(resources, scope);
    let specs: Vec<&Telemetry> = chain.iter().map(|t| &t.spec).collect();
    ProxyTelemetry {
        client: side(&specs, true, mesh),
        server: side(&specs, false, mesh),
        applied: chain
            .iter()
            .map(|t| format!("{}/{}", t.metadata.namespace(), t.metadata.name))
            .collect(),
    }
}

fn side(specs: &[&Telemetry], client: bool, mesh: &MeshConfig) -> SideTelemetry {
    let defaults = mesh.default_providers.clone().unwrap_or_default();
    SideTelemetry {
        tracing: tracing(specs, client),
        access_log: access_log(specs, client, &defaults.access_logging, mesh),
        metrics: metrics(specs, client, &defaults.metrics, mesh),
    }
}

fn tracing(specs: &[&Telemetry], client: bool) -> TracingPolicy {
    let mut out = TracingPolicy::default();
    let entries = specs
        .iter()
        .flat_map(|s| &s.tracing)
        .filter(|t: &&Tracing| ModeSelector::mode_of(&t.match_).covers(client));
    for t in entries {
        if let Some(p) = t.providers.first() {
            out.provider = Some(p.name.clone());
        }
        if let Some(s) = t.random_sampling_percentage {
            out.sampling = Some(s);
        }
        if let Some(d) = t.disable_span_reporting {
            out.disable_span_reporting = d;
        }
        for (name, tag) in &t.custom_tags {
            let source = if let Some(l) = &tag.literal {
                TagSource::Literal(l.value.clone())
            } else if let Some(e) = &tag.environment {
                TagSource::Environment {
                    name: e.name.clone(),
                    default: e.default_value.clone(),
                }
            } else if let Some(h) = &tag.header {
                TagSource::Header {
                    name: h.name.to_ascii_lowercase(),
                    default: h.default_value.clone(),
                }
            } else {
                continue;
            };
            out.custom_tags.insert(name.clone(), source);
        }
    }
    out
}

fn access_log(
    specs: &[&Telemetry],
    client: bool,
    defaults: &[String],
    mesh: &MeshConfig,
) -> AccessLogPolicy {
    let entries: Vec<&AccessLogging> = specs
        .iter()
        .flat_map(|s| &s.access_logging)
        .filter(|a| ModeSelector::mode_of(&a.match_).covers(client))
        .collect();
    let known = |name: &String| mesh.access_log_provider_path(name).is_some();
    if entries.is_empty() {
        // No Telemetry says anything: the mesh config's file and default providers.
        return AccessLogPolicy::unfiltered(true, defaults.iter().filter(|n| known(n)).cloned());
    }
    // As Istio merges them: the providers in scope are the last ones named (the default
    // ones until then); an entry's `disabled` and `filter` apply to the providers in scope
    // when it is read, the more specific entry winning. With no provider anywhere, the
    // mesh's accessLogFile (`None` below) takes the entry, as Istio's built-in log.
    let mut names: Vec<String> = defaults.to_vec();
    let mut rules: BTreeMap<Option<String>, (bool, Option<String>)> = BTreeMap::new();
    let targets = |names: &[String]| -> Vec<Option<String>> {
        if names.is_empty() {
            vec![None]
        } else {
            names.iter().cloned().map(Some).collect()
        }
    };
    for a in entries {
        if !a.providers.is_empty() {
            names = a.providers.iter().map(|p| p.name.clone()).collect();
        }
        for target in targets(&names) {
            let rule = rules.entry(target).or_default();
            if let Some(d) = a.disabled {
                rule.0 = d;
            }
            if let Some(f) = &a.filter {
                rule.1 = Some(f.expression.clone());
            }
        }
    }
    let mut out = AccessLogPolicy::default();
    for target in targets(&names) {
        let (disabled, filter) = rules.get(&target).cloned().unwrap_or_default();
        if disabled {
            continue;
        }
        match target {
            None => out.legacy = Some(LogRule { filter }),
            Some(name) if known(&name) => {
                out.providers.insert(name, LogRule { filter });
            }
            Some(_) => {}
        }
    }
    out
}

fn metrics(
    specs: &[&Telemetry],
    client: bool,
    defaults: &[String],
    mesh: &MeshConfig,
) -> MetricsPolicy {
    let mut out = MetricsPolicy::default();
    let mut providers: Option<&[weft_api::telemetry::ProviderRef]> = None;
    let entries = specs.iter().flat_map(|s| &s.metrics);
    let prometheus = |name: &str| match mesh.provider(name) {
        Some(p) => p.prometheus.is_some(),
        None => name == PROMETHEUS_PROVIDER,
    };
    for m in entries {
        let m: &Metrics = m;
        if !m.providers.is_empty() {
            providers = Some(&m.providers);
        }
        for o in &m.overrides {
            let selector = o.match_.clone().unwrap_or_default();
            if !selector.mode.unwrap_or_default().covers(client) {
                continue;
            }
            let which = selector.metric.unwrap_or_default();
            for metric in IstioMetric::EACH.into_iter().filter(|e| which.covers(*e)) {
                let entry = out.overrides.entry(metric).or_default();
                if let Some(d) = o.disabled {
                    entry.disabled = d;
                }
                for (tag, change) in &o.tag_overrides {
                    let change = match change.operation.unwrap_or_default() {
                        TagOperation::Remove => TagChange::Remove,
                        TagOperation::Upsert => {
                            TagChange::Upsert(change.value.clone().unwrap_or_default())
                        }
                    };
                    entry.tags.insert(tag.clone(), change);
                }
            }
        }
    }
    out.overrides
        .retain(|_, o| o.disabled || !o.tags.is_empty());
    out.disabled_all = match providers {
        Some(p) => !p.iter().any(|p| prometheus(&p.name)),
        // weft's proxies always serve Prometheus metrics unless told otherwise.
        None => !defaults.is_empty() && !defaults.iter().any(|n| prometheus(n)),
    };
    out
}

#[cfg(test)]
mod tests;
