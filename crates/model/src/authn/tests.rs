//! Request authentication: every bad-token kind, every `jwtRules` field, and any byte
//! string as a token, against keys made here.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair as _};
use serde_json::{Value, json};

use super::*;
use crate::translate::scope::ProxyScope;

const NOW: u64 = 1_800_000_000;
const ISS: &str = "https://issuer.example";

/// A signing key and its public JWK.
struct TestKey {
    alg: Algorithm,
    kid: Option<String>,
    encoding: EncodingKey,
    jwk: Value,
}

impl TestKey {
    fn ec(alg: Algorithm, kid: &str) -> TestKey {
        let (signing, crv, len) = match alg {
            Algorithm::ES256 => (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
            _ => (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
        };
        let rng = SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(signing, &rng).expect("key");
        let pair = signature::EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).expect("key");
        let public = pair.public_key().as_ref();
        let (x, y) = public[1..].split_at(len);
        TestKey {
            alg,
            kid: Some(kid.into()),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": crv, "kid": kid, "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}),
        }
    }

    fn ed25519(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        TestKey {
            alg: Algorithm::EdDSA,
            kid: Some(kid.into()),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}),
        }
    }

    /// ring makes no RSA keys: this one was made once with `openssl genpkey` for the tests.
    fn rsa(alg: Algorithm, kid: &str) -> TestKey {
        let der = include_bytes!("test-rsa-2048.pkcs1.der");
        let pair = signature::RsaKeyPair::from_der(der).expect("key");
        let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
        TestKey {
            alg,
            kid: Some(kid.into()),
            encoding: EncodingKey::from_rsa_der(der),
            jwk: json!({"kty": "RSA", "kid": kid, "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e)}),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signs")
    }

    fn jwks(keys: &[&TestKey]) -> String {
        json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
    }
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "alice", "aud": "reviews", "exp": NOW + 600, "iat": NOW, "azp": "web",
           "groups": ["admin", "dev"], "org": {"team": "blue", "level": 3}})
}

/// A request offering headers and a query.
#[derive(Default)]
struct Req {
    headers: BTreeMap<String, String>,
    query: Option<String>,
}

impl Req {
    fn bearer(token: &str) -> Req {
        Req::default().header("authorization", &format!("Bearer {token}"))
    }

    fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.insert(name.into(), value.into());
        self
    }
}

impl TokenSource for Req {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).cloned()
    }

    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
}

/// The Authn of one RequestAuthentication in namespace `shop` (spec in YAML).
fn authn(spec: &str) -> Authn {
    let yaml = format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: jwt, namespace: shop}}\nspec:\n{}",
        spec.lines().map(|l| format!("  {l}\n")).collect::<String>()
    );
    let loaded = weft_api::load_str("test.yaml", &yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let resources: Vec<Resource> = loaded.resources.into_iter().map(|r| r.resource).collect();
    build(
        &resources,
        &ProxyScope {
            namespace: "shop".into(),
            ..ProxyScope::default()
        },
    )
}

fn inline(key: &TestKey, extra: &str) -> Authn {
    authn(&format!(
        "jwtRules:\n- issuer: {ISS}\n  jwks: '{}'\n{extra}",
        TestKey::jwks(&[key])
    ))
}

fn no_remote(_: &str) -> Option<Arc<Keys>> {
    None
}

fn outcome(a: &Authn, req: &Req) -> Outcome {
    a.authenticate(req, &no_remote, NOW)
}

