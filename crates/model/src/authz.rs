//! AuthorizationPolicy, as Istio evaluates it on the server side (a sidecar's inbound
//! traffic, a gateway's traffic): the policies that apply to the proxy are compiled once
//! per configuration; each request is then decided in Istio's order —
//! DENY (any match denies), then ALLOW (when any ALLOW policy applies, a request must
//! match one), AUDIT alongside.
//!
//! Identity fields (`principals`, `namespaces`, `serviceAccounts`, `trustDomains`,
//! `source.principal`, `source.trustDomain`)
//! need a peer proven by mutual TLS; without one they hold no value, as in Istio.
//! `requestPrincipals` and `request.auth.*` read the token RequestAuthentication verified
//! ([`crate::authn`]); without one they hold no value.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
use weft_api::security::authorization_policy::{
    Action, AuthorizationPolicy, Condition, Operation, Rule as ApiRule, Source,
};
use weft_api::{Object, Resource};

use crate::authn::RequestAuth;
use crate::matcher::RequestHeaders;
use crate::translate::scope::{ProxyScope, ROOT_NAMESPACE};

pub mod path;
#[cfg(test)]
mod tests;

/// A string pattern as Istio writes them: exact, `prefix*`, `*suffix`, or `*` (any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Pattern {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// Anything (present).
    Any,
}

impl Pattern {
    fn new(text: &str, lower: bool) -> Pattern {
        let text = if lower {
            text.to_ascii_lowercase()
        } else {
            text.to_string()
        };
        if text == "*" {
            Pattern::Any
        } else if let Some(p) = text.strip_suffix('*') {
            Pattern::Prefix(p.to_string())
        } else if let Some(s) = text.strip_prefix('*') {
            Pattern::Suffix(s.to_string())
        } else {
            Pattern::Exact(text)
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(e) => value == e,
            Pattern::Prefix(p) => value.starts_with(p.as_str()),
            Pattern::Suffix(s) => value.ends_with(s.as_str()),
            Pattern::Any => true,
        }
    }
}

/// Values of one field, and the values it must not have.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Field<T> {
    any_of: Vec<T>,
    none_of: Vec<T>,
}

impl<T> Default for Field<T> {
    fn default() -> Self {
        Field {
            any_of: Vec::new(),
            none_of: Vec::new(),
        }
    }
}

impl<T> Field<T> {
    fn is_set(&self) -> bool {
        !self.any_of.is_empty() || !self.none_of.is_empty()
    }

    /// Matches when `value` matches one of `any_of` (if any) and none of `none_of`; a
    /// missing value matches no `any_of` and no `none_of`.
    fn check<V: ?Sized>(&self, value: Option<&V>, m: impl Fn(&T, &V) -> bool) -> bool {
        let hit = |list: &[T]| value.is_some_and(|v| list.iter().any(|p| m(p, v)));
        (self.any_of.is_empty() || hit(&self.any_of)) && !hit(&self.none_of)
    }

    /// As [`Field::check`] for an attribute with several values (a list claim): one value
    /// must match `any_of`, and none may match `none_of`.
    fn check_each(&self, values: &[String], m: impl Fn(&T, &str) -> bool) -> bool {
        let hit = |list: &[T]| values.iter().any(|v| list.iter().any(|p| m(p, v)));
        (self.any_of.is_empty() || hit(&self.any_of)) && !hit(&self.none_of)
    }
}

fn patterns(any: &[String], none: &[String], lower: bool) -> Field<Pattern> {
    Field {
        any_of: any.iter().map(|s| Pattern::new(s, lower)).collect(),
        none_of: none.iter().map(|s| Pattern::new(s, lower)).collect(),
    }
}

/// An IP block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `::1`, `192.168.1.7`.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a: IpAddr = text.parse().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// True when `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn cidrs(any: &[String], none: &[String]) -> Field<Cidr> {
    Field {
        any_of: any.iter().filter_map(|s| Cidr::parse(s)).collect(),
        none_of: none.iter().filter_map(|s| Cidr::parse(s)).collect(),
    }
}

/// A compiled `from.source`.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct SourceMatch {
    principals: Field<Pattern>,
    request_principals: Field<Pattern>,
    namespaces: Field<Pattern>,
    service_accounts: Field<Pattern>,
    trust_domains: Field<Pattern>,
    ip_blocks: Field<Cidr>,
    remote_ip_blocks: Field<Cidr>,
}

