//! Gateway API routes for the mesh (GAMMA): the HTTPRoutes attached to a Service become
//! that Service's routes on a sidecar, in the order the spec requires.
//!
//! - Which routes apply: those whose `parentRefs` name the Service (kind `Service`, group
//!   `""`), on every port or the one `port` names. A route in the Service's namespace
//!   (a producer route) applies to every client; a route in another namespace (a consumer
//!   route) only to clients of its namespace. `hostnames` are not used for Service parents
//!   (GAMMA: "SHOULD NOT infer any functionality from hostnames").
//! - Once a route is attached, it decides: requests no rule matches get 404; a
//!   VirtualService for the same host is not used on that port (the route wins, and
//!   `weft analyze` is the place to tell; see docs/gateway-api.md).
//! - Precedence among every (rule, match) of the attached routes: an Exact path, then the
//!   longest path, then a method, then the most headers, then the most query parameters;
//!   ties go to the oldest route, then namespace/name, then rule and match order.
//! - `backendRefs` split by weight; a backend that is not a Service of the registry answers
//!   500 for its share, as the spec requires, and so does a rule without backends (or whose
//!   weights are all 0) that no filter answers.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use weft_api::Object;
use weft_api::gateway_api::ReferenceGrant;
use weft_api::gateway_api::grpc_route::{GrpcMethodMatch, GrpcRouteRule};
use weft_api::gateway_api::http_route::{
    GROUP, HttpBackendRef, HttpCorsFilter, HttpPathMatch, HttpRoute, HttpRouteFilter,
    HttpRouteMatch, HttpRouteRetry, HttpRouteRule, ParentReference, PathModifier, parse_duration,
};
use weft_api::gateway_api::l4_route::L4RouteRule;
use weft_api::{Resource, ResourceRef};

use super::mesh::cluster_name;
use super::scope::age;
use crate::host;
use crate::matcher::{NamedMatcher, Regex, RequestMatch, StringMatcher};
use crate::route::{
    Cors, DirectResponse, Forward, HeaderOps, HeaderRules, Mirror, PathRewrite, Redirect,
    RedirectPort, RetryOn, RetryPolicy, Rewrite, Route, RouteAction, WeightedCluster,
    WeightedClusters,
};
use crate::service::Service;

/// The HTTPRoutes attached to `service` on `port`, as seen by a client in `client_ns`,
/// oldest first.
pub fn attached<'r>(
    routes: &[&'r Object<HttpRoute>],
    service: &Service,
    port: u16,
    client_ns: &str,
) -> Vec<&'r Object<HttpRoute>> {
    let mut out: Vec<&Object<HttpRoute>> = routes
        .iter()
        .copied()
        .filter(|r| {
            let route_ns = r.metadata.namespace();
            r.spec.parent_refs.iter().any(|p| {
                let ns = p.namespace.as_deref().unwrap_or(route_ns);
                p.is_service()
                    && service.hostname == host::resolve(&p.name, ns)
                    && p.port.is_none_or(|n| n == u32::from(port))
                    // A consumer route (another namespace) applies to its own clients only.
                    && (route_ns == ns || route_ns == client_ns)
            })
        })
        .collect();
    out.sort_by_key(|r| age(r));
    out
}

