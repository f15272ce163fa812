//! `weft check authz`: would a call from one workload identity to a service be allowed?
//! Explains the AuthorizationPolicy decision rule by rule, as the destination's sidecar
//! would make it, from the policies on the control plane (or files).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use weft_api::Resource;
use weft_model::authz::{AuthzRequest, HttpAttributes, MapHeaders};

use crate::client;

/// Arguments of `weft check`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Explain the AuthorizationPolicy decision for one request.
    Authz(AuthzArgs),
}

/// Arguments of `weft check authz`.
#[derive(clap::Args)]
struct AuthzArgs {
    /// The caller's service account, `namespace/name` or `name` (in --namespace), taken
    /// as proven by mutual TLS (principal `<trust domain>/ns/<ns>/sa/<name>`).
    #[arg(long)]
    from: Option<String>,
    /// The trust domain of the caller's identity (with --from).
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// The destination service (`reviews`, `reviews.default`, or its host).
    #[arg(long)]
    to: String,
    /// The namespace short names are in.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Path (normalized as the proxy does before deciding).
    #[arg(long, default_value = "/")]
    path: String,
    /// Port the request is sent to (default: the service's first port).
    #[arg(long)]
    port: Option<u16>,
    /// A request header, `name=value` (repeatable).
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The caller's address.
    #[arg(long, default_value = "127.0.0.1")]
    source_ip: IpAddr,
    /// How the proxy normalizes paths (its --path-normalization).
    #[arg(long, default_value = "DECODE_AND_MERGE_SLASHES")]
    path_normalization: String,
    /// An end-user JWT, verified as the destination's RequestAuthentications would (their
    /// `jwksUri` keys are fetched, as the sidecar fetches them).
    #[arg(long)]
    jwt: Option<String>,
    /// Read resources from these files instead of the control plane.
    #[arg(short = 'f', long = "filename")]
    files: Vec<std::path::PathBuf>,
    /// Control plane address.
    #[arg(long)]
    server: Option<String>,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .ok_or(format!("header {s:?} is not name=value"))
}

fn resources(args: &AuthzArgs) -> anyhow::Result<Vec<Resource>> {
    if !args.files.is_empty() {
        let loaded = crate::input::load(&args.files)?.loaded;
        if loaded.has_errors() {
            bail!("the files have errors; run `weft validate -f` on them");
        }
        return Ok(loaded.resources.into_iter().map(|l| l.resource).collect());
    }
    let server = client::server(args.server.as_deref());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(client::list(&server, &weft_api::Kind::ALL))
}

