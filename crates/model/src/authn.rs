//! RequestAuthentication, as Istio's sidecars and gateways apply it (Envoy's `jwt_authn`
//! filter with the requirement Istio generates): the JWT rules that apply to the proxy are
//! compiled once per configuration; each request is then [`Authn::authenticate`]d, a pure
//! function of the request's token locations, the keys and the time.
//!
//! - No token in any rule's locations: the request passes unauthenticated and
//!   AuthorizationPolicy decides (`requestPrincipals: ["*"]` denies it).
//! - A token that fails (malformed, `alg` none or unsupported, unknown issuer, no key for its
//!   `kid`/`alg`, bad signature, expired or not yet valid beyond [`CLOCK_SKEW`], audience
//!   not allowed): the request is refused with Envoy's status and message.
//! - A token that verifies: the request principal is `iss/sub`, and the claims are what
//!   `request.auth.*` conditions read.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;
use serde_json::{Map, Value};
use weft_api::security::request_authentication::{JwtRule, RequestAuthentication};
use weft_api::{Object, Resource};

use crate::translate::scope::{ProxyScope, ROOT_NAMESPACE};

#[cfg(test)]
mod tests;

/// Envoy's default clock skew for `exp` and `nbf`, which Istio keeps.
pub const CLOCK_SKEW: u64 = 60;

/// How long fetching a `jwksUri` may take when the rule sets no `timeout` (Istio's default).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The query parameter Envoy reads a token from when a rule names no location.
pub const DEFAULT_PARAM: &str = "access_token";

/// Where a rule's keys come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum KeySource {
    /// `jwks`, parsed once.
    Inline(Arc<Keys>),
    /// `jwksUri`, fetched by the proxy (file mode: the control plane pushes keys inline).
    Remote {
        /// The URL.
        uri: String,
        /// How long one fetch may take.
        timeout: Duration,
    },
}

/// A JSON Web Key Set, with the keys weft cannot use left out.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Keys {
    keys: Vec<Jwk>,
}

impl Keys {
    /// Reads a JWKS document; keys of unknown types are skipped, as Envoy skips them, but
    /// a document with no usable key is refused.
    pub fn parse(text: &str) -> Result<Keys, String> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| format!("Jwks is an invalid JSON: {e}"))?;
        let Some(list) = doc.get("keys") else {
            return Err("Jwks does not have [keys] field".into());
        };
        let Some(list) = list.as_array() else {
            return Err("[keys] in Jwks is not an array".into());
        };
        let keys: Vec<Jwk> = list
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter(|k| DecodingKey::from_jwk(k).is_ok())
            .collect();
        if keys.is_empty() {
            return Err("Jwks doesn't have any valid public key".into());
        }
        Ok(Keys { keys })
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where a token is looked for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Location {
    /// A header (lower-case name), after `prefix`.
    Header {
        /// Header name.
        name: String,
        /// Text before the token.
        prefix: String,
    },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

impl Location {
    fn describe(&self) -> String {
        match self {
            Location::Header { name, .. } => format!("header {name}"),
            Location::Param(p) => format!("query parameter {p}"),
            Location::Cookie(c) => format!("cookie {c}"),
        }
    }
}

/// One compiled `jwtRules` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provider {
    /// `namespace/name` of its RequestAuthentication.
    pub policy: String,
    /// Required `iss`; empty accepts any issuer.
    pub issuer: String,
    /// Accepted audiences; empty accepts any.
    pub audiences: Vec<String>,
    /// Its keys.
    pub keys: KeySource,
    /// Where its tokens are.
    pub locations: Vec<Location>,
    /// Keep the token header in the request sent on.
    pub forward_original_token: bool,
    /// Header receiving the payload (base64url).
    pub output_payload_to_header: Option<String>,
    /// (header, claim) pairs.
    pub output_claim_to_headers: Vec<(String, String)>,
}

/// The RequestAuthentication rules that apply to one proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Authn {
    /// The rules, oldest policy first.
    pub providers: Vec<Provider>,
}