/// A Gateway API route of any kind in HTTPRoute's shape, `kind`, metadata and status
/// kept; `None` for other resources. An HTTPRoute is itself. A GRPCRoute's method match
/// is a path match on `/service/method` (both given: the exact path; one: a regular
/// expression with the other any name); headers match gRPC metadata; filters and
/// backends are the same. A TCPRoute's or TLSRoute's rules are their backends only (with
/// a TLSRoute's `hostnames`, the SNI names).
pub fn as_http_route(r: &Resource) -> Option<Cow<'_, Object<HttpRoute>>> {
    let backends_only = |rules: &[L4RouteRule]| -> Vec<HttpRouteRule> {
        rules
            .iter()
            .map(|rule| HttpRouteRule {
                name: rule.name.clone(),
                backend_refs: rule.backend_refs.clone(),
                ..HttpRouteRule::default()
            })
            .collect()
    };
    Some(match r {
        Resource::HttpRoute(h) => Cow::Borrowed(h),
        Resource::GrpcRoute(g) => Cow::Owned(reshaped(
            g,
            &g.spec.parent_refs,
            &g.spec.hostnames,
            g.spec.rules.iter().map(grpc_rule).collect(),
        )),
        Resource::TcpRoute(t) => Cow::Owned(reshaped(
            t,
            &t.spec.parent_refs,
            &[],
            backends_only(&t.spec.rules),
        )),
        Resource::TlsRoute(t) => Cow::Owned(reshaped(
            t,
            &t.spec.parent_refs,
            &t.spec.hostnames,
            backends_only(&t.spec.rules),
        )),
        _ => return None,
    })
}

/// Every route of `resources` in HTTPRoute's shape ([`as_http_route`]): what attaches to
/// Gateways.
pub fn all_routes(resources: &[Resource]) -> Vec<Cow<'_, Object<HttpRoute>>> {
    resources.iter().filter_map(as_http_route).collect()
}

/// The HTTPRoutes and GRPCRoutes of `resources` in HTTPRoute's shape: what attaches to
/// Services (the mesh routes HTTP and gRPC).
pub fn http_and_grpc_routes(resources: &[Resource]) -> Vec<Cow<'_, Object<HttpRoute>>> {
    resources
        .iter()
        .filter(|r| matches!(r, Resource::HttpRoute(_) | Resource::GrpcRoute(_)))
        .filter_map(as_http_route)
        .collect()
}

/// `o`'s type fields, metadata and status around an HTTPRoute spec.
fn reshaped<S>(
    o: &Object<S>,
    parent_refs: &[ParentReference],
    hostnames: &[String],
    rules: Vec<HttpRouteRule>,
) -> Object<HttpRoute> {
    Object {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        metadata: o.metadata.clone(),
        spec: HttpRoute {
            parent_refs: parent_refs.to_vec(),
            hostnames: hostnames.to_vec(),
            rules,
        },
        status: o.status.clone(),
    }
}

/// A GRPCRoute rule as the HTTPRoute rule that routes the same calls.
fn grpc_rule(r: &GrpcRouteRule) -> HttpRouteRule {
    HttpRouteRule {
        name: r.name.clone(),
        matches: r
            .matches
            .iter()
            .map(|m| HttpRouteMatch {
                path: m.method.as_ref().map(grpc_path),
                headers: m.headers.clone(),
                grpc_precedence: Some(m.method.as_ref().map_or((0, 0), |mm| {
                    (
                        mm.service.as_deref().map_or(0, str::len),
                        mm.method.as_deref().map_or(0, str::len),
                    )
                })),
                ..HttpRouteMatch::default()
            })
            .collect(),
        filters: r.filters.clone(),
        backend_refs: r.backend_refs.clone(),
        ..HttpRouteRule::default()
    }
}

/// The path condition of a gRPC method match.
fn grpc_path(m: &GrpcMethodMatch) -> HttpPathMatch {
    let any = "[^/]+";
    // A fully qualified name may start with a dot; the call's path does not.
    let service = m.service.as_deref().map(|s| {
        if m.is_regex() {
            s
        } else {
            s.trim_start_matches('.')
        }
    });
    let (kind, value) = match (m.is_regex(), service, &m.method) {
        (false, Some(s), Some(method)) => ("Exact", format!("/{s}/{method}")),
        (false, s, method) => (
            "RegularExpression",
            format!(
                "/{}/{}",
                s.map_or(any.to_string(), regex::escape),
                method.as_deref().map_or(any.to_string(), regex::escape)
            ),
        ),
        (true, s, method) => (
            "RegularExpression",
            format!(
                "/(?:{})/(?:{})",
                s.unwrap_or(any),
                method.as_deref().unwrap_or(any)
            ),
        ),
    };
    HttpPathMatch {
        kind: Some(kind.into()),
        value: Some(value),
    }
}