/// Runs `weft check`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let What::Authz(a) = &args.what;
    let all = resources(a)?;
    let host = weft_model::host::resolve(&a.to, &a.namespace);
    // The destination workloads: the labels the service's ServiceEntry selects.
    let entry = all
        .iter()
        .find_map(|r| match r {
            Resource::ServiceEntry(se)
                if se
                    .spec
                    .hosts
                    .iter()
                    .any(|h| weft_model::host::resolve(h, se.metadata.namespace()) == host) =>
            {
                Some(se)
            }
            _ => None,
        })
        .with_context(|| format!("no ServiceEntry declares {host}"))?;
    let labels: BTreeMap<String, String> = entry
        .spec
        .workload_selector
        .as_ref()
        .map(|s| s.labels.clone())
        .unwrap_or_default();
    let scope = weft_model::ProxyScope {
        namespace: entry.metadata.namespace().to_string(),
        labels: labels.clone(),
        gateway: false,
    };
    let authz = weft_model::authz::build(&all, &scope);
    let principal = a.from.as_ref().map(|from| {
        let (ns, sa) = from.split_once('/').unwrap_or((&a.namespace, from));
        format!("{}/ns/{ns}/sa/{sa}", a.trust_domain)
    });
    let how = weft_model::authz::path::Normalization::parse(&a.path_normalization).with_context(
        || {
            format!(
                "--path-normalization {:?}: use NONE, BASE, MERGE_SLASHES or DECODE_AND_MERGE_SLASHES",
                a.path_normalization
            )
        },
    )?;
    let path = weft_model::authz::path::normalize(&a.path, how)
        .map_err(|e| anyhow::anyhow!("path {:?} is refused by the proxy: {e:?}", a.path))?;
    let port = a
        .port
        .or_else(|| {
            entry
                .spec
                .ports
                .first()
                .and_then(|p| u16::try_from(p.number).ok())
        })
        .unwrap_or(80);
    let headers = MapHeaders(a.headers.iter().cloned().collect());
    let auth = match &a.jwt {
        None => None,
        Some(token) => match authenticate(&all, &scope, token) {
            Ok(auth) => auth,
            Err(code) => return Ok(code),
        },
    };
    let request = AuthzRequest {
        principal: principal.as_deref(),
        source_ip: a.source_ip,
        remote_ip: a.source_ip,
        destination_ip: None,
        destination_port: port,
        sni: None,
        http: Some(HttpAttributes {
            host: &host,
            method: &a.method,
            path: &path,
            headers: &headers,
            auth: auth.as_ref(),
        }),
    };
    println!(
        "{} {}{} on {host}:{port} (workloads {labels:?} in {}), from {}",
        a.method,
        path,
        if path == a.path {
            String::new()
        } else {
            format!(" (normalized from {})", a.path)
        },
        scope.namespace,
        principal
            .as_deref()
            .unwrap_or("a caller without mTLS identity"),
    );
    if principal.is_some() {
        println!(
            "  (the caller is taken as proven by mutual TLS; until weft's sidecars run mTLS, they see no identity and identity rules do not match)"
        );
    }
    let outcomes = authz.explain(&request);
    if outcomes.is_empty() {
        println!("  no AuthorizationPolicy applies");
    }
    for o in &outcomes {
        println!(
            "  {:<5} {} rule {}: {}",
            o.action,
            o.policy,
            o.rule,
            match &o.why {
                None => "matches".to_string(),
                Some(why) => format!("no match: {why}"),
            }
        );
    }
    match authz.custom_provider(&request) {
        Some(Ok(provider)) => println!(
            "  CUSTOM: the sidecar asks extension provider {provider} first; its denial is the answer, its allow goes on to DENY and ALLOW below"
        ),
        Some(Err(why)) => {
            println!("DENIED (403): {why}");
            return Ok(ExitCode::from(1));
        }
        None => {}
    }
    let verdict = authz.decide(&request);
    let reason = match (&verdict.policy, verdict.allowed) {
        (Some(p), false) => format!("DENY policy {p} matched"),
        (None, false) => "ALLOW policies apply and none matched".to_string(),
        (Some(p), true) => format!("ALLOW policy {p} matched and no DENY did"),
        (None, true) => "no DENY matched and no ALLOW policy applies".to_string(),
    };
    println!(
        "{}: {reason}",
        if verdict.allowed {
            "ALLOWED"
        } else {
            "DENIED (403)"
        }
    );
    Ok(if verdict.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The token as `Authorization: Bearer`.
struct Bearer(String);

impl weft_model::authn::TokenSource for Bearer {
    fn header(&self, name: &str) -> Option<String> {
        (name == "authorization").then(|| format!("Bearer {}", self.0))
    }

    fn query(&self) -> Option<&str> {
        None
    }
}

/// Shows the token's claims and verifies it as the destination's sidecar would: the
/// verified identity, or the refusal (401/403) as the exit code.
fn authenticate(
    all: &[Resource],
    scope: &weft_model::ProxyScope,
    token: &str,
) -> Result<Option<weft_model::authn::RequestAuth>, ExitCode> {
    use base64::Engine as _;
    use weft_model::authn::Outcome;
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    match &claims {
        Some(c) => println!(
            "token claims (before verification): {}",
            serde_json::to_string(c).unwrap_or_default()
        ),
        None => println!("token: its payload is not base64url JSON"),
    }
    let authn = weft_model::authn::build(all, scope);
    if authn.is_empty() {
        println!(
            "  no RequestAuthentication applies: the token is not read, the request is unauthenticated"
        );
        return Ok(None);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut fetched = std::collections::HashMap::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|_| ExitCode::from(2))?;
    for p in &authn.providers {
        if let weft_model::authn::KeySource::Remote { uri, timeout } = &p.keys {
            match runtime.block_on(weft_proxy::jwks::fetch(uri, *timeout)) {
                Ok(keys) => {
                    fetched.insert(uri.clone(), std::sync::Arc::new(keys));
                }
                Err(e) => println!("  keys of {}: {e}", p.policy),
            }
        }
    }
    let lookup = |uri: &str| fetched.get(uri).cloned();
    match authn.authenticate(&Bearer(token.to_string()), &lookup, now) {
        Outcome::Authenticated(ok) => {
            println!("  verified: request principal {}", ok.auth.principal);
            Ok(Some(ok.auth))
        }
        Outcome::Unauthenticated => {
            println!(
                "  the RequestAuthentications read no Authorization header: the request is unauthenticated"
            );
            Ok(None)
        }
        Outcome::Refused { error, location } => {
            println!(
                "REFUSED ({}): {error}, token in the {location}",
                error.status()
            );
            Err(ExitCode::from(1))
        }
    }
}