/// A compiled `to.operation`.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct OperationMatch {
    hosts: Field<Pattern>,
    ports: Field<Pattern>,
    methods: Field<Pattern>,
    paths: Field<path::PathPattern>,
}

impl SourceMatch {
    /// JWT identities come with HTTP requests only.
    fn http_only(&self) -> bool {
        self.request_principals.is_set()
    }
}

impl OperationMatch {
    fn http_only(&self) -> bool {
        self.hosts.is_set() || self.methods.is_set() || self.paths.is_set()
    }
}

/// A compiled `when` condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct ConditionMatch {
    key: String,
    values: Field<Pattern>,
    ips: Field<Cidr>,
}

impl ConditionMatch {
    fn http_only(&self) -> bool {
        self.key.starts_with("request.")
    }
}

/// A compiled rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct RuleMatch {
    from: Vec<SourceMatch>,
    to: Vec<OperationMatch>,
    when: Vec<ConditionMatch>,
}

/// One policy that applies to the proxy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// `namespace/name`.
    pub name: String,
    rules: Vec<RuleMatch>,
}

/// The policies that apply to one proxy, by action.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Authz {
    /// DENY policies.
    pub deny: Vec<Policy>,
    /// ALLOW policies.
    pub allow: Vec<Policy>,
    /// AUDIT policies.
    pub audit: Vec<Policy>,
    /// CUSTOM policies, each with the extension provider it delegates to.
    pub custom: Vec<(Policy, String)>,
}

/// What the decision sees of a request or connection.
pub struct AuthzRequest<'a> {
    /// The peer's proven identity (`cluster.local/ns/<ns>/sa/<sa>`), with mutual TLS.
    pub principal: Option<&'a str>,
    /// The connection's source address.
    pub source_ip: IpAddr,
    /// The original client (first `X-Forwarded-For` entry), else `source_ip`.
    pub remote_ip: IpAddr,
    /// The address the client connected to.
    pub destination_ip: Option<IpAddr>,
    /// The port the request was sent to.
    pub destination_port: u16,
    /// TLS SNI.
    pub sni: Option<&'a str>,
    /// HTTP attributes; `None` for a TCP connection.
    pub http: Option<HttpAttributes<'a>>,
}

/// The HTTP part of a request.
pub struct HttpAttributes<'a> {
    /// Host (authority without port), lower case.
    pub host: &'a str,
    /// Method.
    pub method: &'a str,
    /// The normalized path (without query).
    pub path: &'a str,
    /// Headers.
    pub headers: &'a dyn RequestHeaders,
    /// The token RequestAuthentication verified, if any.
    pub auth: Option<&'a RequestAuth>,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Allowed?
    pub allowed: bool,
    /// The policy that decided (`ns/name`), if one did.
    pub policy: Option<String>,
    /// AUDIT policies that matched.
    pub audited: Vec<String>,
}

/// The policies of `resources` that apply to a proxy in `scope`.
pub fn build(resources: &[Resource], scope: &ProxyScope) -> Authz {
    let mut out = Authz::default();
    let mut policies: Vec<&Object<AuthorizationPolicy>> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::AuthorizationPolicy(p) => Some(p),
            _ => None,
        })
        .filter(|p| applies(p, scope))
        .collect();
    policies.sort_by_key(|p| crate::translate::scope::age(p));
    for p in policies {
        let compiled = Policy {
            name: format!("{}/{}", p.metadata.namespace(), p.metadata.name),
            rules: p
                .spec
                .rules
                .iter()
                .map(|r| rule(r, p.metadata.namespace()))
                .collect(),
        };
        match p.spec.action {
            Action::Deny => out.deny.push(compiled),
            Action::Allow => out.allow.push(compiled),
            Action::Audit => out.audit.push(compiled),
            Action::Custom => {
                let provider = p.spec.provider.as_ref().map(|x| x.name.clone());
                out.custom.push((compiled, provider.unwrap_or_default()));
            }
        }
    }
    out
}

/// Istio's scoping: a policy in the root namespace without selector applies mesh-wide;
/// one without selector applies to its namespace; a selector picks workloads of its
/// namespace. Policies attached with `targetRef(s)` are for waypoints and Gateway API
/// gateways, which weft does not run.
fn applies(p: &Object<AuthorizationPolicy>, scope: &ProxyScope) -> bool {
    if p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty() {
        return false;
    }
    let ns = p.metadata.namespace();
    match &p.spec.selector {
        None => ns == ROOT_NAMESPACE || ns == scope.namespace,
        Some(sel) if sel.match_labels.is_empty() => ns == ROOT_NAMESPACE || ns == scope.namespace,
        Some(sel) => {
            (ns == scope.namespace || ns == ROOT_NAMESPACE)
                && crate::translate::scope::selects(&sel.match_labels, &scope.labels)
        }
    }
}

