//! What a rule changes on the way through: header operations and path/authority rewrites.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator, checks};

/// Request and response header operations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Headers {
    /// Operations on the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Operations on the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Set, add and remove headers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOperations {
    /// Overwrite these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Append these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// Path and authority rewrite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRewrite {
    /// Replace the matched prefix (or the whole path for exact/regex matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replace the authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Regex-based path rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// A regex and its replacement (`\1` style groups).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegexRewrite {
    /// RE2 pattern.
    #[serde(default, rename = "match")]
    pub pattern: String,
    /// Replacement.
    #[serde(default)]
    pub rewrite: String,
}

impl Validate for Headers {
    fn validate(&self, v: &mut Validator) {
        v.optional("request", &self.request);
        v.optional("response", &self.response);
    }
}

impl Validate for HeaderOperations {
    fn validate(&self, v: &mut Validator) {
        for (op, map) in [("set", &self.set), ("add", &self.add)] {
            v.field(op, |v| {
                for (name, value) in map {
                    v.field(name, |v| {
                        header_operation_name(v, name);
                        checks::header_value(v, value);
                    });
                }
            });
        }
        v.each("remove", &self.remove, |v, name| {
            header_operation_name(v, name)
        });
    }
}

fn header_operation_name(v: &mut Validator, name: &str) {
    if name.starts_with(':') {
        v.error(format!("pseudo-header {name:?} cannot be changed"));
    } else {
        checks::header_name(v, name);
    }
}

impl Validate for HttpRewrite {
    fn validate(&self, v: &mut Validator) {
        if self.uri.is_some() && self.uri_regex_rewrite.is_some() {
            v.error("uri and uriRegexRewrite cannot both be set");
        }
        if self.uri.is_none() && self.uri_regex_rewrite.is_none() && self.authority.is_none() {
            v.error("a rewrite must set at least one of uri, uriRegexRewrite or authority");
        }
        if let Some(r) = &self.uri_regex_rewrite {
            v.field("uriRegexRewrite", |v| {
                v.field("match", |v| checks::regex(v, &r.pattern))
            });
        }
    }
}