/// What a route's backends resolve against: the registry's Services, the ReferenceGrants
/// allowing cross-namespace references, and the retry policy of routes without their own.
pub struct Backends<'r> {
    /// Services by host name.
    pub services: &'r BTreeMap<String, Service>,
    /// Every ReferenceGrant.
    pub grants: Vec<&'r Object<ReferenceGrant>>,
    /// Istio's default retries.
    pub default_retry: &'r RetryPolicy,
}

impl<'r> Backends<'r> {
    /// The backends context of `resources`.
    pub fn new(
        resources: &'r [Resource],
        services: &'r BTreeMap<String, Service>,
        default_retry: &'r RetryPolicy,
    ) -> Backends<'r> {
        Backends {
            services,
            grants: resources
                .iter()
                .filter_map(|r| match r {
                    Resource::ReferenceGrant(g) => Some(g),
                    _ => None,
                })
                .collect(),
            default_retry,
        }
    }

    /// True when a route of `kind` (HTTPRoute, GRPCRoute) in `route_ns` may refer to
    /// Service `name` in `ns`: the same namespace, or a ReferenceGrant in `ns` allowing it.
    pub fn permitted(&self, (kind, route_ns): (&str, &str), ns: &str, name: &str) -> bool {
        route_ns == ns
            || self.grants.iter().any(|g| {
                g.metadata.namespace() == ns
                    && g.spec
                        .allows((GROUP, kind, route_ns), ("", "Service", name))
            })
    }
}

/// Who refers to what, for a finding: the route and why its backend does not resolve.
pub fn unresolved_backends(
    route: &Object<HttpRoute>,
    backends: &Backends<'_>,
) -> Vec<(ResourceRef, String)> {
    let ns = route.metadata.namespace();
    route
        .spec
        .rules
        .iter()
        .flat_map(|r| &r.backend_refs)
        .filter_map(|b| backend_cluster(b, route, backends).err())
        .map(|why| {
            (
                ResourceRef {
                    kind: route.kind.clone(),
                    namespace: ns.into(),
                    name: route.metadata.name.clone(),
                },
                why,
            )
        })
        .collect()
}

/// The routes of `attached` (oldest first) for a Service port, in the spec's precedence.
pub fn routes(attached: &[&Object<HttpRoute>], backends: &Backends<'_>) -> Vec<Route> {
    let mut keyed: Vec<(Precedence, Route)> = Vec::new();
    for r in attached {
        let ns = r.metadata.namespace();
        let id = format!("{ns}/{}", r.metadata.name);
        let default_rule = [HttpRouteRule::default()];
        let rules = if r.spec.rules.is_empty() {
            &default_rule[..]
        } else {
            &r.spec.rules
        };
        for (i, rule) in rules.iter().enumerate() {
            let name = rule
                .name
                .clone()
                .unwrap_or_else(|| format!("{id} rules[{i}]"));
            let default_match = [HttpRouteMatch::default()];
            let matches = if rule.matches.is_empty() {
                &default_match[..]
            } else {
                &rule.matches
            };
            for m in matches {
                let Some(compiled) = request_match(m) else {
                    continue;
                };
                let action = action(rule, r, backends);
                keyed.push((
                    Precedence::of(m),
                    Route {
                        name: name.clone(),
                        source: Some(format!("{} {id}", r.kind)),
                        matches: vec![compiled],
                        action: Arc::new(action),
                    },
                ));
            }
        }
    }
    // Stable: equal keys keep the routes' age, rule and match order.
    keyed.sort_by_key(|(key, _)| std::cmp::Reverse(*key));
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// The spec's ordering, larger first: Exact over prefix, longer paths, a method, more
/// headers, more query parameters; for GRPCRoute matches first the characters of the
/// service matched, then of the method (zero for HTTPRoute's), then the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Precedence {
    grpc: (usize, usize),
    exact: bool,
    path_len: usize,
    method: bool,
    headers: usize,
    query: usize,
}