fn source(s: &Source, policy_ns: &str) -> SourceMatch {
    // `serviceAccounts: [name]` is the service account in the policy's namespace.
    let accounts = |list: &[String]| -> Vec<String> {
        list.iter()
            .map(|a| match a.split_once('/') {
                Some(_) => a.clone(),
                None => format!("{policy_ns}/{a}"),
            })
            .collect()
    };
    SourceMatch {
        principals: patterns(&s.principals, &s.not_principals, false),
        request_principals: patterns(&s.request_principals, &s.not_request_principals, false),
        namespaces: patterns(&s.namespaces, &s.not_namespaces, false),
        service_accounts: patterns(
            &accounts(&s.service_accounts),
            &accounts(&s.not_service_accounts),
            false,
        ),
        trust_domains: patterns(&s.trust_domains, &s.not_trust_domains, false),
        ip_blocks: cidrs(&s.ip_blocks, &s.not_ip_blocks),
        remote_ip_blocks: cidrs(&s.remote_ip_blocks, &s.not_remote_ip_blocks),
    }
}

fn operation(o: &Operation) -> OperationMatch {
    OperationMatch {
        hosts: patterns(&o.hosts, &o.not_hosts, true),
        ports: patterns(&o.ports, &o.not_ports, false),
        methods: patterns(&o.methods, &o.not_methods, false),
        paths: Field {
            any_of: o.paths.iter().map(|p| path::PathPattern::new(p)).collect(),
            none_of: o
                .not_paths
                .iter()
                .map(|p| path::PathPattern::new(p))
                .collect(),
        },
    }
}

fn condition(c: &Condition) -> ConditionMatch {
    let ip_key = matches!(c.key.as_str(), "source.ip" | "remote.ip" | "destination.ip");
    ConditionMatch {
        key: c.key.clone(),
        values: if ip_key {
            Field::default()
        } else {
            patterns(&c.values, &c.not_values, false)
        },
        ips: if ip_key {
            cidrs(&c.values, &c.not_values)
        } else {
            Field::default()
        },
    }
}

fn rule(r: &ApiRule, policy_ns: &str) -> RuleMatch {
    RuleMatch {
        from: r
            .from
            .iter()
            .filter_map(|f| f.source.as_ref().map(|s| source(s, policy_ns)))
            .collect(),
        to: r
            .to
            .iter()
            .filter_map(|t| t.operation.as_ref().map(operation))
            .collect(),
        when: r.when.iter().map(condition).collect(),
    }
}

/// `cluster.local/ns/<ns>/sa/<sa>` → (`ns`, `ns/sa`).
fn identity(principal: &str) -> Option<(&str, String)> {
    let rest = principal.split_once("/ns/")?.1;
    let (ns, sa) = rest.split_once("/sa/")?;
    Some((ns, format!("{ns}/{sa}")))
}

/// The trust domain of a principal: `cluster.local` of `cluster.local/ns/<ns>/sa/<sa>`
/// (the SPIFFE ID's authority); `None` for an empty one.
pub fn trust_domain(principal: &str) -> Option<&str> {
    principal.split('/').next().filter(|td| !td.is_empty())
}

impl SourceMatch {
    fn matches(&self, r: &AuthzRequest<'_>) -> bool {
        // Split (and the `ns/sa` built) only for rules that name namespaces or accounts.
        let id = (self.namespaces.is_set() || self.service_accounts.is_set())
            .then(|| r.principal.and_then(identity))
            .flatten();
        let pat = |p: &Pattern, v: &str| p.matches(v);
        let ip = |c: &Cidr, v: &IpAddr| c.contains(*v);
        self.principals.check(r.principal, pat)
            && (r.http.is_none()
                || self.request_principals.check(
                    r.http
                        .as_ref()
                        .and_then(|h| h.auth)
                        .map(|a| a.principal.as_str()),
                    pat,
                ))
            && self.namespaces.check(id.as_ref().map(|(ns, _)| *ns), pat)
            && self
                .service_accounts
                .check(id.as_ref().map(|(_, sa)| sa.as_str()), pat)
            && self
                .trust_domains
                .check(r.principal.and_then(trust_domain), pat)
            && self.ip_blocks.check(Some(&r.source_ip), ip)
            && self.remote_ip_blocks.check(Some(&r.remote_ip), ip)
    }
}