/// What a verified token says, as `request.auth.*` reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestAuth {
    /// `iss/sub`.
    pub principal: String,
    /// `aud` (a string or a list).
    pub audiences: Vec<String>,
    /// `azp`.
    pub presenter: Option<String>,
    /// Every claim of the payload.
    pub claims: Map<String, Value>,
}

impl RequestAuth {
    /// The values of claim path `path` (`[groups]`, `[a][b]`): a string, a number or a bool
    /// as text, and each string of a list.
    pub fn claim(&self, path: &[&str]) -> Vec<String> {
        let Some((first, rest)) = path.split_first() else {
            return Vec::new();
        };
        let mut value = self.claims.get(*first);
        for key in rest {
            value = value.and_then(|v| v.get(*key));
        }
        match value {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Number(n)) => vec![n.to_string()],
            Some(Value::Bool(b)) => vec![b.to_string()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Why a token was refused; the messages are Envoy's, which clients of Istio see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts.
    #[error("Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections")]
    BadFormat,
    /// The header is not base64url.
    #[error("Jwt header is an invalid Base64url encoded")]
    HeaderBase64,
    /// The header is not a JSON object.
    #[error("Jwt header is an invalid JSON")]
    HeaderJson,
    /// No `alg`, or not a string.
    #[error("Jwt header [alg] field is required and must be a string")]
    HeaderAlg,
    /// `alg` is `none` or one weft does not verify.
    #[error("Jwt header [alg] is not supported")]
    UnsupportedAlg,
    /// `kid` is not a string.
    #[error("Jwt header [kid] field is not a string")]
    HeaderKid,
    /// The payload is not base64url.
    #[error("Jwt payload is an invalid Base64url encoded")]
    PayloadBase64,
    /// The payload is not a JSON object.
    #[error("Jwt payload is an invalid JSON")]
    PayloadJson,
    /// A registered claim of the wrong type.
    #[error("Jwt payload [{claim}] field is not {kind}", claim = .0, kind = claim_type(.0))]
    ClaimType(&'static str),
    /// The signature is not base64url.
    #[error("Jwt signature is an invalid Base64url encoded")]
    SignatureBase64,
    /// No rule names the token's issuer.
    #[error("Jwt issuer is not configured")]
    UnknownIssuer,
    /// `aud` is not one the rule accepts.
    #[error("Audiences in Jwt are not allowed")]
    AudienceNotAllowed,
    /// No key matches the token's `kid` and `alg`.
    #[error("Jwks doesn't have key to match kid or alg from Jwt")]
    NoMatchingKey,
    /// The signature does not verify with any candidate key.
    #[error("Jwt verification fails")]
    VerificationFails,
    /// `exp` is past.
    #[error("Jwt is expired")]
    Expired,
    /// `nbf` is ahead.
    #[error("Jwt not yet valid")]
    NotYetValid,
    /// The keys of a `jwksUri` could not be fetched.
    #[error("Jwks remote fetch is failed")]
    JwksFetchFailed,
}

/// What Envoy says a registered claim must be.
fn claim_type(claim: &str) -> &'static str {
    match claim {
        "exp" | "nbf" | "iat" => "an integer",
        "aud" => "a string or string list",
        _ => "a string",
    }
}

impl JwtError {
    /// The HTTP status Envoy answers with: 403 for an audience not allowed, else 401.
    pub fn status(&self) -> u16 {
        match self {
            JwtError::AudienceNotAllowed => 403,
            _ => 401,
        }
    }
}

/// A token found in a request, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundToken {
    /// Where it was.
    pub location: Location,
    /// The token text.
    pub token: String,
}

/// What a request offers as token locations.
pub trait TokenSource {
    /// The value of header `name` (lower-case).
    fn header(&self, name: &str) -> Option<String>;
    /// The raw query string, if any.
    fn query(&self) -> Option<&str>;
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// No rule applies, or no token was found: AuthorizationPolicy decides without one.
    Unauthenticated,
    /// A token verified.
    Authenticated(Authenticated),
    /// A token was found and refused.
    Refused {
        /// Why.
        error: JwtError,
        /// Where the token was.
        location: String,
    },
}

/// A verified token and what to do with the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated {
    /// The identity and claims.
    pub auth: RequestAuth,
    /// Header locations to remove before the app (`forwardOriginalToken: false`).
    pub remove_headers: Vec<String>,
    /// Headers to set for the app: payload and claim outputs.
    pub set_headers: Vec<(String, String)>,
}

