//! `RateLimit` (`policy.weft.dev/v1alpha1`): a local rate limit, enforced by the server
//! side (the selected workloads' sidecars, or a gateway) with a token bucket, as Envoy's
//! local rate limit filter does. Istio configures that filter only through EnvoyFilter;
//! this resource says the same in the shape of Istio's policies.

use serde::{Deserialize, Serialize};

use crate::networking::WorkloadSelector;
use crate::validate::{Validate, Validator, checks};

/// RateLimit spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Workloads that enforce the limit (on requests they receive); unset: every workload
    /// of the namespace (of the mesh, in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// The limit. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// One bucket per value of this attribute instead of one for all requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<BucketBy>,
    /// Which requests count: any entry matching (OR); empty: every request.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RequestMatch>,
}

/// `requests` per `interval`, with `burst` more allowed at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    /// Requests allowed per interval (the refill).
    #[serde(default)]
    pub requests: u32,
    /// The interval, a duration such as `1s` or `1m` (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Extra requests a full bucket admits at once (bucket size = requests + burst).
    #[serde(default)]
    pub burst: u32,
}

/// What separates buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketBy {
    /// One bucket per source identity (the mTLS principal; plaintext callers share one).
    #[serde(default)]
    pub source_principal: bool,
    /// One bucket per value of this request header (absent: one shared bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// Requests a limit counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestMatch {
    /// Paths, as AuthorizationPolicy writes them (`/api/*`, `*.js`, `/a/{*}/b`), matched
    /// against the normalized path; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Methods; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

impl Limit {
    /// The interval (default one second).
    pub fn interval(&self) -> std::time::Duration {
        self.interval
            .as_deref()
            .and_then(|i| crate::duration::parse_duration(i).ok())
            .unwrap_or(std::time::Duration::from_secs(1))
    }
}

impl Validate for RateLimit {
    fn validate(&self, v: &mut Validator) {
        if let Some(selector) = &self.selector {
            v.field("selector", |v| selector.validate(v));
        }
        match &self.limit {
            None => v.error_at("limit", "limit is required (requests per interval)"),
            Some(limit) => v.field("limit", |v| {
                if limit.requests == 0 {
                    v.error_at("requests", "requests must be at least 1");
                }
                if let Some(interval) = &limit.interval {
                    match crate::duration::parse_duration(interval) {
                        Err(e) => v.error_at("interval", e),
                        Ok(d) if d < std::time::Duration::from_millis(1) => {
                            v.error_at("interval", "interval must be at least 1ms");
                        }
                        Ok(d) if d > std::time::Duration::from_secs(86_400) => {
                            v.error_at("interval", "interval must be at most 24h");
                        }
                        Ok(_) => {}
                    }
                }
            }),
        }
        if let Some(by) = &self.bucket_by {
            v.field("bucketBy", |v| match (&by.header, by.source_principal) {
                (Some(_), true) => v.error("set one of sourcePrincipal and header"),
                (None, false) => v.error("set sourcePrincipal: true or a header"),
                (Some(h), false) => v.field("header", |v| checks::header_name(v, h)),
                (None, true) => {}
            });
        }
        v.each("match", &self.matches, |v, m| {
            if m.paths.is_empty() && m.methods.is_empty() {
                v.error("a match entry needs paths or methods");
            }
            v.each("paths", &m.paths, |v, p| {
                if p.is_empty() {
                    v.error("empty path");
                }
            });
            v.each("methods", &m.methods, |v, method| {
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                    v.error(format!("method {method:?} must be upper-case, like GET"));
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_errors_include, errors, spec_issues};

    #[test]
    fn a_limit_is_checked_field_by_field() {
        let ok = spec_issues::<RateLimit>(
            "selector: {matchLabels: {app: reviews}}\nlimit: {requests: 10, interval: 1s, burst: 5}\nbucketBy: {header: x-user}\nmatch: [{paths: [\"/api/*\"], methods: [GET]}]\n",
        )
        .expect("reads");
        assert!(ok.is_empty(), "{ok:?}");
        assert_errors_include::<RateLimit>(
            "limit: {requests: 0, interval: soon}\nbucketBy: {sourcePrincipal: true, header: x}\nmatch: [{}, {methods: [get]}]\n",
            &[
                "spec.limit.requests: requests must be at least 1",
                "spec.limit.interval: invalid duration",
                "spec.bucketBy: set one of sourcePrincipal and header",
                "spec.match[0]: a match entry needs paths or methods",
                "spec.match[1].methods[0]: method \"get\" must be upper-case",
            ],
        );
        let missing = spec_issues::<RateLimit>("{}").expect("reads");
        assert_eq!(
            errors(&missing),
            ["spec.limit: limit is required (requests per interval)"]
        );
    }
}
