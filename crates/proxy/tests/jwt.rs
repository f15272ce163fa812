//! RequestAuthentication at the server sidecar, end to end: keys the test makes, a JWKS
//! served by a test HTTP server and rotated mid-test, every bad token kind refused with
//! Envoy's status and message before the app, a good token's output headers, the original
//! token forwarded only with `forwardOriginalToken`, and AuthorizationPolicy deciding on
//! the verified identity (`requestPrincipals`, `request.auth.claims`).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::jwt::{TestKey, jwks, now, unsigned};
use serde_json::{Value, json};
use weft_model::ProxyScope;
use weft_proxy::ProxyOptions;
use weft_testkit::client::{self, Got, Send};
use weft_testkit::upstream::{self, Reply};
use weft_testkit::{eventually, fresh_dir, mesh};

const ISS: &str = "https://issuer.example";
const PARTNER: &str = "https://partner.example";

fn claims(sub: &str) -> Value {
    json!({"iss": ISS, "sub": sub, "aud": "reviews", "exp": now() + 600, "iat": now(),
           "groups": ["admin", "dev"]})
}

fn config(jwks_uri: &str, partner_jwks: &str) -> String {
    format!(
        r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: users, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules:
  - issuer: {ISS}
    jwksUri: {jwks_uri}
    audiences: [reviews]
    timeout: 2s
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders:
    - {{header: x-user, claim: sub}}
    - {{header: x-groups, claim: groups}}
  - issuer: {PARTNER}
    jwks: '{partner_jwks}'
    fromHeaders: [{{name: x-partner-token}}]
    forwardOriginalToken: true
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: reviews, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: ALLOW
  rules:
  - to: [{{operation: {{paths: [/public]}}}}]
  - from: [{{source: {{requestPrincipals: ["*"]}}}}]
    to: [{{operation: {{paths: [/private]}}}}]
  - from: [{{source: {{requestPrincipals: ["{ISS}/alice"]}}}}]
    to: [{{operation: {{paths: [/alice]}}}}]
  - to: [{{operation: {{paths: [/devs]}}}}]
    when: [{{key: "request.auth.claims[groups]", values: [dev]}}]
---
"#
    )
}

async fn call(inbound: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    let url = format!("http://reviews{path}");
    client::direct(
        inbound,
        Send {
            url: &url,
            headers,
            ..Default::default()
        },
    )
    .await
}