/// The RequestAuthentications of `resources` that apply to a proxy in `scope`.
pub fn build(resources: &[Resource], scope: &ProxyScope) -> Authn {
    let mut policies: Vec<&Object<RequestAuthentication>> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::RequestAuthentication(p) => Some(p),
            _ => None,
        })
        .filter(|p| applies(p, scope))
        .collect();
    policies.sort_by_key(|p| crate::translate::scope::age(p));
    let providers = policies
        .into_iter()
        .flat_map(|p| {
            let name = format!("{}/{}", p.metadata.namespace(), p.metadata.name);
            p.spec
                .jwt_rules
                .iter()
                .filter_map(move |r| provider(&name, r))
        })
        .collect();
    Authn { providers }
}

/// Istio's scoping, as for AuthorizationPolicy: the root namespace without selector is
/// mesh-wide, a namespace without selector its namespace, a selector its workloads.
fn applies(p: &Object<RequestAuthentication>, scope: &ProxyScope) -> bool {
    if p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty() {
        return false;
    }
    let ns = p.metadata.namespace();
    if ns != ROOT_NAMESPACE && ns != scope.namespace {
        return false;
    }
    match &p.spec.selector {
        Some(sel) if !sel.match_labels.is_empty() => {
            ns == scope.namespace
                && crate::translate::scope::selects(&sel.match_labels, &scope.labels)
        }
        _ => true,
    }
}

fn provider(policy: &str, r: &JwtRule) -> Option<Provider> {
    let keys = if !r.jwks.is_empty() {
        // Refused at validation when unreadable; a rule without keys is never applied.
        KeySource::Inline(Arc::new(Keys::parse(&r.jwks).ok()?))
    } else if !r.jwks_uri.is_empty() {
        KeySource::Remote {
            uri: r.jwks_uri.clone(),
            timeout: r.timeout.map_or(DEFAULT_FETCH_TIMEOUT, |t| t.get()),
        }
    } else {
        // Istio's istiod would look the keys up through the issuer's OpenID discovery;
        // weft does not: the rule's tokens fail as keyless.
        KeySource::Inline(Arc::new(Keys::default()))
    };
    let mut locations: Vec<Location> = r
        .from_headers
        .iter()
        .map(|h| Location::Header {
            name: h.name.to_ascii_lowercase(),
            prefix: h.prefix.clone(),
        })
        .chain(r.from_params.iter().cloned().map(Location::Param))
        .chain(r.from_cookies.iter().cloned().map(Location::Cookie))
        .collect();
    if locations.is_empty() {
        locations = vec![
            Location::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            },
            Location::Param(DEFAULT_PARAM.into()),
        ];
    }
    Some(Provider {
        policy: policy.to_string(),
        issuer: r.issuer.clone(),
        audiences: r.audiences.clone(),
        keys,
        locations,
        forward_original_token: r.forward_original_token,
        output_payload_to_header: (!r.output_payload_to_header.is_empty())
            .then(|| r.output_payload_to_header.to_ascii_lowercase()),
        output_claim_to_headers: r
            .output_claim_to_headers
            .iter()
            .map(|c| (c.header.to_ascii_lowercase(), c.claim.clone()))
            .collect(),
    })
}

impl Authn {
    /// True when no rule applies.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// Headers an authenticated request gets from the rules (payload and claim outputs):
    /// a client's own copies are removed before anything else, so they cannot be forged.
    pub fn output_headers(&self) -> BTreeSet<&str> {
        self.providers
            .iter()
            .flat_map(|p| {
                p.output_payload_to_header
                    .iter()
                    .map(String::as_str)
                    .chain(p.output_claim_to_headers.iter().map(|(h, _)| h.as_str()))
            })
            .collect()
    }

