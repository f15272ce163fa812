//! `weft apply`, `weft get`, `weft delete`: kubectl-like commands on the control plane's
//! resources.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use http::{Method, StatusCode};
use serde_json::Value;
use weft_api::Resource;

use crate::client::{self, call, parse_kind, path};
use crate::input;

/// Arguments of `weft apply`.
#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Files or directories (recursively), `-` for standard input.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Control plane address (default: WEFT_SERVER, else 127.0.0.1:15014).
    #[arg(long)]
    server: Option<String>,
}

/// Arguments of `weft get`.
#[derive(clap::Args)]
pub struct GetArgs {
    /// Resource type: vs, dr, se, gw, sidecar, we, pa, ap (or full names).
    kind: String,
    /// One resource's name.
    name: Option<String>,
    /// Namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output: table (default), wide, yaml or json.
    #[arg(short = 'o', long)]
    output: Option<String>,
    /// Control plane address.
    #[arg(long)]
    server: Option<String>,
}

/// Arguments of `weft delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// Resource type and name (`weft delete vs reviews`), unless -f is given.
    args: Vec<String>,
    /// Delete the resources in these files.
    #[arg(short = 'f', long = "filename", num_args = 1..)]
    files: Vec<PathBuf>,
    /// Namespace (with a type and name).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Control plane address.
    #[arg(long)]
    server: Option<String>,
}

