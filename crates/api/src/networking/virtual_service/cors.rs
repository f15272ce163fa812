//! The CORS policy of an HTTP rule.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::networking::common::StringMatch;
use crate::validate::{Validate, Validator, checks};

/// CORS policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Deprecated exact origins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Allowed origins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// Allowed methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Headers exposed to the browser.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long a preflight result may be cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Allow credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// What to do with preflights that match no origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// Handling of unmatched CORS preflight requests.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnmatchedPreflights {
    /// Same as FORWARD.
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    /// Forward them upstream.
    Forward,
    /// Answer them without CORS headers.
    Ignore,
}

impl Validate for CorsPolicy {
    fn validate(&self, v: &mut Validator) {
        if !self.allow_origin.is_empty() {
            v.warn_at("allowOrigin", "allowOrigin is deprecated; use allowOrigins");
        }
        v.list("allowOrigins", &self.allow_origins);
        v.each("allowMethods", &self.allow_methods, |v, m| {
            const METHODS: &[&str] = &[
                "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*",
            ];
            if !METHODS.contains(&m.as_str()) {
                v.error(format!("unknown HTTP method {m:?}"));
            }
        });
        v.each("allowHeaders", &self.allow_headers, |v, h| {
            if h != "*" {
                checks::header_name(v, h);
            }
        });
        v.each("exposeHeaders", &self.expose_headers, |v, h| {
            if h != "*" {
                checks::header_name(v, h);
            }
        });
        checks::duration_at_least(
            v,
            "maxAge",
            &self.max_age,
            std::time::Duration::from_secs(1),
        );
    }
}
