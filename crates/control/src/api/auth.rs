//! Who may use the API. With a token (`weft control --api-token-file`, which `weft up`
//! always passes), every write needs `Authorization: Bearer <token>`, and so does every
//! request from another host; reads from loopback are open, as the dashboard and
//! `weft get` on the same machine are, except reads of Secrets (a workload sharing the
//! host's loopback must not read the gateways' keys). A wrong token is refused even where none is
//! needed, as Kubernetes' API server refuses it. Without a token the API is open (a
//! control plane for tests and embedding; `weft control` warns).

use std::net::IpAddr;
use std::path::Path;

use http::{Method, Request, Response, StatusCode, header};

use super::ApiBody;
use super::reply::status;

/// The API's bearer token.
#[derive(Clone)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl ApiToken {
    /// The token held in `path` (surrounding whitespace removed).
    pub fn read(path: &Path) -> Result<ApiToken, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the API token {}: {e}", path.display()))?;
        ApiToken::new(text.trim()).map_err(|e| format!("the API token in {}: {e}", path.display()))
    }

    /// `text` as a token: at least 16 visible ASCII characters.
    pub fn new(text: &str) -> Result<ApiToken, String> {
        if text.len() < 16 {
            return Err("a token needs at least 16 characters".into());
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token is visible ASCII characters only".into());
        }
        Ok(ApiToken(text.to_string()))
    }

    /// True when `offered` is this token (compared in constant time).
    fn is(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// A fresh random token (32 bytes from the system's random source, hex).
pub fn generate_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn reads(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(&'static str);

impl Refused {
    /// The 401 `Status` Kubernetes answers.
    pub fn response(self) -> Response<ApiBody> {
        status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            &format!("Unauthorized: {}", self.0),
            None,
        )
    }
}

/// True when `req` reads Secrets (one, a namespace's, or all).
fn reads_secrets<B>(req: &Request<B>) -> bool {
    super::path::parse(req.uri().path()).is_some_and(|t| t.kind == weft_api::Kind::Secret)
}

/// Lets `req` from `peer` through, or says why not.
pub fn authorize<B>(
    token: Option<&ApiToken>,
    req: &Request<B>,
    peer: IpAddr,
) -> Result<(), Refused> {
    let Some(token) = token else { return Ok(()) };
    let offered = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
    let refused = match offered {
        Some(t) if token.is(t) => return Ok(()),
        Some(_) => "the bearer token is not the API's token",
        None if reads(req.method()) && peer.is_loopback() && !reads_secrets(req) => {
            return Ok(());
        }
        None if reads(req.method()) && peer.is_loopback() => {
            "reading Secrets needs the API's bearer token, from loopback too (weft up's kubeconfig holds it: export KUBECONFIG=$(weft kubeconfig))"
        }
        None if reads(req.method()) => "reads from another host need the API's bearer token",
        None => {
            "writes need the API's bearer token (weft up's kubeconfig holds it: export KUBECONFIG=$(weft kubeconfig))"
        }
    };
    Err(Refused(refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn request(method: Method, bearer: Option<&str>) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/api/v1/services");
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(()).expect("request")
    }

    fn code(r: Result<(), Refused>) -> u16 {
        r.map_or_else(|refused| refused.response().status().as_u16(), |()| 200)
    }

    #[test]
    fn writes_need_the_token_and_loopback_reads_do_not() {
        let token = ApiToken::new("0123456789abcdef0123").expect("token");
        let t = Some(&token);
        assert_eq!(
            code(authorize(t, &request(Method::POST, None), LOOPBACK)),
            401
        );
        assert_eq!(
            code(authorize(t, &request(Method::DELETE, None), LOOPBACK)),
            401
        );
        assert_eq!(
            code(authorize(
                t,
                &request(Method::PATCH, Some("0123456789abcdef0123")),
                REMOTE
            )),
            200
        );
        assert_eq!(
            code(authorize(t, &request(Method::GET, None), LOOPBACK)),
            200
        );
        assert_eq!(code(authorize(t, &request(Method::GET, None), REMOTE)), 401);
        assert_eq!(
            code(authorize(
                t,
                &request(Method::GET, Some("wrong-token-wrong")),
                LOOPBACK
            )),
            401,
            "a wrong token is refused even where none is needed"
        );
        assert_eq!(
            code(authorize(None, &request(Method::POST, None), REMOTE)),
            200
        );
    }

    #[test]
    fn secrets_are_read_with_the_token_only_even_from_loopback() {
        let token = ApiToken::new("0123456789abcdef0123").expect("token");
        let t = Some(&token);
        let get = |path: &str, bearer: Option<&str>| {
            let mut b = Request::builder().method(Method::GET).uri(path);
            if let Some(x) = bearer {
                b = b.header("authorization", format!("Bearer {x}"));
            }
            b.body(()).expect("request")
        };
        for path in [
            "/api/v1/secrets",
            "/api/v1/namespaces/istio-system/secrets",
            "/api/v1/namespaces/istio-system/secrets/web-cert",
        ] {
            let refused = authorize(t, &get(path, None), LOOPBACK).expect_err(path);
            assert!(refused.0.contains("reading Secrets needs"), "{path}");
            assert_eq!(
                code(authorize(
                    t,
                    &get(path, Some("0123456789abcdef0123")),
                    LOOPBACK
                )),
                200
            );
        }
        // Other kinds, and a namespace that happens to be called `secrets`, stay open.
        for path in ["/api/v1/namespaces/secrets/services", "/api/v1/configmaps"] {
            assert_eq!(
                code(authorize(t, &get(path, None), LOOPBACK)),
                200,
                "{path}"
            );
        }
    }

    #[test]
    fn short_or_blank_tokens_are_refused() {
        assert!(ApiToken::new("short").is_err());
        assert!(ApiToken::new("0123456789abcdef 0123").is_err());
        let generated = generate_token().expect("random");
        assert_eq!(generated.len(), 64);
        assert!(ApiToken::new(&generated).is_ok());
    }
}
