//! What a matched HTTP route does: forward to weighted clusters (with rewrite, timeout,
//! retries, fault, mirrors, header operations and CORS), redirect, or answer directly.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use weft_api::networking::virtual_service::{self as vs, HttpRoute};
use weft_api::networking::{Destination, Percent};
use weft_api::validate::checks::GRPC_STATUS_NAMES;

use super::mesh::cluster_name;
use crate::host;
use crate::matcher::{Regex, StringMatcher};
use crate::route::*;
use crate::service::Service;

fn per_million(p: Option<&Percent>, deprecated: Option<i64>, absent: u32) -> u32 {
    match (p, deprecated) {
        (Some(p), _) => (p.value * 10_000.0).round().clamp(0.0, f64::from(MILLION)) as u32,
        (None, Some(n)) => u32::try_from(n.clamp(0, 100) * 10_000).unwrap_or(MILLION),
        (None, None) => absent,
    }
}

/// The cluster a destination names, as seen from a rule in namespace `ns` on `port`.
fn destination_cluster(
    d: &Destination,
    ns: &str,
    port: u16,
    services: &BTreeMap<String, Service>,
) -> Arc<str> {
    let hostname = host::resolve(&d.host, ns);
    let port = match d.port {
        Some(p) => u16::try_from(p.number).unwrap_or(port),
        None => match services.get(&hostname).map(|s| s.ports.as_slice()) {
            Some([only]) => only.number,
            _ => port,
        },
    };
    cluster_name(port, d.subset.as_deref(), &hostname).into()
}

fn header_ops(ops: Option<&vs::HeaderOperations>) -> HeaderOps {
    let Some(ops) = ops else {
        return HeaderOps::default();
    };
    let pairs = |m: &BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    };
    HeaderOps {
        set: pairs(&ops.set),
        add: pairs(&ops.add),
        remove: ops.remove.iter().map(|h| h.to_ascii_lowercase()).collect(),
    }
}

fn header_rules(h: Option<&vs::Headers>) -> HeaderRules {
    HeaderRules {
        request: header_ops(h.and_then(|h| h.request.as_ref())),
        response: header_ops(h.and_then(|h| h.response.as_ref())),
    }
}

/// The action of `rule`, a rule of a VirtualService in namespace `ns`, on `port`.
pub(super) fn action(
    rule: &HttpRoute,
    ns: &str,
    port: u16,
    services: &BTreeMap<String, Service>,
    default_retry: &RetryPolicy,
) -> Result<RouteAction, String> {
    let headers = header_rules(rule.headers.as_ref());
    if let Some(r) = &rule.redirect {
        return Ok(RouteAction::Redirect(Redirect {
            path: r.uri.clone(),
            prefix_rewrite: r.prefix_rewrite.clone(),
            authority: r.authority.clone(),
            port: match (r.port, r.derive_port) {
                (Some(p), _) => Some(RedirectPort::Fixed(
                    u16::try_from(p).map_err(|_| format!("redirect port {p} out of range"))?,
                )),
                (None, Some(vs::RedirectPortSelection::FromProtocolDefault)) => {
                    Some(RedirectPort::FromProtocolDefault)
                }
                (None, Some(vs::RedirectPortSelection::FromRequestPort)) => {
                    Some(RedirectPort::FromRequestPort)
                }
                (None, None) => None,
            },
            scheme: r.scheme.clone(),
            status: r
                .redirect_code
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(301),
            headers: headers.response,
        }));
    }
    if let Some(d) = &rule.direct_response {
        let body = match d.body.as_ref() {
            Some(b) => match (&b.string, &b.bytes) {
                (Some(s), _) => s.clone().into_bytes(),
                (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| format!("directResponse.body.bytes is not valid base64: {e}"))?,
                (None, None) => Vec::new(),
            },
            None => Vec::new(),
        };
        return Ok(RouteAction::DirectResponse(DirectResponse {
            status: u16::try_from(d.status)
                .map_err(|_| "directResponse.status out of range".to_string())?,
            body,
            headers: headers.response,
        }));
    }
    if rule.route.is_empty() {
        return Err("the rule has no route, redirect or directResponse".into());
    }
    let single = rule.route.len() == 1;
    let entries: Vec<WeightedCluster> = rule
        .route
        .iter()
        .filter(|d| single || d.weight > 0)
        .map(|d| WeightedCluster {
            cluster: destination_cluster(&d.destination, ns, port, services),
            weight: if single { 100 } else { d.weight.unsigned_abs() },
            headers: header_rules(d.headers.as_ref()),
            unresolved: None,
        })
        .collect();
    let total = entries.iter().map(|e| e.weight).sum();
    let mut mirrors = Vec::new();
    if let Some(m) = &rule.mirror {
        let share = per_million(
            rule.mirror_percentage.as_ref(),
            rule.mirror_percent.map(i64::from),
            MILLION,
        );
        mirrors.push(Mirror {
            cluster: destination_cluster(m, ns, port, services),
            per_million: share,
        });
    }
    for m in &rule.mirrors {
        let share = per_million(m.percentage.as_ref(), None, MILLION);
        mirrors.push(Mirror {
            cluster: destination_cluster(&m.destination, ns, port, services),
            per_million: share,
        });
    }
    mirrors.retain(|m| m.per_million > 0);
    Ok(RouteAction::Forward(Forward {
        clusters: WeightedClusters { entries, total },
        rewrite: rule.rewrite.as_ref().map(rewrite).transpose()?,
        timeout: rule
            .timeout
            .map(weft_api::Duration::get)
            .filter(|d| !d.is_zero()),
        retry: match &rule.retries {
            Some(r) => retry(r),
            None => default_retry.clone(),
        },
        fault: rule.fault.as_ref().map(fault),
        mirrors,
        headers,
        cors: rule.cors_policy.as_ref().map(cors).transpose()?,
    }))
}

