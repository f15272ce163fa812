//! `RequestAuthentication`: which end-user JWTs a workload accepts, where it finds them, and
//! what it passes on to the app.

use serde::{Deserialize, Serialize};

use super::authorization_policy::{PolicyTargetReference, check_attachment, warn_target_refs};
use crate::Duration;
use crate::networking::WorkloadSelector;
use crate::validate::{Validate, Validator, checks};

/// RequestAuthentication spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestAuthentication {
    /// Workloads the policy applies to; with no selector and no target, every workload in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A single targeted resource (superseded by `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Targeted resources (Gateways, Services, ServiceEntries); for waypoints and Gateway API gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// The token issuers accepted; a token must satisfy the rule of its issuer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_rules: Vec<JwtRule>,
}

/// Istio's `JWTRule`: one issuer, its keys, where its tokens are and what is passed on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtRule {
    /// The `iss` a token must carry to be checked by this rule.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// Accepted `aud` values; empty accepts any audience.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Where the issuer publishes its JSON Web Key Set (http or https).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jwks_uri: String,
    /// The JSON Web Key Set itself, as a JSON string; wins over `jwksUri`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jwks: String,
    /// Headers the token is read from; with no location at all, `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters the token is read from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    /// Cookies the token is read from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    /// Keep the token in the request sent to the app (it is removed by default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_original_token: bool,
    /// Claims copied into request headers for the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// A header that receives the verified payload, base64url-encoded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_payload_to_header: String,
    /// How long fetching `jwksUri` may take (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Istio's `JWTHeader`: a header carrying a token, after an optional prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtHeader {
    /// Header name.
    #[serde(default)]
    pub name: String,
    /// Text before the token (`Bearer `), removed before verification.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// Istio's `ClaimToHeader`: copy claim `claim` into header `header`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimToHeader {
    /// Header to set.
    #[serde(default)]
    pub header: String,
    /// Claim to copy (a top-level claim, or a nested one as `a.b`).
    #[serde(default)]
    pub claim: String,
}

impl Validate for RequestAuthentication {
    fn validate(&self, v: &mut Validator) {
        check_attachment(v, &self.selector, &self.target_ref, &self.target_refs);
        warn_target_refs(v, &self.target_ref, &self.target_refs);
        v.list("jwtRules", &self.jwt_rules);
    }
}

impl Validate for JwtRule {
    fn validate(&self, v: &mut Validator) {
        v.each("audiences", &self.audiences, |v, a| {
            if a.is_empty() {
                v.error("audience must be non-empty string");
            }
        });
        if self.issuer.is_empty() && self.jwks_uri.is_empty() {
            v.error("issuer or jwksUri must be non-empty string");
        }
        if !self.jwks_uri.is_empty() {
            if let Err(e) = check_jwks_uri(&self.jwks_uri) {
                v.error_at("jwksUri", e);
            }
        }
        if !self.jwks.is_empty() {
            if let Err(e) = serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(&self.jwks) {
                v.error_at("jwks", format!("jwks parse error: {e}"));
            }
        }
        v.each("fromHeaders", &self.from_headers, |v, h| {
            if h.name.is_empty() {
                v.error_at("name", "location header name must be non-empty string");
            } else {
                v.field("name", |v| checks::header_name(v, &h.name));
            }
        });
        v.each("fromParams", &self.from_params, |v, p| {
            if p.is_empty() {
                v.error("location query must be non-empty string");
            }
        });
        v.each("fromCookies", &self.from_cookies, |v, c| {
            if c.is_empty() {
                v.error("cookie name must be non-empty string");
            }
        });
        v.each(
            "outputClaimToHeaders",
            &self.output_claim_to_headers,
            |v, c| {
                if c.claim.is_empty() || c.header.is_empty() {
                    v.error("outputClaimToHeaders header and claim value must be non-empty string");
                } else {
                    v.field("header", |v| checks::header_name(v, &c.header));
                }
            },
        );
        if !self.output_payload_to_header.is_empty() {
            v.field("outputPayloadToHeader", |v| {
                checks::header_name(v, &self.output_payload_to_header)
            });
        }
        checks::duration_at_least(v, "timeout", &self.timeout, checks::ONE_MS);
    }
}

