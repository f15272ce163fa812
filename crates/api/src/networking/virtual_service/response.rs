//! Rules that answer without forwarding: redirects and direct responses.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator, checks};

/// Largest `directResponse` body accepted.
pub const MAX_DIRECT_RESPONSE_BODY: usize = 1 << 20;

/// A redirect answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRedirect {
    /// Replace the whole path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replace the matched prefix (or the whole path for exact and regex matches); Istio 1.31+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
    /// Replace the authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Replace the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Derive the port instead of setting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<RedirectPortSelection>,
    /// Replace the scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Status code; absent means 301.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_code: Option<u32>,
}

/// How a redirect derives its port.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectPortSelection {
    /// 80 for http, 443 for https.
    #[default]
    FromProtocolDefault,
    /// The port of the request.
    FromRequestPort,
}

/// A direct answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpDirectResponse {
    /// Status code.
    #[serde(default)]
    pub status: u32,
    /// Body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// A direct-response body: text or base64 bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpBody {
    /// Text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// Base64-encoded body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

impl Validate for HttpRedirect {
    fn validate(&self, v: &mut Validator) {
        if self.uri.is_none()
            && self.prefix_rewrite.is_none()
            && self.authority.is_none()
            && self.port.is_none()
            && self.scheme.is_none()
            && self.derive_port.is_none()
        {
            v.error(
                "a redirect must set at least one of uri, prefixRewrite, authority, port, derivePort or scheme",
            );
        }
        if self.uri.is_some() && self.prefix_rewrite.is_some() {
            v.error("uri and prefixRewrite cannot both be set");
        }
        if let Some(code) = self.redirect_code {
            if !(300..=399).contains(&code) {
                v.error_at("redirectCode", format!("must be in 300..399 (got {code})"));
            }
        }
        if let Some(scheme) = &self.scheme {
            if scheme != "http" && scheme != "https" {
                v.error_at("scheme", format!("must be http or https (got {scheme:?})"));
            }
        }
        if let Some(p) = self.port {
            checks::port_number(v, "port", p);
            if self.derive_port.is_some() {
                v.error("port and derivePort cannot both be set");
            }
        }
    }
}

impl Validate for HttpDirectResponse {
    fn validate(&self, v: &mut Validator) {
        if !(200..=600).contains(&self.status) {
            v.error_at(
                "status",
                format!("must be in 200..600 (got {})", self.status),
            );
        }
        if let Some(body) = &self.body {
            v.field("body", |v| {
                let len = match (&body.string, &body.bytes) {
                    (Some(_), Some(_)) => {
                        v.error("only one of string or bytes may be set");
                        0
                    }
                    (Some(s), None) => s.len(),
                    (None, Some(b)) => b.len() / 4 * 3,
                    (None, None) => 0,
                };
                if len > MAX_DIRECT_RESPONSE_BODY {
                    v.error(format!(
                        "body is {len} bytes; at most {MAX_DIRECT_RESPONSE_BODY} are allowed"
                    ));
                } else if len > 100 * 1024 {
                    v.warn(format!(
                        "body is {len} bytes; large direct responses use memory in every proxy"
                    ));
                }
                if let Some(b) = &body.bytes {
                    if !is_base64(b) {
                        v.error_at("bytes", "must be base64-encoded");
                    }
                }
            });
        }
    }
}

fn is_base64(s: &str) -> bool {
    let s = s.trim_end_matches('=');
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}