    /// Every token in the rules' locations, each location once.
    pub fn find_tokens(&self, req: &dyn TokenSource) -> Vec<FoundToken> {
        let locations: BTreeSet<&Location> =
            self.providers.iter().flat_map(|p| &p.locations).collect();
        locations
            .into_iter()
            .filter_map(|l| {
                token_at(l, req).map(|token| FoundToken {
                    location: l.clone(),
                    token,
                })
            })
            .collect()
    }

    /// Istio's requirement, `requires_any` of every rule or `allow_missing`: a request
    /// without a token passes; otherwise a rule whose tokens all verify authenticates it,
    /// and when none does the most telling error refuses it. `keys` gives a remote rule's
    /// keys (`None`: not fetched); `now` is in seconds since the epoch.
    pub fn authenticate(
        &self,
        req: &dyn TokenSource,
        keys: &dyn Fn(&str) -> Option<Arc<Keys>>,
        now: u64,
    ) -> Outcome {
        let found = self.find_tokens(req);
        if found.is_empty() {
            return Outcome::Unauthenticated;
        }
        let mut refusal: Option<(u8, JwtError, String)> = None;
        for p in &self.providers {
            let mine: Vec<&FoundToken> = found
                .iter()
                .filter(|f| p.locations.contains(&f.location))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut verified = None;
            let mut failed = None;
            for f in &mine {
                match verify_with(p, &f.token, keys, now) {
                    Ok(auth) => {
                        verified.get_or_insert((auth, f));
                    }
                    Err(e) => {
                        failed = Some((e, f.location.describe()));
                        break;
                    }
                }
            }
            match (failed, verified) {
                (None, Some((auth, f))) => return Outcome::Authenticated(outputs(p, auth, f)),
                (Some((error, location)), _) => {
                    // An error from the token's own issuer says more than "issuer not configured".
                    let rank = if error == JwtError::UnknownIssuer {
                        0
                    } else {
                        1
                    };
                    if refusal.as_ref().is_none_or(|(r, _, _)| rank > *r) {
                        refusal = Some((rank, error, location));
                    }
                }
                (None, None) => {}
            }
        }
        match refusal {
            Some((_, error, location)) => Outcome::Refused { error, location },
            None => Outcome::Unauthenticated,
        }
    }
}

/// The token at `location`, with the prefix removed; a header whose value does not start
/// with the prefix holds no token for it.
fn token_at(location: &Location, req: &dyn TokenSource) -> Option<String> {
    match location {
        Location::Header { name, prefix } => {
            let value = req.header(name)?;
            let value = value.trim();
            let token = if prefix.is_empty() {
                value
            } else if value.len() >= prefix.len()
                && value.is_char_boundary(prefix.len())
                && value[..prefix.len()].eq_ignore_ascii_case(prefix)
            {
                &value[prefix.len()..]
            } else {
                return None;
            };
            let token = token.trim();
            (!token.is_empty()).then(|| token.to_string())
        }
        Location::Param(name) => req.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name && !v.is_empty()).then(|| percent_decode(v))
        }),
        Location::Cookie(name) => {
            let cookies = req.header("cookie")?;
            cookies.split(';').find_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == name && !v.is_empty()).then(|| v.trim_matches('"').to_string())
            })
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn outputs(p: &Provider, auth: RequestAuth, f: &FoundToken) -> Authenticated {
    let mut set_headers = Vec::new();
    if let Some(header) = &p.output_payload_to_header {
        // Envoy forwards the payload as it came, base64url without padding.
        if let Some(payload) = f.token.split('.').nth(1) {
            set_headers.push((header.clone(), payload.trim_end_matches('=').to_string()));
        }
    }
    for (header, claim) in &p.output_claim_to_headers {
        let path: Vec<&str> = claim.split('.').collect();
        let values = auth.claim(&path);
        if !values.is_empty() {
            set_headers.push((header.clone(), values.join(",")));
        }
    }
    let remove_headers = match &f.location {
        Location::Header { name, .. } if !p.forward_original_token => vec![name.clone()],
        _ => Vec::new(),
    };
    Authenticated {
        auth,
        remove_headers,
        set_headers,
    }
}

fn b64(part: &str) -> Option<Vec<u8>> {
    let part = part.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .or_else(|| URL_SAFE.decode(part).ok())
}

