//! A small client of the control plane's resource API, for `apply`, `get` and `delete`.

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use weft_api::Kind;

/// The default control plane address.
pub const DEFAULT_SERVER: &str = "127.0.0.1:15014";

/// Where the control plane is: `--server`, else `WEFT_SERVER`, else the local default.
pub fn server(flag: Option<&str>) -> String {
    let raw = flag
        .map(str::to_string)
        .or_else(|| std::env::var("WEFT_SERVER").ok())
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    raw.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// An answer of the API.
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// `x-weft-result` (created / configured / unchanged) on writes.
    pub result: Option<String>,
    /// The JSON body.
    pub body: Value,
}

impl Answer {
    /// The `message` of a Kubernetes `Status`, or the body.
    pub fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string())
    }
}

/// The proxies connected to the control plane at `server`, typed.
pub async fn proxies(server: &str) -> anyhow::Result<Vec<weft_control::xds::ProxyStatus>> {
    let answer = call(server, Method::GET, "/debug/proxies", None).await?;
    if !answer.status.is_success() {
        bail!("{}", answer.message());
    }
    Ok(serde_json::from_value(answer.body["proxies"].clone())?)
}

/// Sends one request to the API at `server`.
pub async fn call(
    server: &str,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Answer> {
    let stream = TcpStream::connect(server)
        .await
        .with_context(|| format!("cannot reach the control plane at {server} (start it with `weft control`, or set --server / WEFT_SERVER)"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", server)
        .header("content-type", "application/json")
        // The field manager the API records for weft's own writes.
        .header("user-agent", concat!("weft/", env!("CARGO_PKG_VERSION")));
    if let Some(token) = crate::credentials::token_for(server) {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let result = resp
        .headers()
        .get("x-weft-result")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = resp.into_body().collect().await?.to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .context("the control plane answered something that is not JSON")?
    };
    Ok(Answer {
        status,
        result,
        body,
    })
}

/// The status of a plain GET (a sidecar's admin `/ready`, whose body is text).
pub async fn get_status(address: &str, path: &str) -> anyhow::Result<http::StatusCode> {
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot reach {address}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(path)
        .header("host", address)
        .body(Full::new(Bytes::new()))?;
    Ok(sender.send_request(req).await?.status())
}

/// Every stored resource of `kinds`, in all namespaces.
pub async fn list(server: &str, kinds: &[Kind]) -> anyhow::Result<Vec<weft_api::Resource>> {
    let mut out = Vec::new();
    for kind in kinds {
        let list = call(server, Method::GET, &path(*kind, None, None), None).await?;
        if *kind == Kind::Secret && list.status == http::StatusCode::UNAUTHORIZED {
            // Reading Secrets needs the API's token: said, and the rest goes on.
            eprintln!(
                "warning: Secrets are not read (the control plane needs its API token for them: export KUBECONFIG=$(weft kubeconfig)); what refers to them is checked without them"
            );
            continue;
        }
        for item in list.body["items"].as_array().cloned().unwrap_or_default() {
            let loaded = weft_api::load_str("server", &item.to_string());
            out.extend(loaded.resources.into_iter().map(|l| l.resource));
        }
    }
    Ok(out)
}

/// The API path of a kind, optionally in a namespace and for one name.
pub fn path(kind: Kind, namespace: Option<&str>, name: Option<&str>) -> String {
    kind.api_path(namespace, name)
}

/// The kind a user typed: name, plural, singular or short name, any case.
pub fn parse_kind(text: &str) -> anyhow::Result<Kind> {
    let t = text.to_ascii_lowercase();
    let short = |k: Kind| match k {
        Kind::VirtualService => "vs",
        Kind::DestinationRule => "dr",
        Kind::ServiceEntry => "se",
        Kind::Gateway => "gw",
        Kind::Sidecar => "sidecar",
        Kind::WorkloadEntry => "we",
        Kind::PeerAuthentication => "pa",
        Kind::AuthorizationPolicy => "ap",
        Kind::RequestAuthentication => "ra",
        Kind::Telemetry => "telemetry",
        Kind::HttpRoute => "httproute",
        Kind::GrpcRoute => "grpcroute",
        Kind::TcpRoute => "tcproute",
        Kind::TlsRoute => "tlsroute",
        Kind::GatewayClass => "gc",
        Kind::KubernetesGateway => "gtw",
        Kind::ReferenceGrant => "refgrant",
        Kind::RateLimit => "rl",
        Kind::Namespace => "ns",
        Kind::Service => "svc",
        Kind::Pod => "po",
        Kind::EndpointSlice => "endpointslice",
        Kind::Deployment => "deploy",
        Kind::Secret => "secret",
        Kind::ConfigMap => "cm",
    };
    for k in Kind::ALL {
        let name = k.name().to_ascii_lowercase();
        let dotted = format!("{}.{}", k.plural(), k.group())
            .trim_end_matches('.')
            .to_string();
        if t == name
            || t == k.plural()
            || t == short(k)
            || t == dotted
            || t == format!("{name}.{}", k.group())
        {
            return Ok(k);
        }
    }
    bail!(
        "unknown resource type {text:?}; use one of vs, dr, se, gw, sidecar, we, pa, ap, rl, ns, svc, po, endpointslice, deploy (or their full names)"
    )
}