impl Precedence {
    fn of(m: &HttpRouteMatch) -> Precedence {
        let path = m.path.as_ref();
        Precedence {
            grpc: m.grpc_precedence.unwrap_or_default(),
            exact: path.is_some_and(|p| p.kind() == "Exact"),
            path_len: path.map_or(1, |p| p.value().len()),
            method: m.method.is_some(),
            headers: m.headers.len(),
            query: m.query_params.len(),
        }
    }
}

/// A match entry as the router's; `None` when a regular expression does not compile
/// (validation refuses those).
fn request_match(m: &HttpRouteMatch) -> Option<RequestMatch> {
    let uri = match m.path.as_ref() {
        None => None,
        Some(p) => match p.kind() {
            "Exact" => Some(StringMatcher::Exact(p.value().to_string())),
            "RegularExpression" => Some(StringMatcher::Regex(Regex::whole(p.value()).ok()?)),
            _ => match p.value().trim_end_matches('/') {
                "" => None,
                prefix => Some(StringMatcher::SegmentPrefix(prefix.to_string())),
            },
        },
    };
    let named = |name: String, value: &str, regex: bool| -> Option<NamedMatcher> {
        Some(NamedMatcher {
            name,
            matcher: if regex {
                StringMatcher::Regex(Regex::whole(value).ok()?)
            } else {
                StringMatcher::Exact(value.to_string())
            },
        })
    };
    // The first of several conditions on one header name wins (the spec's rule).
    let mut headers: Vec<NamedMatcher> = Vec::new();
    for h in &m.headers {
        let name = h.name.to_ascii_lowercase();
        if headers.iter().all(|x| x.name != name) {
            headers.push(named(name, &h.value, h.is_regex())?);
        }
    }
    let mut query_params: Vec<NamedMatcher> = Vec::new();
    for q in &m.query_params {
        if query_params.iter().all(|x| x.name != q.name) {
            query_params.push(named(q.name.clone(), &q.value, q.is_regex())?);
        }
    }
    Some(RequestMatch {
        uri,
        method: m.method.clone().map(StringMatcher::Exact),
        headers,
        query_params,
        ..RequestMatch::default()
    })
}

fn header_ops(filters: &[HttpRouteFilter], response: bool) -> HeaderOps {
    let mut ops = HeaderOps::default();
    for f in filters {
        let m = if response {
            f.response_header_modifier.as_ref()
        } else {
            f.request_header_modifier.as_ref()
        };
        if let Some(m) = m {
            let pairs = |list: &[weft_api::gateway_api::http_route::HttpHeader]| {
                list.iter()
                    .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
                    .collect::<Vec<_>>()
            };
            ops.set.extend(pairs(&m.set));
            ops.add.extend(pairs(&m.add));
            ops.remove
                .extend(m.remove.iter().map(|n| n.to_ascii_lowercase()));
        }
    }
    ops
}

fn path_rewrite(p: &PathModifier) -> Option<PathRewrite> {
    match p.kind.as_str() {
        // A whole-path replacement is a regex over the whole path.
        "ReplaceFullPath" => Some(PathRewrite::Regex {
            pattern: Regex::whole(".*").ok()?,
            substitution: p.replace_full_path.clone().unwrap_or_default(),
        }),
        "ReplacePrefixMatch" => Some(PathRewrite::Prefix(
            p.replace_prefix_match.clone().unwrap_or_default(),
        )),
        _ => None,
    }
}

fn status(code: u16, why: &str) -> RouteAction {
    RouteAction::DirectResponse(DirectResponse {
        status: code,
        body: format!("{why}\n").into_bytes(),
        headers: HeaderOps::default(),
    })
}