/// Prints rows as kubectl does: left-aligned columns three spaces apart.
fn print_table(rows: &[Vec<String>]) {
    let Some(first) = rows.first() else { return };
    let widths: Vec<usize> = (0..first.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// `kind.group/name`, as kubectl names a resource.
fn display_name(r: &Resource) -> String {
    format!(
        "{}/{}",
        r.kind().qualify(&r.kind().name().to_ascii_lowercase()),
        r.name()
    )
}

/// Sends every resource of the files: created, configured or unchanged.
pub fn apply(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let inputs = input::load(&args.files)?;
    for d in &inputs.loaded.diagnostics {
        eprintln!("{d}");
    }
    if inputs.loaded.has_errors() {
        eprintln!("error: nothing applied: the files have errors");
        return Ok(ExitCode::from(1));
    }
    let server = client::server(args.server.as_deref());
    let mut failed = false;
    runtime()?.block_on(async {
        for located in &inputs.loaded.resources {
            let r = &located.resource;
            let body = serde_json::to_vec(r)?;
            let item = path(r.kind(), Some(r.namespace()), Some(r.name()));
            let existing = call(&server, Method::GET, &item, None).await?;
            let answer = if existing.status == StatusCode::NOT_FOUND {
                call(
                    &server,
                    Method::POST,
                    &path(r.kind(), Some(r.namespace()), None),
                    Some(body),
                )
                .await?
            } else {
                call(&server, Method::PUT, &item, Some(body)).await?
            };
            if answer.status.is_success() {
                println!(
                    "{} {}",
                    display_name(r),
                    answer.result.as_deref().unwrap_or("configured")
                );
            } else {
                failed = true;
                eprintln!(
                    "error: {}: {} ({})",
                    display_name(r),
                    answer.message(),
                    answer.status
                );
            }
        }
        anyhow::Ok(())
    })?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Deletes the resources of the files, or one named resource.
pub fn delete(args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    let server = client::server(args.server.as_deref());
    let mut targets: Vec<(weft_api::Kind, String, String)> = Vec::new();
    if args.files.is_empty() {
        let [kind, name] = args.args.as_slice() else {
            anyhow::bail!("usage: weft delete KIND NAME [-n NS], or weft delete -f FILE");
        };
        targets.push((parse_kind(kind)?, args.namespace.clone(), name.clone()));
    } else {
        let inputs = input::load(&args.files)?;
        targets.extend(inputs.loaded.resources.iter().map(|l| {
            (
                l.resource.kind(),
                l.resource.namespace().to_string(),
                l.resource.name().to_string(),
            )
        }));
    }
    let mut failed = false;
    runtime()?.block_on(async {
        for (kind, ns, name) in &targets {
            let answer = call(
                &server,
                Method::DELETE,
                &path(*kind, Some(ns), Some(name)),
                None,
            )
            .await?;
            let shown = format!("{}/{name}", kind.qualify(&kind.name().to_ascii_lowercase()));
            if answer.status.is_success() {
                println!("{shown} deleted");
            } else {
                failed = true;
                eprintln!("error: {shown}: {}", answer.message());
            }
        }
        anyhow::Ok(())
    })?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Lists or shows resources.
pub fn get(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let kind = parse_kind(&args.kind)?;
    let server = client::server(args.server.as_deref());
    let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
    let answer = runtime()?.block_on(call(
        &server,
        Method::GET,
        &path(kind, namespace, args.name.as_deref()),
        None,
    ))?;
    if !answer.status.is_success() {
        eprintln!(
            "Error from server ({}): {}",
            answer.status.canonical_reason().unwrap_or(""),
            answer.message()
        );
        return Ok(ExitCode::from(1));
    }
    let items: Vec<Value> = match (&args.name, answer.body.get("items")) {
        (None, Some(Value::Array(items))) => items.clone(),
        _ => vec![answer.body.clone()],
    };
    match args.output.as_deref() {
        Some("json") => println!("{}", serde_json::to_string_pretty(&answer.body)?),
        Some("yaml") => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                print!("{}", crate::yaml::to_yaml(item));
            }
        }
        Some("wide") | None => {
            if items.is_empty() {
                eprintln!(
                    "No resources found{}.",
                    namespace
                        .map(|ns| format!(" in {ns} namespace"))
                        .unwrap_or_default()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let wide = args.output.as_deref() == Some("wide");
            let mut rows = vec![{
                let mut h = Vec::new();
                if args.all_namespaces {
                    h.push("NAMESPACE".to_string());
                }
                h.extend(["NAME".to_string(), "AGE".to_string()]);
                if wide {
                    h.extend(["GENERATION".to_string(), "RESOURCE VERSION".to_string()]);
                }
                h
            }];
            for item in &items {
                let meta = &item["metadata"];
                let text = |v: &Value| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                };
                let mut row = Vec::new();
                if args.all_namespaces {
                    row.push(text(&meta["namespace"]));
                }
                row.push(text(&meta["name"]));
                row.push(
                    meta["creationTimestamp"]
                        .as_str()
                        .map(crate::yaml::age)
                        .unwrap_or_else(|| "-".into()),
                );
                if wide {
                    row.push(text(&meta["generation"]));
                    row.push(text(&meta["resourceVersion"]));
                }
                rows.push(row);
            }
            print_table(&rows);
        }
        Some(other) => anyhow::bail!("unknown output format {other:?}; use wide, yaml or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `weft proxy-status`.
#[derive(clap::Args)]
pub struct ProxyStatusArgs {
    /// Control plane address.
    #[arg(long)]
    server: Option<String>,
}

/// Lists the proxies connected to the control plane: version ACKed, last NACK and why.
pub fn proxy_status(args: &ProxyStatusArgs) -> anyhow::Result<ExitCode> {
    let server = client::server(args.server.as_deref());
    let proxies = match runtime()?.block_on(crate::client::proxies(&server)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut rows = vec![
        [
            "NAME",
            "NAMESPACE",
            "ACKED VERSION",
            "SYNCED",
            "PUSHES",
            "CONNECTED SINCE",
            "LAST NACK",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for p in &proxies {
        rows.push(vec![
            p.id.clone(),
            p.namespace.clone(),
            or_dash(&p.acked_version),
            if p.in_sync() { "SYNCED" } else { "STALE" }.into(),
            p.pushes.to_string(),
            p.connected_since.clone(),
            or_dash(&p.last_nack),
        ]);
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `weft proxy-config`.
#[derive(clap::Args)]
pub struct ProxyConfigArgs {
    /// What to show: routes, clusters, endpoints or all.
    #[arg(value_parser = ["routes", "clusters", "endpoints", "all"])]
    what: String,
    /// The proxy (its id, or a unique part of it, as `weft proxy-status` lists).
    proxy: String,
    /// Control plane address.
    #[arg(long)]
    server: Option<String>,
}

/// Shows a connected proxy's configuration, read from its admin port.
pub fn proxy_config(args: &ProxyConfigArgs) -> anyhow::Result<ExitCode> {
    let server = client::server(args.server.as_deref());
    runtime()?.block_on(async {
        let list = client::proxies(&server).await?;
        let matching: Vec<_> = list.iter().filter(|p| p.id == args.proxy || p.id.contains(&args.proxy)).collect();
        let proxy = match matching.as_slice() {
            [one] => *one,
            [] => anyhow::bail!("no connected proxy matches {:?} (see weft proxy-status)", args.proxy),
            _ => anyhow::bail!("{:?} matches several proxies; give more of the id", args.proxy),
        };
        let admin = proxy.admin.as_deref().ok_or_else(|| anyhow::anyhow!("the proxy did not report an admin address"))?;
        let dump = call(admin, Method::GET, "/config_dump", None).await?;
        let view = match args.what.as_str() {
            "routes" => serde_json::json!({"http": dump.body["mesh"]["http_routes"], "l4": dump.body["mesh"]["l4"]}),
            "clusters" => {
                let mut clusters = dump.body["mesh"]["clusters"].clone();
                if let Some(map) = clusters.as_object_mut() {
                    for c in map.values_mut() {
                        if let Some(o) = c.as_object_mut() {
                            o.remove("endpoints");
                        }
                    }
                }
                clusters
            }
            "endpoints" => call(admin, Method::GET, "/clusters", None).await?.body,
            _ => dump.body,
        };
        println!("{}", serde_json::to_string_pretty(&view)?);
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Arguments of `weft describe`.
#[derive(clap::Args)]
pub struct DescribeArgs {
    /// What to describe: `service` (or `svc`) or `workload`.
    #[arg(value_parser = ["service", "svc", "workload"])]
    what: String,
    /// The service (short name, `name.namespace` or FQDN), or the workload's name.
    name: String,
    /// The namespace the name is read in (as a client there sees it).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Control plane address.
    #[arg(long)]
    server: Option<String>,
}

/// Describes a service as the mesh sees it: ports, routes and weights, subsets and their
/// endpoints (with labels and health), policies in force, and the proxies that have it.
pub fn describe(args: &DescribeArgs) -> anyhow::Result<ExitCode> {
    if args.what == "workload" {
        return describe_workload(args);
    }
    let server = client::server(args.server.as_deref());
    runtime()?.block_on(async {
        let resources = client::list(&server, &weft_api::Kind::ALL).await?;
        let scope = weft_model::ProxyScope { namespace: args.namespace.clone(), ..Default::default() };
        let mesh = weft_model::build(&resources, &scope).map_err(|e| anyhow::anyhow!("{e}"))?;
        let hostname = weft_model::host::resolve(&args.name, &args.namespace);
        let Some(service) = mesh.services.get(&hostname) else {
            eprintln!("Error: no service {hostname} is visible from namespace {} (declare it with a ServiceEntry)", args.namespace);
            return Ok(ExitCode::from(1));
        };
        let proxies = call(&server, Method::GET, "/debug/proxies", None).await?.body["proxies"].as_array().cloned().unwrap_or_default();
        let mut health: std::collections::BTreeMap<(String, String), String> = std::collections::BTreeMap::new();
        for p in &proxies {
            let Some(admin) = p["admin"].as_str() else { continue };
            let Ok(clusters) = call(admin, Method::GET, "/clusters", None).await else { continue };
            for c in clusters.body["clusters"].as_array().cloned().unwrap_or_default() {
                for e in c["endpoints"].as_array().cloned().unwrap_or_default() {
                    let key = (c["name"].as_str().unwrap_or_default().to_string(), e["address"].as_str().unwrap_or_default().to_string());
                    health.entry(key).or_insert_with(|| e["health"].as_str().unwrap_or("unknown").to_string());
                }
            }
        }
        println!("Service:     {}", service.hostname);
        println!("Declared by: ServiceEntry {} (resolution {:?})", service.source, service.resolution);
        let ports: Vec<String> = service.ports.iter().map(|p| format!("{} {}/{:?}", p.number, p.name, p.protocol)).collect();
        println!("Ports:       {}", ports.join(", "));
        for port in &service.ports {
            let Some(table) = mesh.http_routes.get(&port.number) else { continue };
            let Some(vh) = table.virtual_hosts.iter().find(|v| v.name == format!("{}:{}", service.hostname, port.number)) else { continue };
            println!("Routes on port {}:", port.number);
            for route in &vh.routes {
                let conditions = if route.matches.is_empty() { "every request".to_string() } else { format!("{} match entr{}", route.matches.len(), if route.matches.len() == 1 { "y" } else { "ies" }) };
                let action = match &*route.action {
                    weft_model::route::RouteAction::Forward(f) => f
                        .clusters
                        .entries
                        .iter()
                        .map(|e| format!("{} {}%", e.cluster, u64::from(e.weight) * 100 / u64::from(f.clusters.total.max(1))))
                        .collect::<Vec<_>>()
                        .join(", "),
                    weft_model::route::RouteAction::Redirect(r) => format!("redirect {}", r.status),
                    weft_model::route::RouteAction::DirectResponse(d) => format!("direct response {}", d.status),
                };
                println!("  {} ({}): {conditions} → {action}", route.name, route.source.as_deref().unwrap_or("default"));
            }
        }
        println!("Clusters:");
        for c in mesh.clusters.values().filter(|c| c.service == service.hostname) {
            let p = &c.policy;
            println!("  {}  lb {:?}, connect timeout {:?}{}{}", c.name, p.load_balancer, p.pool.connect_timeout,
                if p.outlier.is_some() { ", outlier detection" } else { "" },
                p.pool.max_connections.map(|m| format!(", maxConnections {m}")).unwrap_or_default());
            for e in &c.endpoints {
                let address = match &e.address {
                    weft_model::service::EndpointAddress::Ip(ip) => format!("{ip}:{}", e.port),
                    weft_model::service::EndpointAddress::Dns(h) => format!("{h}:{}", e.port),
                    weft_model::service::EndpointAddress::Unix(p) => format!("unix://{p}"),
                };
                let labels: Vec<String> = e.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let h = health.get(&(c.name.to_string(), address.clone())).map_or("no proxy reports it", String::as_str);
                println!("    {address}  [{}]  {h}", labels.join(","));
            }
        }
        let ids: Vec<&str> = proxies.iter().filter_map(|p| p["id"].as_str()).collect();
        println!("Proxies connected: {}", if ids.is_empty() { "none".to_string() } else { ids.join(", ") });
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Describes a workload: its registration and labels, its identity and certificate, and
/// the AuthorizationPolicies, RequestAuthentications, PeerAuthentications and RateLimits
/// that apply to it.
fn describe_workload(args: &DescribeArgs) -> anyhow::Result<ExitCode> {
    let server = client::server(args.server.as_deref());
    runtime()?.block_on(async {
        let resources = client::list(&server, &weft_api::Kind::ALL).await?;
        // Registered workloads live with their proxies' connections, not in the store.
        let node = weft_proto::node_id(false, &args.name, &args.namespace);
        let proxies = call(&server, Method::GET, "/debug/proxies", None).await?;
        let registered = proxies.body["proxies"]
            .as_array()
            .and_then(|list| list.iter().find(|p| p["id"] == node.as_str()).cloned())
            .map(|p| p["workload"].clone())
            .filter(|w| !w.is_null());
        let entry = registered
            .map(|w| weft_api::load_str("server", &w.to_string()).resources)
            .and_then(|r| r.into_iter().next())
            .map(|l| l.resource)
            .or_else(|| {
                resources.iter().find(|r| {
                    matches!(r, Resource::WorkloadEntry(w) if w.metadata.name == args.name && w.metadata.namespace() == args.namespace)
                }).cloned()
            });
        let Some(Resource::WorkloadEntry(entry)) = entry else {
            eprintln!(
                "Error: no workload {}/{} is registered (its sidecar registers it with --address) or declared by a WorkloadEntry",
                args.namespace, args.name
            );
            return Ok(ExitCode::from(1));
        };
        let sa = entry.spec.service_account.clone().unwrap_or_else(|| "default".into());
        println!("Workload:        {}/{}", args.namespace, args.name);
        println!("Address:         {}", entry.spec.address);
        println!("Labels:          {:?}", entry.spec.labels);
        println!("Service account: {sa}");
        let certs = call(&server, Method::GET, "/debug/certificates", None).await?;
        let issued: Vec<weft_control::ca::Issued> = match certs.body.get("certificates") {
            Some(list) => serde_json::from_value(list.clone())?,
            None => Vec::new(),
        };
        match issued.into_iter().find(|c| c.node_id == node) {
            Some(c) => {
                let not_after = c.not_after;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
                println!("Identity:        {}", c.identity);
                println!(
                    "Certificate:     expires in {}s (at {not_after} s since the epoch; renewed at 80 % of its life)",
                    not_after - now
                );
            }
            None => println!(
                "Identity:        none issued (the proxy has no CA token, or has not asked yet)"
            ),
        }
        let scope = weft_model::ProxyScope {
            namespace: args.namespace.clone(),
            labels: entry.spec.labels.clone(),
            gateway: false,
        };
        let authz = weft_model::authz::build(&resources, &scope);
        println!("AuthorizationPolicies:");
        let mut any = false;
        for (action, list) in [("DENY", &authz.deny), ("ALLOW", &authz.allow), ("AUDIT", &authz.audit)] {
            for p in list {
                println!("  {action:<5} {}", p.name);
                any = true;
            }
        }
        if !any {
            println!("  none (every request is allowed)");
        }
        let authn = weft_model::authn::build(&resources, &scope);
        println!("End-user JWTs (RequestAuthentication):");
        if authn.is_empty() {
            println!("  none (tokens are not read)");
        }
        for p in &authn.providers {
            let keys = match &p.keys {
                weft_model::authn::KeySource::Inline(k) => format!("{} inline key(s)", k.len()),
                weft_model::authn::KeySource::Remote { uri, .. } => format!("keys from {uri}"),
            };
            let issuer = if p.issuer.is_empty() { "any issuer" } else { p.issuer.as_str() };
            println!("  {} {issuer}, {keys}", p.policy);
        }
        // Resolved as the sidecar resolves it: workload over namespace over mesh-wide.
        let peer = weft_model::peer_authn::PeerPolicies::new(&resources)
            .resolve(&args.namespace, &entry.spec.labels);
        let mode = |m: weft_model::peer_authn::Mode| match m {
            weft_model::peer_authn::Mode::Strict => "STRICT (mTLS only)",
            weft_model::peer_authn::Mode::Permissive => "PERMISSIVE (mTLS and plaintext)",
            weft_model::peer_authn::Mode::Disable => "DISABLE (plaintext only)",
        };
        println!("Mutual TLS:      {}", mode(peer.mode));
        for (port, m) in &peer.ports {
            println!("  port {port}:     {}", mode(*m));
        }
        if peer.policies.is_empty() {
            println!("  from no PeerAuthentication (Istio's default)");
        } else {
            println!("  from PeerAuthentications (most specific first): {}", peer.policies.join(", "));
        }
        let limits = weft_model::rate_limit::build(&resources, &scope);
        println!("RateLimits:");
        if limits.is_empty() {
            println!("  none");
        }
        for l in limits {
            println!("  {} {} per {:?} (+{} burst)", l.name, l.requests, l.interval, l.burst);
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