impl OperationMatch {
    /// For TCP (`http` absent) the HTTP-only fields are skipped; the caller decides what
    /// a rule using them means there.
    fn matches(&self, r: &AuthzRequest<'_>) -> bool {
        let pat = |p: &Pattern, v: &str| p.matches(v);
        // The port is formatted only for rules that name ports.
        if self.ports.is_set()
            && !self
                .ports
                .check(Some(r.destination_port.to_string().as_str()), pat)
        {
            return false;
        }
        let Some(h) = &r.http else { return true };
        let host = h.host;
        self.hosts.check(Some(host), pat)
            && self.methods.check(Some(h.method), pat)
            && self.paths.check(Some(h.path), |p, v| p.matches(v))
    }
}

impl ConditionMatch {
    /// The attribute's values: none when absent, several for a list (audiences, list claims).
    fn values(&self, r: &AuthzRequest<'_>) -> Vec<String> {
        let key = self.key.as_str();
        if let Some(name) = key
            .strip_prefix("request.headers[")
            .and_then(|k| k.strip_suffix(']'))
        {
            return r
                .http
                .as_ref()
                .and_then(|h| h.headers.header(&name.to_ascii_lowercase()))
                .map(|v| v.into_owned())
                .into_iter()
                .collect();
        }
        if let Some(rest) = key.strip_prefix("request.auth.") {
            let Some(auth) = r.http.as_ref().and_then(|h| h.auth) else {
                return Vec::new();
            };
            return match rest {
                "principal" => vec![auth.principal.clone()],
                "audiences" => auth.audiences.clone(),
                "presenter" => auth.presenter.clone().into_iter().collect(),
                _ => match claim_path(rest) {
                    Some(path) => auth.claim(&path),
                    None => Vec::new(),
                },
            };
        }
        let one = match key {
            "source.ip" => Some(r.source_ip.to_string()),
            "remote.ip" => Some(r.remote_ip.to_string()),
            "destination.ip" => r.destination_ip.map(|ip| ip.to_string()),
            "destination.port" => Some(r.destination_port.to_string()),
            "source.principal" => r.principal.map(str::to_string),
            "source.namespace" => r.principal.and_then(identity).map(|(ns, _)| ns.to_string()),
            "source.serviceAccount" => r.principal.and_then(identity).map(|(_, sa)| sa),
            "source.trustDomain" => r.principal.and_then(trust_domain).map(str::to_string),
            "connection.sni" => r.sni.map(str::to_string),
            _ => None,
        };
        one.into_iter().collect()
    }

    fn matches(&self, r: &AuthzRequest<'_>) -> bool {
        let values = self.values(r);
        if self.ips.is_set() {
            return self
                .ips
                .check_each(&values, |c, v| v.parse().is_ok_and(|ip| c.contains(ip)));
        }
        self.values.check_each(&values, |p, v| p.matches(v))
    }
}

/// `claims[a]` or `claims[a][b]` → `[a, b]`.
fn claim_path(key: &str) -> Option<Vec<&str>> {
    let mut rest = key.strip_prefix("claims")?;
    let mut path = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let (name, after) = inner.split_once(']')?;
        if name.is_empty() {
            return None;
        }
        path.push(name);
        rest = after;
    }
    (!path.is_empty()).then_some(path)
}

impl RuleMatch {
    fn http_only(&self) -> bool {
        self.from.iter().any(SourceMatch::http_only)
            || self.to.iter().any(OperationMatch::http_only)
            || self.when.iter().any(ConditionMatch::http_only)
    }

    /// Whether the rule matches; on TCP, a rule with HTTP-only conditions never matches
    /// for ALLOW (`strict`) and ignores them for DENY, as Istio does.
    fn matches(&self, r: &AuthzRequest<'_>, deny: bool) -> bool {
        let tcp = r.http.is_none();
        if tcp && !deny && self.http_only() {
            return false;
        }
        (self.from.is_empty() || self.from.iter().any(|s| s.matches(r)))
            && (self.to.is_empty() || self.to.iter().any(|o| o.matches(r)))
            && self
                .when
                .iter()
                .all(|c| (tcp && c.http_only()) || c.matches(r))
    }
}

impl Policy {
    fn matches(&self, r: &AuthzRequest<'_>, deny: bool) -> bool {
        self.rules.iter().any(|rule| rule.matches(r, deny))
    }
}