fn action(rule: &HttpRouteRule, route: &Object<HttpRoute>, backends: &Backends<'_>) -> RouteAction {
    if let Some(r) = rule
        .filters
        .iter()
        .find_map(|f| f.request_redirect.as_ref())
    {
        let (path, prefix_rewrite) = match &r.path {
            Some(p) if p.kind == "ReplaceFullPath" => (p.replace_full_path.clone(), None),
            Some(p) => (None, p.replace_prefix_match.clone()),
            None => (None, None),
        };
        // Without a port: the scheme's own when the scheme changes, else the request's.
        let port = match (r.port.and_then(|p| u16::try_from(p).ok()), &r.scheme) {
            (Some(p), _) => RedirectPort::Fixed(p),
            (None, Some(_)) => RedirectPort::FromProtocolDefault,
            (None, None) => RedirectPort::FromRequestPort,
        };
        return RouteAction::Redirect(Redirect {
            path,
            prefix_rewrite,
            authority: r.hostname.clone(),
            port: Some(port),
            scheme: r.scheme.clone(),
            status: r.status_code.unwrap_or(302),
            headers: HeaderOps::default(),
        });
    }
    let clusters = weighted_backends(route, rule, backends);
    if clusters.total == 0 {
        return status(
            500,
            "no backend: the HTTPRoute rule has no backendRefs with weight",
        );
    }
    let rewrite = rule
        .filters
        .iter()
        .find_map(|f| f.url_rewrite.as_ref())
        .map(|r| Rewrite {
            path: r.path.as_ref().and_then(path_rewrite),
            authority: r.hostname.clone(),
        });
    let timeouts = rule.timeouts.as_ref();
    let request = timeouts
        .and_then(|t| t.request.as_deref())
        .and_then(|t| parse_duration(t).ok())
        .filter(|d| !d.is_zero());
    let mut retry = match &rule.retry {
        Some(r) => retry_policy(r, backends.default_retry),
        None => backends.default_retry.clone(),
    };
    if let Some(per_try) = timeouts
        .and_then(|t| t.backend_request.as_deref())
        .and_then(|t| parse_duration(t).ok())
        .filter(|d| !d.is_zero())
    {
        retry.per_try_timeout = Some(per_try);
    }
    RouteAction::Forward(Forward {
        clusters,
        rewrite,
        timeout: request,
        retry,
        fault: None,
        // Copies to a backend that does not resolve are not sent (no answer is awaited).
        mirrors: rule
            .filters
            .iter()
            .filter_map(|f| f.request_mirror.as_ref())
            .filter_map(|m| {
                Some(Mirror {
                    cluster: backend_cluster(&m.backend_ref, route, backends)
                        .ok()?
                        .into(),
                    per_million: m.per_million(),
                })
            })
            .filter(|m| m.per_million > 0)
            .collect(),
        headers: HeaderRules {
            request: header_ops(&rule.filters, false),
            response: header_ops(&rule.filters, true),
        },
        cors: rule.filters.iter().find_map(|f| f.cors.as_ref()).map(cors),
    })
}