async fn with_token(inbound: std::net::SocketAddr, path: &str, token: &str) -> Got {
    let bearer = format!("Bearer {token}");
    call(inbound, path, &[("authorization", &bearer)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_verified_before_the_app_and_keys_rotate() {
    let first = TestKey::es256("k1");
    let second = TestKey::ed25519("k2");
    let partner = TestKey::es256("p1");
    // The issuer's JWKS endpoint: what it serves can change, or fail, mid-test.
    let served = Arc::new(Mutex::new(Some(jwks(&[&first]))));
    let answer = served.clone();
    let issuer = upstream::http(Arc::new(move |_, _| {
        match answer.lock().expect("lock").clone() {
            Some(body) => Reply::ok(body),
            None => Reply::status(500, "down"),
        }
    }))
    .await;
    let app = upstream::named("reviews").await;
    let dir = fresh_dir("jwt-test");
    let yaml = config(
        &format!("http://{}/.well-known/jwks.json", issuer.addr),
        &jwks(&[&partner]),
    );
    let proxy = mesh::start_proxy(ProxyOptions {
        app: Some(app.addr),
        scope: ProxyScope {
            namespace: "default".into(),
            labels: [("app".to_string(), "reviews".to_string())].into(),
            gateway: false,
        },
        jwks_refresh: Duration::from_millis(200),
        ..mesh::file_options(&dir, &yaml, "jwt")
    })
    .await;
    let inbound = proxy.inbound.expect("inbound");

    // A good token: the app gets the outputs and not the token.
    let token = first.sign(&claims("alice"));
    let got = with_token(inbound, "/alice", &token).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let seen = app.seen().pop().expect("the app saw it");
    let header = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header("x-user").as_deref(), Some("alice"));
    assert_eq!(header("x-groups").as_deref(), Some("admin,dev"));
    assert_eq!(
        header("x-jwt-payload").as_deref(),
        token.split('.').nth(1),
        "the payload, base64url"
    );
    assert_eq!(
        header("authorization"),
        None,
        "forwardOriginalToken is false"
    );
    // Claims decide too.
    assert_eq!(with_token(inbound, "/devs", &token).await.status, 200);
    let bob = first.sign(&claims("bob"));
    assert_eq!(with_token(inbound, "/alice", &bob).await.status, 403);

    // No token: unauthenticated, AuthorizationPolicy decides; forged outputs are removed.
    let got = call(
        inbound,
        "/public",
        &[("x-user", "admin"), ("x-jwt-payload", "e30")],
    )
    .await;
    assert_eq!(got.status, 200);
    let seen = app.seen().pop().expect("seen");
    assert!(
        seen.headers.get("x-user").is_none(),
        "a client cannot forge x-user"
    );
    assert!(seen.headers.get("x-jwt-payload").is_none());
    let got = call(inbound, "/private", &[]).await;
    assert_eq!(
        (got.status.as_u16(), got.body.trim()),
        (403, "RBAC: access denied"),
        "requestPrincipals [*] needs a token"
    );
    assert_eq!(with_token(inbound, "/private", &token).await.status, 200);

    // Every bad token kind: refused with Envoy's status and message, never reaching the app.
    let hits = app.hits();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims("alice");
        edit(&mut c);
        first.sign(&c)
    };
    let mut tampered: Vec<String> = token.split('.').map(str::to_string).collect();
    tampered[1] = base64_json(&json!({"iss": ISS, "sub": "root", "aud": "reviews"}));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "bad signature",
            TestKey::es256("k1").sign(&claims("alice")),
            401,
            "Jwt verification fails",
        ),
        (
            "tampered payload",
            tampered.join("."),
            401,
            "Jwt verification fails",
        ),
        (
            "expired",
            with(&|c| c["exp"] = json!(now() - 120)),
            401,
            "Jwt is expired",
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now() + 120)),
            401,
            "Jwt not yet valid",
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("ratings")),
            403,
            "Audiences in Jwt are not allowed",
        ),
        (
            "unknown issuer",
            with(&|c| c["iss"] = json!("https://evil.example")),
            401,
            "Jwt issuer is not configured",
        ),
        (
            "alg none",
            unsigned(&claims("alice")),
            401,
            "Jwt header [alg] is not supported",
        ),
        (
            "unknown kid",
            second.sign(&claims("alice")),
            401,
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
        (
            "malformed",
            "not-a-token".into(),
            401,
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        ),
    ];
    for (what, bad, status, message) in &cases {
        let got = with_token(inbound, "/public", bad).await;
        assert_eq!(
            (got.status.as_u16(), got.body.trim()),
            (*status, *message),
            "{what}"
        );
        if *status == 401 {
            let challenge = got.header("www-authenticate").unwrap_or_default();
            assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
        }
    }
    // Any bytes as a token: 401, and the proxy keeps serving.
    let mut rng = fastrand::Rng::with_seed(15);
    for _ in 0..200 {
        let len = rng.usize(1..120);
        let junk: String = (0..len).map(|_| rng.u8(0x21..0x7f) as char).collect();
        let got = with_token(inbound, "/public", &junk).await;
        assert_eq!(got.status, 401, "token {junk:?}: {}", got.body);
    }
    assert_eq!(app.hits(), hits, "no refused request reached the app");

    // The second rule: its own header, and the token forwarded.
    let partner_token = partner.sign(&json!({"iss": PARTNER, "sub": "shop", "exp": now() + 600}));
    let got = call(inbound, "/private", &[("x-partner-token", &partner_token)]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let seen = app.seen().pop().expect("seen");
    assert_eq!(
        seen.headers
            .get("x-partner-token")
            .and_then(|v| v.to_str().ok()),
        Some(partner_token.as_str()),
        "forwardOriginalToken keeps the token"
    );

    // Rotation: the issuer adds k2; its tokens are accepted once the keys are fetched
    // again, and k1's keep working until k1 is removed.
    let rotated = second.sign(&claims("alice"));
    *served.lock().expect("lock") = Some(jwks(&[&first, &second]));
    eventually("k2 is picked up", Duration::from_secs(10), || async {
        (with_token(inbound, "/private", &rotated).await.status == 200).then_some(())
    })
    .await;
    assert_eq!(
        with_token(inbound, "/private", &token).await.status,
        200,
        "k1 still valid"
    );
    *served.lock().expect("lock") = Some(jwks(&[&second]));
    eventually("k1 is dropped", Duration::from_secs(10), || async {
        (with_token(inbound, "/private", &token).await.status == 401).then_some(())
    })
    .await;
    assert_eq!(with_token(inbound, "/private", &rotated).await.status, 200);

    // The issuer fails: the last good keys stay in force.
    *served.lock().expect("lock") = None;
    let failures = issuer.hits();
    eventually(
        "the proxy retries the issuer",
        Duration::from_secs(10),
        || async { (issuer.hits() > failures + 2).then_some(()) },
    )
    .await;
    assert_eq!(with_token(inbound, "/private", &rotated).await.status, 200);
}

