//! HTTP rules: their matches, weighted destinations, mirrors and delegation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    CorsPolicy, Headers, HttpDirectResponse, HttpFaultInjection, HttpRedirect, HttpRetry,
    HttpRewrite, gateway_name, weights,
};
use crate::duration::Duration;
use crate::networking::common::{Destination, Percent, StringMatch};
use crate::validate::{Validate, Validator, checks};

/// One HTTP rule: matches and what to do with matching requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Rule name, used in logs and stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions, OR-ed; none means "every request".
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    /// Answer with a redirect instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<HttpRedirect>,
    /// Answer directly instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<HttpDirectResponse>,
    /// Hand the rest of routing to another VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Delegate>,
    /// Rewrite the path or authority before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Overall timeout; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retry policy; absent means Istio's default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// A destination to mirror requests to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Share of requests mirrored to `mirror`; absent means 100 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Deprecated integer form of `mirrorPercentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<u32>,
    /// Several mirror destinations (not together with `mirror`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// CORS policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Header manipulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// The conditions of one match entry, AND-ed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Match name, prefixed to the rule name in logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URI path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Scheme match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// Method match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Authority (Host) match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Header matches; `{}` means present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Client workload labels (evaluated when configuring each proxy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Query parameter matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Case-insensitive `exact`/`prefix` URI matching.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_uri_case: bool,
    /// Headers that must not match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Client namespace (evaluated when configuring each proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Prefix of per-route statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
}

/// A weighted destination of an HTTP rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where to send the request.
    #[serde(default)]
    pub destination: Destination,
    /// Relative weight; 0 (or absent) drops the destination when there are several.
    #[serde(default)]
    pub weight: i32,
    /// Header manipulation for this destination only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// Delegation to another VirtualService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delegate {
    /// Delegate name.
    #[serde(default)]
    pub name: String,
    /// Delegate namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One mirror destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpMirrorPolicy {
    /// Where copies go.
    #[serde(default)]
    pub destination: Destination,
    /// Share mirrored; absent means 100 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

impl HttpMatchRequest {
    /// True when this entry matches every request (no conditions, or only `uri: {prefix: /}`).
    pub fn is_catch_all(&self) -> bool {
        let only_root_prefix = match &self.uri {
            None => true,
            Some(m) => m.prefix.as_deref() == Some("/") && m.exact.is_none() && m.regex.is_none(),
        };
        only_root_prefix
            && self.scheme.is_none()
            && self.method.is_none()
            && self.authority.is_none()
            && self.headers.is_empty()
            && self.port.is_none()
            && self.source_labels.is_empty()
            && self.gateways.is_empty()
            && self.query_params.is_empty()
            && self.without_headers.is_empty()
            && self.source_namespace.is_none()
    }
}

impl HttpRoute {
    /// True when the rule matches every request.
    pub fn is_catch_all(&self) -> bool {
        self.matches.is_empty() || self.matches.iter().any(HttpMatchRequest::is_catch_all)
    }
}