/// A rule's `retry` (GEP-1731) as a retry policy: `attempts` retries (Istio's default
/// count when absent; 0: none) of connection failures, refused streams and the listed
/// `codes`, `backoff` apart (25 ms by default).
fn retry_policy(r: &HttpRouteRetry, default: &RetryPolicy) -> RetryPolicy {
    let mut retry_on = vec![RetryOn::ConnectFailure, RetryOn::RefusedStream];
    if !r.codes.is_empty() {
        retry_on.push(RetryOn::RetriableStatusCodes);
    }
    RetryPolicy {
        attempts: r.attempts.unwrap_or(default.attempts),
        retry_on,
        retriable_status_codes: r.codes.clone(),
        backoff: r
            .backoff
            .as_deref()
            .and_then(|b| parse_duration(b).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(default.backoff),
        explicit: true,
        ..default.clone()
    }
}

/// The CORS filter as the router's policy: `*` allows every origin; a `*.` host matches
/// any subdomain (a regular expression over the origin).
fn cors(c: &HttpCorsFilter) -> Cors {
    let origin = |o: &String| {
        if o == "*" {
            return StringMatcher::Present;
        }
        match o.split_once("://*.") {
            Some((scheme, rest)) => Regex::whole(&format!(
                "{}://[^/]+\\.{}",
                regex::escape(scheme),
                regex::escape(rest)
            ))
            .map(StringMatcher::Regex)
            .unwrap_or_else(|_| StringMatcher::Exact(o.clone())),
            None => StringMatcher::Exact(o.clone()),
        }
    };
    Cors {
        allow_origins: c.allow_origins.iter().map(origin).collect(),
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age_secs: Some(c.max_age.unwrap_or(5)),
        allow_credentials: c.allow_credentials.unwrap_or(false),
        forward_unmatched_preflights: false,
    }
}

/// The weighted backends of `rule` (of `route`); a backend that does not resolve keeps
/// its weight, marked with why, and the proxy answers its share with 500 (HTTP) or
/// refuses it (TCP, TLS), as the spec requires. Weight 0 takes no share.
pub fn weighted_backends(
    route: &Object<HttpRoute>,
    rule: &HttpRouteRule,
    backends: &Backends<'_>,
) -> WeightedClusters {
    let entries: Vec<WeightedCluster> = rule
        .backend_refs
        .iter()
        .filter(|b| b.weight() > 0)
        .map(|b| {
            let (cluster, unresolved) = match backend_cluster(b, route, backends) {
                Ok(cluster) => (cluster.into(), None),
                Err(why) => (Arc::from(""), Some(why.into())),
            };
            WeightedCluster {
                cluster,
                weight: b.weight(),
                // The backend's own header modifiers: on the requests sent to it and on
                // their responses.
                headers: HeaderRules {
                    request: header_ops(&b.filters, false),
                    response: header_ops(&b.filters, true),
                },
                unresolved,
            }
        })
        .collect();
    let total = entries.iter().map(|e| e.weight).sum();
    WeightedClusters { entries, total }
}

/// The cluster of a backend: `outbound|port||name.ns.svc.cluster.local` when the registry
/// has that Service and port, else why it does not resolve (with the spec's reason).
fn backend_cluster(
    b: &HttpBackendRef,
    route: &Object<HttpRoute>,
    backends: &Backends<'_>,
) -> Result<String, String> {
    let route_ns = route.metadata.namespace();
    let ns = b.namespace.as_deref().unwrap_or(route_ns);
    if !b.is_service() {
        return Err(format!(
            "{} {}/{} is not a Service (InvalidKind)",
            b.kind.as_deref().unwrap_or("Service"),
            ns,
            b.name
        ));
    }
    if !backends.permitted((&route.kind, route_ns), ns, &b.name) {
        return Err(format!(
            "Service {ns}/{} is in another namespace and no ReferenceGrant there allows it (RefNotPermitted)",
            b.name
        ));
    }
    let host = host::resolve(&b.name, ns);
    let port = b.port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
    match backends.services.get(&host) {
        Some(s) if s.port(port).is_some() => Ok(cluster_name(port, None, &host)),
        Some(_) => Err(format!(
            "Service {ns}/{} has no port {port} (BackendNotFound)",
            b.name
        )),
        None => Err(format!(
            "Service {ns}/{} not found (BackendNotFound)",
            b.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Request;

    const NO_HEADERS: &[(&str, &str)] = &[];

    fn req<'a>(path: &'a str, method: &'a str) -> Request<'a, [(&'a str, &'a str)]> {
        Request {
            authority: "svc",
            path,
            method,
            scheme: "http",
            headers: NO_HEADERS,
        }
    }

    #[test]
    fn path_prefix_matches_whole_segments() {
        let m = StringMatcher::SegmentPrefix("/foo".into());
        assert!(m.matches("/foo", false));
        assert!(m.matches("/foo/bar", false));
        assert!(!m.matches("/foobar", false));
        assert!(!m.matches("/fo", false));
    }

    #[test]
    fn grpc_matches_order_by_service_then_method_characters_then_headers() {
        // GRPCRoute's precedence: the service's characters first, so a service-only match
        // beats a method-only one, however long the method's name; then the method's;
        // then the headers.
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g, namespace: default}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: g}]\n  rules:\n  - name: method-only\n    matches: [{method: {method: SayHelloWithAVeryLongName}}]\n  - name: headers-only\n    matches: [{headers: [{name: x-a, value: b}]}]\n  - name: service-only\n    matches: [{method: {service: e.E}}]\n  - name: exact\n    matches: [{method: {service: e.E, method: Say}}]\n  - name: exact-with-header\n    matches: [{method: {service: e.E, method: Say}, headers: [{name: x-a, value: b}]}]\n";
        let resources: Vec<Resource> = weft_api::load_str("g.yaml", yaml)
            .resources
            .into_iter()
            .map(|r| r.resource)
            .collect();
        let route = as_http_route(&resources[0]).expect("a route");
        let services = BTreeMap::new();
        let retry = RetryPolicy::istio_default();
        let backends = Backends::new(&resources, &services, &retry);
        let order: Vec<String> = routes(&[route.as_ref()], &backends)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(
            order,
            [
                "exact-with-header",
                "exact",
                "service-only",
                "method-only",
                "headers-only"
            ]
        );
    }

    #[test]
    fn precedence_puts_exact_then_longer_then_method_headers_query_first() {
        let yaml = |p: &str, method: Option<&str>, headers: usize| HttpRouteMatch {
            path: Some(weft_api::gateway_api::http_route::HttpPathMatch {
                kind: Some(p.split(':').next().unwrap_or_default().into()),
                value: Some(p.split(':').nth(1).unwrap_or("/").into()),
            }),
            method: method.map(String::from),
            headers: (0..headers)
                .map(|i| weft_api::gateway_api::http_route::HttpHeaderMatch {
                    name: format!("h{i}"),
                    value: "v".into(),
                    kind: None,
                })
                .collect(),
            ..HttpRouteMatch::default()
        };
        let mut keys = [
            Precedence::of(&yaml("PathPrefix:/", None, 0)),
            Precedence::of(&yaml("PathPrefix:/a", Some("GET"), 0)),
            Precedence::of(&yaml("PathPrefix:/a", None, 2)),
            Precedence::of(&yaml("PathPrefix:/longer", None, 0)),
            Precedence::of(&yaml("Exact:/a", None, 0)),
        ];
        keys.sort_by(|a, b| b.cmp(a));
        assert!(keys[0].exact);
        assert_eq!(keys[1].path_len, 7);
        assert!(keys[2].method, "a method beats headers on the same path");
        assert_eq!(keys[3].headers, 2);
        assert_eq!(keys[4].path_len, 1);
        let m = request_match(&yaml("PathPrefix:/a/", None, 0)).expect("compiles");
        assert!(m.matches(&req("/a/b?x=1", "GET")) && !m.matches(&req("/ab", "GET")));
    }

    #[test]
    fn prefix_replacement_follows_the_specs_table() {
        let rewrite = |replacement: &str, prefix: &str, path: &str| {
            Rewrite {
                path: Some(PathRewrite::Prefix(replacement.into())),
                authority: None,
            }
            .apply_path(
                path,
                Some(&RequestMatch {
                    uri: Some(StringMatcher::SegmentPrefix(prefix.into())),
                    ..RequestMatch::default()
                }),
            )
            .expect("rewritten")
        };
        assert_eq!(rewrite("/xyz", "/foo", "/foo/bar"), "/xyz/bar");
        assert_eq!(rewrite("/xyz/", "/foo", "/foo/bar"), "/xyz/bar");
        assert_eq!(rewrite("/xyz", "/foo", "/foo"), "/xyz");
        assert_eq!(rewrite("/", "/foo", "/foo/bar"), "/bar");
        assert_eq!(rewrite("/", "/foo", "/foo"), "/");
        assert_eq!(rewrite("", "/foo", "/foo"), "/");
        assert_eq!(rewrite("/xyz", "/foo", "/foo/bar?q=1"), "/xyz/bar?q=1");
    }
}