fn base64_json(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_gateway_verifies_tokens_and_routes_on_claims() {
    let key = TestKey::es256("g1");
    let web = upstream::named("web").await;
    let admin = upstream::named("admin").await;
    let yaml = format!(
        r#"{}{}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web-gateway, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [web-gateway]
  http:
  - match: [{{headers: {{"@request.auth.claims.groups": {{exact: admin}}}}}}]
    route: [{{destination: {{host: admin.default.svc.cluster.local}}}}]
  - route: [{{destination: {{host: web.default.svc.cluster.local}}}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: ingress, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  jwtRules:
  - issuer: {ISS}
    jwks: '{}'
    forwardOriginalToken: true
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: ingress, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  rules:
  - from: [{{source: {{requestPrincipals: ["{ISS}/*"]}}}}]
---
"#,
        common::service("web", 80, "HTTP", &[(web.addr, "v1")]),
        common::service("admin", 80, "HTTP", &[(admin.addr, "v1")]),
        jwks(&[&key])
    );
    let gw = common::Harness::gateway(&yaml, &[("istio", "ingressgateway")]).await;
    let addr = gw.proxy.gateways[0].1;
    let token = key.sign(&claims("alice"));
    let bearer = format!("Bearer {token}");
    let got = client::direct(
        addr,
        Send {
            url: "http://shop.example.com/",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.status, 403, "no token: requestPrincipals denies");
    let expired = key.sign(&json!({"iss": ISS, "sub": "alice", "exp": now() - 3600}));
    let got = client::direct(
        addr,
        Send {
            url: "http://shop.example.com/",
            headers: &[("authorization", &format!("Bearer {expired}"))],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (got.status.as_u16(), got.body.trim()),
        (401, "Jwt is expired")
    );
    assert_eq!(web.hits() + admin.hits(), 0);
    let got = client::direct(
        addr,
        Send {
            url: "http://shop.example.com/",
            headers: &[("authorization", &bearer)],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (got.status.as_u16(), got.body.as_str()),
        (200, "admin"),
        "groups [admin, dev]: the claim route"
    );
    let seen = admin.seen().pop().expect("seen");
    assert_eq!(
        seen.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some(bearer.as_str()),
        "forwardOriginalToken keeps the token"
    );
    let dev = key.sign(&json!({"iss": ISS, "sub": "bob", "exp": now() + 600, "groups": ["dev"]}));
    let got = client::direct(
        addr,
        Send {
            url: "http://shop.example.com/",
            headers: &[("authorization", &format!("Bearer {dev}"))],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (got.status.as_u16(), got.body.as_str()),
        (200, "web"),
        "no admin claim"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_authentication_applied_to_the_control_plane_reaches_the_sidecar() {
    let key = TestKey::es256("c1");
    let app = upstream::named("reviews").await;
    let cp = mesh::ControlPlane::new(&fresh_dir("jwt-xds")).start().await;
    let proxy = mesh::start_proxy(ProxyOptions {
        app: Some(app.addr),
        scope: ProxyScope {
            namespace: "default".into(),
            labels: [("app".to_string(), "reviews".to_string())].into(),
            gateway: false,
        },
        ..mesh::sidecar_options(cp.xds, "sidecar~reviews.default", None)
    })
    .await;
    let inbound = proxy.inbound.expect("inbound");
    let token = key.sign(&claims("alice"));
    let forged = TestKey::es256("c1").sign(&claims("alice"));
    mesh::apply(
        &cp,
        &format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: users, namespace: default}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  jwtRules:\n  - issuer: {ISS}\n    jwks: '{}'\n    timeout: 1500ms\n",
            jwks(&[&key])
        ),
    );
    eventually(
        "the pushed rule refuses a forged token",
        Duration::from_secs(10),
        || async { (with_token(inbound, "/", &forged).await.status == 401).then_some(()) },
    )
    .await;
    let got = with_token(inbound, "/", &token).await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "reviews"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_that_cannot_be_reached_fails_tokens_fast() {
    let key = TestKey::es256("k1");
    let app = upstream::named("reviews").await;
    let closed = weft_testkit::free_port();
    let yaml = format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: users, namespace: default}}\nspec:\n  jwtRules:\n  - issuer: {ISS}\n    jwksUri: http://127.0.0.1:{closed}/jwks\n    timeout: 10s\n"
    );
    let proxy = mesh::start_proxy(ProxyOptions {
        app: Some(app.addr),
        scope: ProxyScope {
            namespace: "default".into(),
            ..ProxyScope::default()
        },
        ..mesh::file_options(&fresh_dir("jwt-down"), &yaml, "jwt-down")
    })
    .await;
    let inbound = proxy.inbound.expect("inbound");
    let started = std::time::Instant::now();
    let got = with_token(inbound, "/", &key.sign(&claims("alice"))).await;
    assert_eq!(
        (got.status.as_u16(), got.body.trim()),
        (401, "Jwks remote fetch is failed")
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused connection ends the wait: {:?}",
        started.elapsed()
    );
    // Requests without a token do not wait for keys at all.
    assert_eq!(call(inbound, "/", &[]).await.status, 200);
    assert_eq!(app.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_fetches_jwks_uris_and_pushes_the_keys_inline() {
    let first = TestKey::es256("k1");
    let second = TestKey::ed25519("k2");
    // The issuer is down when the rule arrives, then serves keys, rotates, and fails again.
    let served: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let answer = served.clone();
    let issuer = upstream::http(Arc::new(move |_, _| {
        match answer.lock().expect("lock").clone() {
            Some(body) => Reply::ok(body),
            None => Reply::status(503, "down"),
        }
    }))
    .await;
    let serve = |keys: Option<String>| *served.lock().expect("lock") = keys;
    let app = upstream::named("reviews").await;
    let cp = mesh::ControlPlane::new(&fresh_dir("jwt-xds-fetch"))
        .jwks_refresh(Duration::from_millis(300))
        .start()
        .await;
    let proxy = mesh::start_proxy(ProxyOptions {
        app: Some(app.addr),
        scope: ProxyScope {
            namespace: "default".into(),
            labels: [("app".to_string(), "reviews".to_string())].into(),
            gateway: false,
        },
        ..mesh::sidecar_options(cp.xds, "sidecar~reviews.default", None)
    })
    .await;
    let inbound = proxy.inbound.expect("inbound");
    let admin = proxy.admin;
    mesh::apply(
        &cp,
        &format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: users, namespace: default}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  jwtRules:\n  - issuer: {ISS}\n    jwksUri: http://{}/jwks\n    timeout: 1s\n",
            issuer.addr
        ),
    );
    let alice = first.sign(&claims("alice"));
    let bob = second.sign(&claims("bob"));
    // No keys could be fetched yet: the rule carries a key nobody holds, so tokens fail
    // and requests without one still reach the app.
    let got = eventually("the rule is pushed", Duration::from_secs(10), || async {
        let got = with_token(inbound, "/", &alice).await;
        (got.status == 401).then_some(got)
    })
    .await;
    assert_eq!(
        got.body.trim(),
        "Jwks doesn't have key to match kid or alg from Jwt"
    );
    let before = app.hits();
    assert_eq!(with_token(inbound, "/", &alice).await.status, 401);
    assert_eq!(call(inbound, "/", &[]).await.status, 200);
    assert_eq!(
        app.hits(),
        before + 1,
        "only the request without a token arrives"
    );

    // The issuer comes up: the control plane's retry picks the keys up and pushes them.
    serve(Some(jwks(&[&first])));
    eventually(
        "the fetched key is pushed",
        Duration::from_secs(10),
        || async { (with_token(inbound, "/", &alice).await.status == 200).then_some(()) },
    )
    .await;
    // The proxy got the keys inline: it never fetches the URI itself.
    let dump = client::admin_get(admin, "/config_dump").await.body;
    assert!(dump.contains("\"Inline\""), "{dump}");
    assert!(!dump.contains("\"Remote\""), "{dump}");

    // Rotation: the new key is added, then the old one removed.
    serve(Some(jwks(&[&first, &second])));
    eventually(
        "the added key is pushed",
        Duration::from_secs(10),
        || async { (with_token(inbound, "/", &bob).await.status == 200).then_some(()) },
    )
    .await;
    assert_eq!(with_token(inbound, "/", &alice).await.status, 200);
    serve(Some(jwks(&[&second])));
    eventually(
        "the removed key stops working",
        Duration::from_secs(10),
        || async { (with_token(inbound, "/", &alice).await.status == 401).then_some(()) },
    )
    .await;
    assert_eq!(with_token(inbound, "/", &bob).await.status, 200);

    // The issuer fails: the last good keys stay.
    serve(None);
    let fetched = issuer.hits();
    eventually(
        "the control plane keeps trying",
        Duration::from_secs(10),
        || async { (issuer.hits() > fetched + 2).then_some(()) },
    )
    .await;
    assert_eq!(with_token(inbound, "/", &bob).await.status, 200);
    assert_eq!(with_token(inbound, "/", &alice).await.status, 401);
}