/// How one rule of one policy fared, for `weft check authz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    /// `ALLOW`, `DENY` or `AUDIT`.
    pub action: &'static str,
    /// `namespace/name`.
    pub policy: String,
    /// Rule index.
    pub rule: usize,
    /// Whether it matched.
    pub matched: bool,
    /// Why not, when it did not.
    pub why: Option<String>,
}

impl RuleMatch {
    /// The first part of the rule that does not hold, if any.
    fn why_not(&self, r: &AuthzRequest<'_>, deny: bool) -> Option<String> {
        let tcp = r.http.is_none();
        if tcp && !deny && self.http_only() {
            return Some("an ALLOW rule with HTTP fields never matches TCP".into());
        }
        if !(self.from.is_empty() || self.from.iter().any(|s| s.matches(r))) {
            return Some("no `from` source matches (principals, namespaces, service accounts and trust domains need a peer proven by mTLS; requestPrincipals a token RequestAuthentication verified; ipBlocks the source address)".into());
        }
        if !(self.to.is_empty() || self.to.iter().any(|o| o.matches(r))) {
            return Some("no `to` operation matches (hosts, ports, methods, paths)".into());
        }
        self.when
            .iter()
            .find(|c| !((tcp && c.http_only()) || c.matches(r)))
            .map(|c| format!("condition {} does not hold", c.key))
    }
}

impl Authz {
    /// Every rule of every applicable policy, in evaluation order, with whether it matched.
    pub fn explain(&self, r: &AuthzRequest<'_>) -> Vec<RuleOutcome> {
        let mut out = Vec::new();
        let custom: Vec<Policy> = self.custom.iter().map(|(p, _)| p.clone()).collect();
        for (action, policies, deny) in [
            ("CUSTOM", &custom, false),
            ("DENY", &self.deny, true),
            ("ALLOW", &self.allow, false),
            ("AUDIT", &self.audit, false),
        ] {
            for p in policies {
                if p.rules.is_empty() {
                    out.push(RuleOutcome {
                        action,
                        policy: p.name.clone(),
                        rule: 0,
                        matched: false,
                        why: Some("the policy has no rules: it matches nothing".into()),
                    });
                }
                for (i, rule) in p.rules.iter().enumerate() {
                    let why = rule.why_not(r, deny);
                    out.push(RuleOutcome {
                        action,
                        policy: p.name.clone(),
                        rule: i,
                        matched: why.is_none(),
                        why,
                    });
                }
            }
        }
        out
    }

    /// True when no policy applies.
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty()
            && self.allow.is_empty()
            && self.audit.is_empty()
            && self.custom.is_empty()
    }

    /// The CUSTOM step, first in Istio's order: the extension provider to ask about `r`,
    /// when a CUSTOM policy matches it. Istio allows one provider per workload: with
    /// CUSTOM policies naming several, the answer is an error, and the request is denied.
    pub fn custom_provider(&self, r: &AuthzRequest<'_>) -> Option<Result<&str, String>> {
        let (policy, provider) = self.custom.iter().find(|(p, _)| p.matches(r, false))?;
        if let Some((other, name)) = self.custom.iter().find(|(_, n)| n != provider) {
            return Some(Err(format!(
                "CUSTOM policies {} and {} name different providers ({provider}, {name}); Istio allows one per workload",
                policy.name, other.name
            )));
        }
        Some(Ok(provider.as_str()))
    }

    /// Istio's order: any matching DENY denies; then, if ALLOW policies apply, one must
    /// match; AUDIT policies only mark.
    pub fn decide(&self, r: &AuthzRequest<'_>) -> Verdict {
        let audited = self
            .audit
            .iter()
            .filter(|p| p.matches(r, false))
            .map(|p| p.name.clone())
            .collect();
        if let Some(p) = self.deny.iter().find(|p| p.matches(r, true)) {
            return Verdict {
                allowed: false,
                policy: Some(p.name.clone()),
                audited,
            };
        }
        if self.allow.is_empty() {
            return Verdict {
                allowed: true,
                policy: None,
                audited,
            };
        }
        match self.allow.iter().find(|p| p.matches(r, false)) {
            Some(p) => Verdict {
                allowed: true,
                policy: Some(p.name.clone()),
                audited,
            },
            None => Verdict {
                allowed: false,
                policy: None,
                audited,
            },
        }
    }
}

/// A request's `when`/header attributes for tests and tools.
pub struct MapHeaders(pub BTreeMap<String, String>);

impl RequestHeaders for MapHeaders {
    fn header(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.0
            .get(name)
            .map(|v| std::borrow::Cow::Borrowed(v.as_str()))
    }
}