fn refused(a: &Authn, req: &Req) -> JwtError {
    match outcome(a, req) {
        Outcome::Refused { error, .. } => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn authenticated(a: &Authn, req: &Req) -> Authenticated {
    match outcome(a, req) {
        Outcome::Authenticated(ok) => ok,
        other => panic!("expected a verified token, got {other:?}"),
    }
}

#[test]
fn every_supported_algorithm_verifies() {
    let keys = [
        TestKey::ec(Algorithm::ES256, "es256"),
        TestKey::ec(Algorithm::ES384, "es384"),
        TestKey::ed25519("ed"),
        TestKey::rsa(Algorithm::RS256, "rs256"),
        TestKey::rsa(Algorithm::RS384, "rs384"),
        TestKey::rsa(Algorithm::RS512, "rs512"),
        TestKey::rsa(Algorithm::PS256, "ps256"),
        TestKey::rsa(Algorithm::PS384, "ps384"),
        TestKey::rsa(Algorithm::PS512, "ps512"),
    ];
    let refs: Vec<&TestKey> = keys.iter().collect();
    let a = authn(&format!(
        "jwtRules:\n- issuer: {ISS}\n  jwks: '{}'\n",
        TestKey::jwks(&refs)
    ));
    for key in &keys {
        let ok = authenticated(&a, &Req::bearer(&key.sign(&claims())));
        assert_eq!(ok.auth.principal, format!("{ISS}/alice"), "{:?}", key.alg);
    }
}

#[test]
fn no_token_passes_unauthenticated() {
    let key = TestKey::ec(Algorithm::ES256, "k1");
    let a = inline(&key, "");
    assert_eq!(outcome(&a, &Req::default()), Outcome::Unauthenticated);
    // A header without the prefix holds no token for the rule.
    let basic = Req::default().header("authorization", "Basic dXNlcjpwYXNz");
    assert_eq!(outcome(&a, &basic), Outcome::Unauthenticated);
    assert_eq!(
        outcome(&Authn::default(), &Req::bearer("x.y.z")),
        Outcome::Unauthenticated
    );
}

#[test]
fn each_bad_token_kind_is_refused_with_envoys_message() {
    let key = TestKey::ec(Algorithm::ES256, "k1");
    let other = TestKey::ec(Algorithm::ES256, "k1");
    let a = inline(&key, "  audiences: [reviews]\n");
    let with = |c: Value| Req::bearer(&key.sign(&c));
    let mut c = claims();
    let cases: Vec<(&str, Req, JwtError)> = vec![
        ("malformed", Req::bearer("not-a-jwt"), JwtError::BadFormat),
        ("four parts", Req::bearer("a.b.c.d"), JwtError::BadFormat),
        (
            "header not base64",
            Req::bearer("***.e30.c2ln"),
            JwtError::HeaderBase64,
        ),
        (
            "header not JSON",
            Req::bearer(&format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode("nope"))),
            JwtError::HeaderJson,
        ),
        (
            "alg none",
            Req::bearer(&format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode(claims().to_string())
            )),
            JwtError::UnsupportedAlg,
        ),
        (
            "alg missing",
            Req::bearer(&format!(
                "{}.e30.c2ln",
                URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT"}"#)
            )),
            JwtError::HeaderAlg,
        ),
        (
            "payload not JSON",
            Req::bearer(&format!(
                "{}.{}.c2ln",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#),
                URL_SAFE_NO_PAD.encode("[")
            )),
            JwtError::PayloadJson,
        ),
        (
            "bad signature",
            Req::bearer(&other.sign(&claims())),
            JwtError::VerificationFails,
        ),
        (
            "tampered payload",
            {
                let t = key.sign(&claims());
                let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
                parts[1] = URL_SAFE_NO_PAD
                    .encode(json!({"iss": ISS, "sub": "mallory", "aud": "reviews"}).to_string());
                Req::bearer(&parts.join("."))
            },
            JwtError::VerificationFails,
        ),
        (
            "unknown issuer",
            with({
                c["iss"] = json!("https://other.example");
                c.clone()
            }),
            JwtError::UnknownIssuer,
        ),
        (
            "wrong audience",
            with({
                let mut c = claims();
                c["aud"] = json!(["ratings"]);
                c
            }),
            JwtError::AudienceNotAllowed,
        ),
        (
            "expired beyond the skew",
            with({
                let mut c = claims();
                c["exp"] = json!(NOW - CLOCK_SKEW - 1);
                c
            }),
            JwtError::Expired,
        ),
        (
            "not yet valid beyond the skew",
            with({
                let mut c = claims();
                c["nbf"] = json!(NOW + CLOCK_SKEW + 1);
                c
            }),
            JwtError::NotYetValid,
        ),
        (
            "unknown kid",
            {
                let stranger = TestKey::ec(Algorithm::ES256, "k9");
                Req::bearer(&stranger.sign(&claims()))
            },
            JwtError::NoMatchingKey,
        ),
        (
            "alg of another key type",
            Req::bearer(&TestKey::ed25519("k1").sign(&claims())),
            JwtError::NoMatchingKey,
        ),
        (
            "exp not a number",
            with({
                let mut c = claims();
                c["exp"] = json!("tomorrow");
                c
            }),
            JwtError::ClaimType("exp"),
        ),
    ];
    for (what, req, want) in cases {
        match outcome(&a, &req) {
            Outcome::Refused { error, .. } => assert_eq!(error, want, "{what}"),
            other => panic!("{what}: expected {want:?}, got {other:?}"),
        }
    }
    assert_eq!(
        JwtError::VerificationFails.to_string(),
        "Jwt verification fails"
    );
    assert_eq!(JwtError::VerificationFails.status(), 401);
    assert_eq!(JwtError::AudienceNotAllowed.status(), 403);
}