fn rewrite(r: &vs::HttpRewrite) -> Result<Rewrite, String> {
    let path = match (&r.uri, &r.uri_regex_rewrite) {
        (Some(uri), _) => Some(PathRewrite::Prefix(uri.clone())),
        // Envoy's regex rewrite substitutes every match within the path, so the pattern is not anchored.
        (None, Some(re)) => Some(PathRewrite::Regex {
            pattern: Regex::unanchored(&re.pattern)?,
            substitution: re.rewrite.clone(),
        }),
        (None, None) => None,
    };
    Ok(Rewrite {
        path,
        authority: r.authority.clone(),
    })
}

/// The policy `r` writes (a VirtualService's `retries`, or the mesh config's
/// `defaultHttpRetryPolicy`): `attempts: 0` turns retries off; no `retryOn` means
/// Istio's default conditions.
pub(crate) fn retry(r: &vs::HttpRetry) -> RetryPolicy {
    if r.attempts <= 0 {
        return RetryPolicy {
            explicit: true,
            ..RetryPolicy::disabled()
        };
    }
    let mut retry_on = Vec::new();
    let mut codes = Vec::new();
    for token in r
        .retry_on
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        if let Ok(code) = token.parse::<u16>() {
            codes.push(code);
        } else if let Some(cond) = RetryOn::parse(token) {
            retry_on.push(cond);
        }
    }
    if retry_on.is_empty() && codes.is_empty() {
        retry_on = DEFAULT_RETRY_ON.to_vec();
    }
    if !codes.is_empty() && !retry_on.contains(&RetryOn::RetriableStatusCodes) {
        retry_on.push(RetryOn::RetriableStatusCodes);
    }
    RetryPolicy {
        attempts: r.attempts.unsigned_abs(),
        per_try_timeout: r.per_try_timeout.map(weft_api::Duration::get),
        retry_on,
        retriable_status_codes: codes,
        backoff: r.backoff.map_or(
            std::time::Duration::from_millis(25),
            weft_api::Duration::get,
        ),
        retry_ignore_previous_hosts: r.retry_ignore_previous_hosts.unwrap_or(true),
        explicit: true,
    }
}

fn fault(f: &vs::HttpFaultInjection) -> Fault {
    Fault {
        delay: f.delay.as_ref().and_then(|d| {
            Some(DelayFault {
                delay: d.fixed_delay?.get(),
                per_million: per_million(d.percentage.as_ref(), d.percent.map(i64::from), 0),
            })
        }),
        abort: f.abort.as_ref().and_then(|a| {
            let status = match (a.http_status, &a.grpc_status) {
                (Some(code), _) => AbortStatus::Http(u16::try_from(code).ok()?),
                (None, Some(name)) => AbortStatus::Grpc(
                    u32::try_from(GRPC_STATUS_NAMES.iter().position(|n| n == name)?).ok()?,
                ),
                (None, None) => return None,
            };
            Some(AbortFault {
                status,
                per_million: per_million(a.percentage.as_ref(), a.percent.map(i64::from), 0),
            })
        }),
    }
}

fn cors(c: &vs::CorsPolicy) -> Result<Cors, String> {
    let mut allow_origins: Vec<StringMatcher> = c
        .allow_origin
        .iter()
        .map(|o| StringMatcher::Exact(o.clone()))
        .collect();
    for m in &c.allow_origins {
        allow_origins.push(StringMatcher::compile(m, false)?);
    }
    Ok(Cors {
        allow_origins,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age_secs: c.max_age.map(|d| d.get().as_secs()),
        allow_credentials: c.allow_credentials == Some(true),
        forward_unmatched_preflights: c.unmatched_preflights
            != Some(vs::UnmatchedPreflights::Ignore),
    })
}