/// Istio's `ParseJwksURI`: an absolute http or https URL with a host.
pub fn check_jwks_uri(uri: &str) -> Result<(), String> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(format!(
            "jwksUri {uri:?} must be an absolute http or https URL"
        ));
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err(format!("URI scheme {scheme:?} is not supported"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_only = match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || host.starts_with('[') => {
            if !port.is_empty() && port.parse::<u16>().is_err() && !host.ends_with(']') {
                return Err(format!("jwksUri {uri:?} has an invalid port {port:?}"));
            }
            h
        }
        _ => host,
    };
    if host_only.is_empty() || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("jwksUri {uri:?} has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_errors, spec_issues};

    const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1","alg":"ES256"}]}"#;

    #[test]
    fn every_field_of_a_rule_is_read() {
        let yaml = format!(
            "selector: {{matchLabels: {{app: reviews}}}}\njwtRules:\n- issuer: https://issuer.example\n  audiences: [reviews]\n  jwksUri: https://issuer.example/jwks.json\n  jwks: '{JWKS}'\n  fromHeaders: [{{name: x-jwt, prefix: 'Token '}}]\n  fromParams: [access_token]\n  fromCookies: [session]\n  forwardOriginalToken: true\n  outputClaimToHeaders: [{{header: x-user, claim: sub}}]\n  outputPayloadToHeader: x-jwt-payload\n  timeout: 3s\n"
        );
        let issues = spec_issues::<RequestAuthentication>(&yaml).expect("reads");
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn mistakes_are_reported_as_istio_does() {
        assert_errors::<RequestAuthentication>(
            "jwtRules:\n- audiences: ['']\n  jwks: 'not json'\n  fromHeaders: [{name: ''}]\n  fromParams: ['']\n  fromCookies: ['']\n  outputClaimToHeaders: [{header: 'bad header', claim: sub}, {header: x}]\n  timeout: 0s\n- jwksUri: ftp://keys.example/jwks\n",
            &[
                "spec.jwtRules[0].audiences[0]: audience must be non-empty string",
                "spec.jwtRules[0]: issuer or jwksUri must be non-empty string",
                "spec.jwtRules[0].jwks: jwks parse error",
                "spec.jwtRules[0].fromHeaders[0].name: location header name must be non-empty string",
                "spec.jwtRules[0].fromParams[0]: location query must be non-empty string",
                "spec.jwtRules[0].fromCookies[0]: cookie name must be non-empty string",
                "spec.jwtRules[0].outputClaimToHeaders[0].header: invalid header name",
                "spec.jwtRules[0].outputClaimToHeaders[1]: outputClaimToHeaders header and claim value must be non-empty string",
                "spec.jwtRules[0].timeout: must be at least 1ms",
                "spec.jwtRules[1].jwksUri: URI scheme \"ftp\" is not supported",
            ],
        );
    }

    #[test]
    fn selector_and_target_refs_are_exclusive() {
        assert_errors::<RequestAuthentication>(
            "selector: {matchLabels: {app: a}}\ntargetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\njwtRules: [{issuer: x}]\n",
            &["spec: only one of selector, targetRef and targetRefs may be set"],
        );
    }

    #[test]
    fn a_rule_survives_the_json_the_control_plane_pushes() {
        let yaml = format!(
            "apiVersion: security.istio.io/v1beta1\nkind: RequestAuthentication\nmetadata: {{name: r, namespace: shop}}\nspec:\n  jwtRules:\n  - issuer: i\n    jwks: '{JWKS}'\n    fromHeaders: [{{name: x-jwt}}]\n    forwardOriginalToken: true\n    outputClaimToHeaders: [{{header: x-user, claim: sub}}]\n    timeout: 1500ms\n"
        );
        let loaded = crate::load_str("r.yaml", &yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let resource = loaded.resources[0].resource.clone();
        let json = serde_json::to_string(&resource).expect("json");
        let again = crate::load_str("r.json", &json);
        assert!(!again.has_errors(), "{json}: {:?}", again.diagnostics);
        assert_eq!(again.resources[0].resource, resource);
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = spec_issues::<RequestAuthentication>("jwtRules:\n- issuer: x\n  jwksURI: y\n")
            .expect_err("unknown field");
        assert!(err.contains("unknown field `jwksURI`"), "{err}");
    }
}