#[test]
fn the_clock_skew_is_sixty_seconds() {
    let key = TestKey::ec(Algorithm::ES256, "k1");
    let a = inline(&key, "");
    let mut c = claims();
    c["exp"] = json!(NOW - CLOCK_SKEW);
    c["nbf"] = json!(NOW + CLOCK_SKEW);
    authenticated(&a, &Req::bearer(&key.sign(&c)));
}

#[test]
fn the_principal_audiences_presenter_and_claims_are_read() {
    let key = TestKey::ec(Algorithm::ES256, "k1");
    let a = inline(&key, "  audiences: [reviews, ratings]\n");
    let ok = authenticated(&a, &Req::bearer(&key.sign(&claims())));
    assert_eq!(ok.auth.principal, format!("{ISS}/alice"));
    assert_eq!(ok.auth.audiences, ["reviews"]);
    assert_eq!(ok.auth.presenter.as_deref(), Some("web"));
    assert_eq!(ok.auth.claim(&["groups"]), ["admin", "dev"]);
    assert_eq!(ok.auth.claim(&["org", "team"]), ["blue"]);
    assert_eq!(ok.auth.claim(&["org", "level"]), ["3"]);
    assert!(ok.auth.claim(&["missing"]).is_empty());
    // Envoy compares audiences without scheme or trailing slash.
    let mut c = claims();
    c["aud"] = json!("https://reviews/");
    authenticated(&a, &Req::bearer(&key.sign(&c)));
}

#[test]
fn the_token_is_removed_unless_forward_original_token() {
    let key = TestKey::ec(Algorithm::ES256, "k1");
    let token = key.sign(&claims());
    let removed = authenticated(&inline(&key, ""), &Req::bearer(&token));
    assert_eq!(removed.remove_headers, ["authorization"]);
    let kept = authenticated(
        &inline(&key, "  forwardOriginalToken: true\n"),
        &Req::bearer(&token),
    );
    assert!(kept.remove_headers.is_empty());
}

#[test]
fn payload_and_claims_are_output_to_headers() {
    let key = TestKey::ec(Algorithm::ES256, "k1");
    let token = key.sign(&claims());
    let a = inline(
        &key,
        "  outputPayloadToHeader: x-jwt-payload\n  outputClaimToHeaders:\n  - {header: x-user, claim: sub}\n  - {header: x-groups, claim: groups}\n  - {header: x-team, claim: org.team}\n  - {header: x-none, claim: nothing}\n",
    );
    let ok = authenticated(&a, &Req::bearer(&token));
    let payload = token.split('.').nth(1).expect("payload");
    assert_eq!(
        ok.set_headers,
        [
            ("x-jwt-payload".to_string(), payload.to_string()),
            ("x-user".to_string(), "alice".to_string()),
            ("x-groups".to_string(), "admin,dev".to_string()),
            ("x-team".to_string(), "blue".to_string()),
        ]
    );
    let decoded: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    assert_eq!(decoded["sub"], "alice");
    assert_eq!(
        a.output_headers().into_iter().collect::<Vec<_>>(),
        ["x-groups", "x-jwt-payload", "x-none", "x-team", "x-user"]
    );
}

#[test]
fn tokens_are_found_in_headers_params_and_cookies() {
    let key = TestKey::ec(Algorithm::ES256, "k1");
    let token = key.sign(&claims());
    let a = inline(
        &key,
        "  fromHeaders: [{name: X-Jwt, prefix: 'Token '}]\n  fromParams: [jwt]\n  fromCookies: [session]\n",
    );
    let by_header = Req::default().header("x-jwt", &format!("Token {token}"));
    assert_eq!(authenticated(&a, &by_header).remove_headers, ["x-jwt"]);
    let by_param = Req {
        query: Some(format!("a=1&jwt={token}")),
        ..Req::default()
    };
    assert!(authenticated(&a, &by_param).remove_headers.is_empty());
    let by_cookie = Req::default().header("cookie", &format!("theme=dark; session={token}"));
    authenticated(&a, &by_cookie);
    // With locations named, the default Authorization header is not read.
    assert_eq!(
        outcome(&a, &Req::bearer("garbage")),
        Outcome::Unauthenticated
    );
    // Without, Envoy's defaults: Authorization: Bearer and ?access_token=.
    let defaults = inline(&key, "");
    let by_default_param = Req {
        query: Some(format!("access_token={token}")),
        ..Req::default()
    };
    authenticated(&defaults, &by_default_param);
}

