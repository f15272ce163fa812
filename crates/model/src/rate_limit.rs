//! weft's RateLimit resources that apply to a proxy (scoped like AuthorizationPolicy:
//! root namespace without selector = mesh-wide, namespace without selector, selector in
//! the namespace), compiled for the token buckets the proxy keeps.

use std::time::Duration;

use serde::Serialize;
use weft_api::policy::RateLimit;
use weft_api::{Object, Resource};

use crate::authz::path::PathPattern;
use crate::translate::scope::{ProxyScope, ROOT_NAMESPACE};

/// What separates buckets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum BucketKey {
    /// One bucket for every request.
    All,
    /// One per source principal (mTLS identity; plaintext callers share one).
    SourcePrincipal,
    /// One per value of this header (lower case).
    Header(String),
}

/// One requests-counting condition: paths and methods (each empty = any).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitMatch {
    /// Path patterns.
    pub paths: Vec<PathPattern>,
    /// Methods.
    pub methods: Vec<String>,
}

/// One compiled limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limit {
    /// `namespace/name`.
    pub name: String,
    /// Identity of this version of the limit: a change starts fresh buckets.
    pub key: String,
    /// Requests per interval.
    pub requests: u32,
    /// The interval.
    #[serde(with = "millis")]
    pub interval: Duration,
    /// Extra requests at once.
    pub burst: u32,
    /// Bucket separation.
    pub bucket: BucketKey,
    /// Which requests count (empty: all).
    pub matches: Vec<LimitMatch>,
}

mod millis {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u128(d.as_millis())
    }
}

impl Limit {
    /// True when the request counts against this limit.
    pub fn applies_to(&self, method: &str, path: &str) -> bool {
        self.matches.is_empty()
            || self.matches.iter().any(|m| {
                (m.methods.is_empty() || m.methods.iter().any(|x| x == method))
                    && (m.paths.is_empty() || m.paths.iter().any(|p| p.matches(path)))
            })
    }
}

fn applies(r: &Object<RateLimit>, scope: &ProxyScope) -> bool {
    let ns = r.metadata.namespace();
    match r
        .spec
        .selector
        .as_ref()
        .filter(|s| !s.match_labels.is_empty())
    {
        None => ns == ROOT_NAMESPACE || ns == scope.namespace,
        Some(sel) => {
            (ns == scope.namespace || ns == ROOT_NAMESPACE)
                && crate::translate::scope::selects(&sel.match_labels, &scope.labels)
        }
    }
}

/// The limits of `resources` that apply to a proxy in `scope`, oldest first.
pub fn build(resources: &[Resource], scope: &ProxyScope) -> Vec<Limit> {
    let mut limits: Vec<&Object<RateLimit>> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::RateLimit(l) => Some(l),
            _ => None,
        })
        .filter(|l| applies(l, scope))
        .collect();
    limits.sort_by_key(|l| crate::translate::scope::age(l));
    limits
        .into_iter()
        .filter_map(|l| {
            let spec_limit = l.spec.limit.as_ref()?;
            let bucket = match &l.spec.bucket_by {
                Some(b) if b.source_principal => BucketKey::SourcePrincipal,
                Some(b) => b.header.as_ref().map_or(BucketKey::All, |h| {
                    BucketKey::Header(h.to_ascii_lowercase())
                }),
                None => BucketKey::All,
            };
            let name = format!("{}/{}", l.metadata.namespace(), l.metadata.name);
            let spec_text = serde_json::to_string(&l.spec).unwrap_or_default();
            Some(Limit {
                key: format!("{name}#{spec_text}"),
                name,
                requests: spec_limit.requests.max(1),
                interval: spec_limit.interval(),
                burst: spec_limit.burst,
                bucket,
                matches: l
                    .spec
                    .matches
                    .iter()
                    .map(|m| LimitMatch {
                        paths: m.paths.iter().map(|p| PathPattern::new(p)).collect(),
                        methods: m.methods.clone(),
                    })
                    .collect(),
            })
        })
        .collect()
}