/// The `alg` values weft verifies (`jsonwebtoken` over ring): no `none`, no ES512.
fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        _ => return None,
    })
}

/// Whether `key` may verify `alg` (Envoy's kty/crv/alg checks), so that no key is handed
/// to an algorithm of another family.
fn key_fits(key: &Jwk, alg: Algorithm, alg_name: &str) -> bool {
    let family = match (&key.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        (
            AlgorithmParameters::OctetKey(_),
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512,
        ) => true,
        _ => false,
    };
    let key_alg = key
        .common
        .key_algorithm
        .and_then(|a| serde_json::to_value(a).ok())
        .and_then(|v| v.as_str().map(str::to_string));
    family && key_alg.is_none_or(|a| a == alg_name)
}

/// Verifies `token` against rule `p`.
fn verify_with(
    p: &Provider,
    token: &str,
    keys: &dyn Fn(&str) -> Option<Arc<Keys>>,
    now: u64,
) -> Result<RequestAuth, JwtError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(JwtError::BadFormat);
    };
    let header: Value = serde_json::from_slice(&b64(header_b64).ok_or(JwtError::HeaderBase64)?)
        .map_err(|_| JwtError::HeaderJson)?;
    let header = header.as_object().ok_or(JwtError::HeaderJson)?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError::HeaderAlg)?;
    let alg = algorithm(alg_name).ok_or(JwtError::UnsupportedAlg)?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(JwtError::HeaderKid),
    };
    let payload: Value = serde_json::from_slice(&b64(payload_b64).ok_or(JwtError::PayloadBase64)?)
        .map_err(|_| JwtError::PayloadJson)?;
    let Value::Object(claims) = payload else {
        return Err(JwtError::PayloadJson);
    };
    if b64(signature_b64).is_none() {
        return Err(JwtError::SignatureBase64);
    }
    let text = |name: &'static str| match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwtError::ClaimType(name)),
    };
    let time = |name: &'static str| match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or(JwtError::ClaimType(name)),
        Some(_) => Err(JwtError::ClaimType(name)),
    };
    let iss = text("iss")?.unwrap_or_default();
    let sub = text("sub")?.unwrap_or_default();
    let presenter = text("azp")?;
    let audiences = match claims.get("aud") {
        None => Vec::new(),
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(JwtError::ClaimType("aud"))?,
        Some(_) => return Err(JwtError::ClaimType("aud")),
    };
    let exp = time("exp")?;
    let nbf = time("nbf")?;

    if !p.issuer.is_empty() && p.issuer != iss {
        return Err(JwtError::UnknownIssuer);
    }
    if !p.audiences.is_empty()
        && !audiences
            .iter()
            .any(|a| p.audiences.iter().any(|want| same_audience(a, want)))
    {
        return Err(JwtError::AudienceNotAllowed);
    }
    if exp.is_some_and(|exp| now > exp.saturating_add(CLOCK_SKEW)) {
        return Err(JwtError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(CLOCK_SKEW)) {
        return Err(JwtError::NotYetValid);
    }
    let keys = match &p.keys {
        KeySource::Inline(k) => k.clone(),
        KeySource::Remote { uri, .. } => keys(uri).ok_or(JwtError::JwksFetchFailed)?,
    };
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| match (kid, &k.common.key_id) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .filter(|k| key_fits(k, alg, alg_name))
        .collect();
    if candidates.is_empty() {
        return Err(JwtError::NoMatchingKey);
    }
    let message = format!("{header_b64}.{payload_b64}");
    let signature = signature_b64.trim_end_matches('=');
    let verified = candidates.iter().any(|k| {
        DecodingKey::from_jwk(k).is_ok_and(|key| {
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, alg).unwrap_or(false)
        })
    });
    if !verified {
        return Err(JwtError::VerificationFails);
    }
    Ok(RequestAuth {
        principal: format!("{iss}/{sub}"),
        audiences,
        presenter,
        claims,
    })
}

/// Envoy compares audiences without scheme and trailing slash.
fn same_audience(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s);
        s.strip_suffix('/').unwrap_or(s).to_string()
    };
    norm(a) == norm(b)
}