#[test]
fn each_issuer_is_checked_by_its_own_rule() {
    let first = TestKey::ec(Algorithm::ES256, "a");
    let second = TestKey::ed25519("b");
    let a = authn(&format!(
        "jwtRules:\n- issuer: {ISS}\n  jwks: '{}'\n- issuer: https://second.example\n  jwks: '{}'\n",
        TestKey::jwks(&[&first]),
        TestKey::jwks(&[&second])
    ));
    let mut c = claims();
    c["iss"] = json!("https://second.example");
    let ok = authenticated(&a, &Req::bearer(&second.sign(&c)));
    assert_eq!(ok.auth.principal, "https://second.example/alice");
    // The second issuer's token signed by the first issuer's key: its own rule's error.
    assert_eq!(
        refused(&a, &Req::bearer(&first.sign(&c))),
        JwtError::NoMatchingKey
    );
}

#[test]
fn remote_keys_come_from_the_cache_and_their_absence_refuses() {
    let key = TestKey::ec(Algorithm::ES256, "k1");
    let a = authn(&format!(
        "jwtRules:\n- issuer: {ISS}\n  jwksUri: https://issuer.example/jwks\n  timeout: 2s\n"
    ));
    assert_eq!(
        a.providers[0].keys,
        KeySource::Remote {
            uri: "https://issuer.example/jwks".into(),
            timeout: std::time::Duration::from_secs(2)
        }
    );
    let req = Req::bearer(&key.sign(&claims()));
    assert_eq!(refused(&a, &req), JwtError::JwksFetchFailed);
    let keys = Arc::new(Keys::parse(&TestKey::jwks(&[&key])).expect("jwks"));
    let lookup = |uri: &str| (uri == "https://issuer.example/jwks").then(|| keys.clone());
    assert!(matches!(
        a.authenticate(&req, &lookup, NOW),
        Outcome::Authenticated(_)
    ));
}

#[test]
fn policies_apply_by_namespace_selector_and_root_namespace() {
    let doc = |name: &str, ns: &str, selector: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  {selector}\n  jwtRules: [{{issuer: {name}}}]\n---\n"
        )
    };
    let yaml = [
        doc("mesh", "istio-system", "selector: {}"),
        doc("mine", "shop", "selector: {matchLabels: {app: reviews}}"),
        doc("theirs", "shop", "selector: {matchLabels: {app: ratings}}"),
        doc("elsewhere", "other", "selector: {}"),
    ]
    .concat();
    let loaded = weft_api::load_str("t.yaml", &yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let resources: Vec<Resource> = loaded.resources.into_iter().map(|r| r.resource).collect();
    let scope = ProxyScope {
        namespace: "shop".into(),
        labels: BTreeMap::from([("app".to_string(), "reviews".to_string())]),
        ..ProxyScope::default()
    };
    let issuers: Vec<String> = build(&resources, &scope)
        .providers
        .into_iter()
        .map(|p| p.issuer)
        .collect();
    assert_eq!(issuers.len(), 2, "{issuers:?}");
    assert!(issuers.contains(&"mesh".to_string()), "{issuers:?}");
    assert!(issuers.contains(&"mine".to_string()), "{issuers:?}");
}

#[test]
fn unusable_keys_are_skipped_and_a_set_without_keys_is_refused() {
    let key = TestKey::ec(Algorithm::ES256, "k1");
    let doc = json!({"keys": [{"kty": "XYZ"}, key.jwk]}).to_string();
    assert_eq!(Keys::parse(&doc).expect("one key").len(), 1);
    assert!(Keys::parse(r#"{"keys": []}"#).is_err());
    assert!(Keys::parse(r#"{"nokeys": 1}"#).is_err());
    assert!(Keys::parse("not json").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes as a token are refused (never a panic, never a pass), with a 401.
    #[test]
    fn any_byte_string_as_a_token_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let key = TestKey::ec(Algorithm::ES256, "k1");
        let a = inline(&key, "");
        let text = String::from_utf8_lossy(&bytes).replace(['\r', '\n'], "");
        let req = Req::default().header("x-raw", "").header("authorization", &format!("Bearer {text}"));
        match outcome(&a, &req) {
            Outcome::Refused { error, .. } => prop_assert_eq!(error.status(), 401),
            Outcome::Unauthenticated => prop_assert!(text.trim().is_empty()),
            Outcome::Authenticated(_) => prop_assert!(false, "random bytes verified"),
        }
    }

    /// Dot-separated base64 parts (closer to a token) are refused too.
    #[test]
    fn any_three_part_token_is_refused(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 3)) {
        let key = TestKey::ec(Algorithm::ES256, "k1");
        let a = inline(&key, "");
        let token: Vec<String> = parts.iter().map(|p| URL_SAFE_NO_PAD.encode(p)).collect();
        let req = Req::bearer(&token.join("."));
        let refused = matches!(outcome(&a, &req), Outcome::Refused { .. });
        prop_assert!(refused);
    }
}