impl Validate for HttpRoute {
    fn validate(&self, v: &mut Validator) {
        let actions = [
            !self.route.is_empty(),
            self.redirect.is_some(),
            self.direct_response.is_some(),
            self.delegate.is_some(),
        ];
        match actions.iter().filter(|a| **a).count() {
            0 => v.error("a rule needs one of route, redirect, directResponse or delegate"),
            1 => {}
            _ => v.error("a rule may have only one of route, redirect, directResponse or delegate"),
        }
        if let Some(d) = &self.delegate {
            v.field("delegate", |v| {
                if d.name.is_empty() {
                    v.error_at("name", "the delegate VirtualService's name is required");
                } else if !checks::is_dns1123_subdomain(&d.name) {
                    v.error_at("name", format!("{:?} is not a valid name", d.name));
                }
                if let Some(ns) = &d.namespace {
                    v.field("namespace", |v| checks::dns_label(v, "namespace", ns));
                }
            });
        }
        if self.rewrite.is_some() && self.redirect.is_some() {
            v.error_at("rewrite", "rewrite cannot be combined with redirect");
        }
        v.list("match", &self.matches);
        v.each("route", &self.route, |v, d| {
            v.field("destination", |v| d.destination.validate(v));
            v.optional("headers", &d.headers);
        });
        weights(v, self.route.iter().map(|d| d.weight));
        v.optional("redirect", &self.redirect);
        v.optional("directResponse", &self.direct_response);
        v.optional("rewrite", &self.rewrite);
        checks::duration_at_least(v, "timeout", &self.timeout, checks::ONE_MS);
        v.optional("retries", &self.retries);
        v.optional("fault", &self.fault);
        v.optional("corsPolicy", &self.cors_policy);
        v.optional("headers", &self.headers);
        self.validate_mirrors(v);
        let sets_host = |h: &Option<Headers>| {
            h.as_ref()
                .and_then(|h| h.request.as_ref())
                .is_some_and(|r| r.set.keys().any(|k| k.eq_ignore_ascii_case("host")))
        };
        let rewrites_authority = self.rewrite.as_ref().is_some_and(|r| r.authority.is_some());
        if rewrites_authority && sets_host(&self.headers) {
            v.error("the authority may be set only once: use rewrite.authority or headers.request.set.host, not both");
        }
    }
}

impl HttpRoute {
    fn validate_mirrors(&self, v: &mut Validator) {
        if self.mirror.is_some() && !self.mirrors.is_empty() {
            v.error("mirror and mirrors cannot both be set");
        }
        v.optional("mirror", &self.mirror);
        v.optional("mirrorPercentage", &self.mirror_percentage);
        if let Some(p) = self.mirror_percent {
            v.field("mirrorPercent", |v| {
                v.warn("mirrorPercent is deprecated; use mirrorPercentage: {value: N}");
                if p > 100 {
                    v.error(format!("must be in 0..100 (got {p})"));
                }
            });
            if self.mirror_percentage.is_some() {
                v.error_at(
                    "mirrorPercent",
                    "mirrorPercent and mirrorPercentage cannot both be set",
                );
            }
        }
        if self.mirror.is_none()
            && (self.mirror_percentage.is_some() || self.mirror_percent.is_some())
        {
            v.warn("a mirror percentage without a mirror destination has no effect");
        }
        v.each("mirrors", &self.mirrors, |v, m| {
            v.field("destination", |v| m.destination.validate(v));
            v.optional("percentage", &m.percentage);
        });
    }
}

impl Validate for HttpMatchRequest {
    fn validate(&self, v: &mut Validator) {
        for (name, m) in [
            ("uri", &self.uri),
            ("scheme", &self.scheme),
            ("method", &self.method),
            ("authority", &self.authority),
        ] {
            v.optional(name, m);
        }
        header_matches(v, "headers", &self.headers);
        header_matches(v, "withoutHeaders", &self.without_headers);
        v.field("queryParams", |v| {
            for (name, m) in &self.query_params {
                v.field(name, |v| m.validate(v));
            }
        });
        if let Some(p) = self.port {
            checks::port_number(v, "port", p);
        }
        checks::labels(v, "sourceLabels", &self.source_labels);
        v.each("gateways", &self.gateways, |v, gw| gateway_name(v, gw));
        if let Some(ns) = &self.source_namespace {
            v.field("sourceNamespace", |v| checks::dns_label(v, "namespace", ns));
        }
    }
}

fn header_matches(v: &mut Validator, field: &str, headers: &BTreeMap<String, StringMatch>) {
    v.field(field, |v| {
        for (name, m) in headers {
            v.field(name, |v| {
                if super::is_routing_claim(name) {
                    if super::routing_claim(name).is_none() {
                        v.error(format!("invalid JWT claim routing key {name:?}: use @request.auth.claims.NAME, .A.B or [A][B]"));
                    }
                    m.validate(v);
                    return;
                }
                checks::header_name(v, name);
                if matches!(name.as_str(), "uri" | "scheme" | "method" | "authority") {
                    v.warn(format!("the header key {name:?} is ignored by Istio; use the {name} match field instead"));
                }
                m.validate(v);
            });
        }
    });
}
