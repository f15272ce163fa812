//! `AuthorizationPolicy`: which requests a workload, gateway or waypoint allows, denies, audits
//! or hands to an external authorizer.

use serde::{Deserialize, Serialize};

use super::peer_authentication::check_selector;
use crate::networking::WorkloadSelector;
use crate::validate::{Validate, Validator};

/// Most entries one `serviceAccounts` list (or `source.serviceAccount` condition) may hold.
pub const MAX_SERVICE_ACCOUNTS: usize = 16;
/// Longest service account entry accepted (characters).
pub const MAX_SERVICE_ACCOUNT_LEN: usize = 320;

/// Resources a policy may target, as (canonical group, kind); the core group is written `""` or `core`.
pub const TARGET_KINDS: &[(&str, &str)] = &[
    ("core", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

/// AuthorizationPolicy spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicy {
    /// Workloads the policy applies to; with no selector and no target, every workload in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A single targeted resource (superseded by `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Targeted resources (Gateways, Services, ServiceEntries); waypoints only honour policies that use this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Rules; a request matches the policy when any rule matches. No rules never match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// What to do with a matching request.
    #[serde(default)]
    pub action: Action,
    /// The external authorizer of a CUSTOM policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProvider>,
}

/// Istio's `PolicyTargetReference` (Gateway API GEP-713).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// API group of the target; empty for the core group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind of the target.
    #[serde(default)]
    pub kind: String,
    /// Name of the target.
    #[serde(default)]
    pub name: String,
    /// Namespace of the target; must be unset (the policy's own namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Istio's `AuthorizationPolicy.Action`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Allow matching requests; once any ALLOW policy applies, everything else is denied.
    #[default]
    Allow,
    /// Deny matching requests.
    Deny,
    /// Mark matching requests for audit; never changes the decision.
    Audit,
    /// Ask the extension provider about matching requests.
    Custom,
}

impl Action {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
            Action::Custom => "CUSTOM",
        }
    }
}

/// Istio's `AuthorizationPolicy.ExtensionProvider`.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProvider {
    /// Name of an extension provider declared in MeshConfig.
    #[serde(default)]
    pub name: String,
}

/// Istio's `Rule`: matches when one `from`, one `to` and every `when` match; `{}` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Sources, OR-ed; empty means any source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<RuleFrom>,
    /// Operations, OR-ed; empty means any operation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<RuleTo>,
    /// Conditions, AND-ed; empty means no condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// Istio's `Rule.From`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleFrom {
    /// The source to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// Istio's `Rule.To`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleTo {
    /// The operation to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// Istio's `Source`: fields are AND-ed, values within a field OR-ed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Peer identities from the client certificate (`<trust domain>/ns/<ns>/sa/<sa>`); needs mTLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Peer identities that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// JWT identities (`<iss>/<sub>`); needs RequestAuthentication.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    /// JWT identities that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    /// Namespaces of the peer identity; needs mTLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// Kubernetes service accounts (`name` or `namespace/name`, no wildcards); needs mTLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Service accounts that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
    /// Source addresses of the IP packet, as IPs or CIDR blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// Source addresses that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// Original client addresses (X-Forwarded-For or PROXY protocol), as IPs or CIDR blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    /// Original client addresses that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
    /// Trust domains of the peer identity (`<trust domain>` of `spiffe://<trust domain>/…`); needs mTLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
    /// Trust domains that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_trust_domains: Vec<String>,
}

/// Istio's `Operation`: fields are AND-ed, values within a field OR-ed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Request hosts (case-insensitive); HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Hosts that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Destination ports, as decimal strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Ports that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    /// Request methods (always `POST` for gRPC); HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Methods that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// Normalized request paths, possibly templates with `{*}` and `{**}`; HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Paths that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// Istio's `Condition`: an attribute and the values it must (or must not) have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Attribute name, e.g. `request.auth.claims[iss]` or `source.ip`.
    #[serde(default)]
    pub key: String,
    /// Values that match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Values that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

impl Source {
    /// True when the source matches on something a plain TCP connection carries.
    fn has_connection_attributes(&self) -> bool {
        [
            &self.principals,
            &self.not_principals,
            &self.namespaces,
            &self.not_namespaces,
            &self.service_accounts,
            &self.not_service_accounts,
            &self.ip_blocks,
            &self.not_ip_blocks,
            &self.remote_ip_blocks,
            &self.not_remote_ip_blocks,
            &self.trust_domains,
            &self.not_trust_domains,
        ]
        .iter()
        .any(|values| !values.is_empty())
    }
}

impl Rule {
    /// True when a DENY rule would match TCP traffic wholesale: Envoy cannot see HTTP attributes on
    /// TCP connections and treats them as matched in DENY rules.
    fn denies_all_tcp(&self) -> bool {
        let sources: Vec<&Source> = self.from.iter().filter_map(|f| f.source.as_ref()).collect();
        let operations: Vec<&Operation> = self
            .to
            .iter()
            .filter_map(|t| t.operation.as_ref())
            .collect();
        let tcp_in_from = sources.iter().any(|s| s.has_connection_attributes());
        let tcp_in_to = operations
            .iter()
            .any(|op| !op.ports.is_empty() || !op.not_ports.is_empty());
        (!sources.is_empty() && operations.is_empty() && !tcp_in_from)
            || (!operations.is_empty() && !tcp_in_to)
    }
}

/// A security policy's attachment: at most one of `selector`, `targetRef`, `targetRefs`,
/// each checked.
pub(crate) fn check_attachment(
    v: &mut Validator,
    selector: &Option<WorkloadSelector>,
    target_ref: &Option<PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    let set = [
        selector.is_some(),
        target_ref.is_some(),
        !target_refs.is_empty(),
    ];
    if set.iter().filter(|s| **s).count() > 1 {
        v.error("only one of selector, targetRef and targetRefs may be set");
    }
    if let Some(selector) = selector {
        v.field("selector", |v| check_selector(v, selector));
    }
    v.optional("targetRef", target_ref);
    v.list("targetRefs", target_refs);
}

/// The warning for a policy attached by `targetRef(s)`, which weft applies to nothing.
pub(crate) fn warn_target_refs(
    v: &mut Validator,
    target_ref: &Option<PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    if target_ref.is_some() || !target_refs.is_empty() {
        v.warn(
            "targetRef(s) attach a policy to waypoints or Gateway API gateways, which weft does not run: this policy applies to no workload (use selector)",
        );
    }
}

impl Validate for AuthorizationPolicy {
    fn validate(&self, v: &mut Validator) {
        check_attachment(v, &self.selector, &self.target_ref, &self.target_refs);

        match self.action {
            Action::Custom if self.rules.is_empty() => v.error_at(
                "rules",
                "a CUSTOM policy without rules never triggers; add an empty rule {} to send every request to the provider",
            ),
            Action::Custom => match &self.provider {
                None => v.error_at("provider", "action CUSTOM needs provider.name, an extension provider from MeshConfig"),
                Some(p) if p.name.is_empty() => v.error_at("provider.name", "provider name must not be empty"),
                Some(_) => {}
            },
            Action::Deny if self.rules.is_empty() => v.error_at(
                "rules",
                "a DENY policy without rules never triggers; add an empty rule {} to deny every request",
            ),
            _ => {}
        }
        warn_target_refs(v, &self.target_ref, &self.target_refs);
        if self.provider.is_some() && self.action != Action::Custom {
            v.error_at(
                "provider",
                format!(
                    "provider is only allowed with action CUSTOM (action is {})",
                    self.action.as_str()
                ),
            );
        }

        let action = self.action;
        v.each("rules", &self.rules, |v, r| rule(v, r, action));
    }
}

impl Validate for PolicyTargetReference {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error_at("name", "target name is required");
        }
        if self.namespace.as_deref().is_some_and(|ns| !ns.is_empty()) {
            v.error_at(
                "namespace",
                "cross-namespace targets are not supported; leave namespace unset",
            );
        }
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group.as_str()
        };
        if !TARGET_KINDS
            .iter()
            .any(|(g, k)| *g == group && *k == self.kind)
        {
            v.error_at(
                "kind",
                format!(
                    "unsupported target kind {:?} in group {:?}: use Service (group \"\"), ServiceEntry (networking.istio.io), Gateway or GatewayClass (gateway.networking.k8s.io)",
                    self.kind, self.group
                ),
            );
        }
    }
}

fn rule(v: &mut Validator, rule: &Rule, action: Action) {
    v.each("from", &rule.from, |v, from| match &from.source {
        None => v.error_at("source", "source is required in a from entry"),
        Some(src) => v.field("source", |v| source(v, src, action)),
    });
    v.each("to", &rule.to, |v, to| match &to.operation {
        None => v.error_at("operation", "operation is required in a to entry"),
        Some(op) => v.field("operation", |v| operation(v, op)),
    });
    v.each("when", &rule.when, |v, c| condition(v, c, action));
    if action == Action::Deny && rule.denies_all_tcp() {
        v.warn(
            "this DENY rule uses only HTTP attributes, so it also denies all traffic to TCP ports in the policy's scope; list the ports it is meant for",
        );
    }
}

fn source(v: &mut Validator, src: &Source, action: Action) {
    if *src == Source::default() {
        v.error("source must set at least one field; omit the from entry to match any source");
    }
    let identities = [
        &src.principals,
        &src.not_principals,
        &src.namespaces,
        &src.not_namespaces,
    ];
    let accounts = !src.service_accounts.is_empty() || !src.not_service_accounts.is_empty();
    if accounts && identities.iter().any(|values| !values.is_empty()) {
        v.error("serviceAccounts and notServiceAccounts cannot be combined with principals, notPrincipals, namespaces or notNamespaces");
    }
    match_strings(v, "principals", &src.principals);
    match_strings(v, "notPrincipals", &src.not_principals);
    match_strings(v, "requestPrincipals", &src.request_principals);
    match_strings(v, "notRequestPrincipals", &src.not_request_principals);
    match_strings(v, "namespaces", &src.namespaces);
    match_strings(v, "notNamespaces", &src.not_namespaces);
    match_strings(v, "trustDomains", &src.trust_domains);
    match_strings(v, "notTrustDomains", &src.not_trust_domains);
    service_accounts(v, "serviceAccounts", &src.service_accounts);
    service_accounts(v, "notServiceAccounts", &src.not_service_accounts);
    ip_blocks(v, "ipBlocks", &src.ip_blocks);
    ip_blocks(v, "notIpBlocks", &src.not_ip_blocks);
    ip_blocks(v, "remoteIpBlocks", &src.remote_ip_blocks);
    ip_blocks(v, "notRemoteIpBlocks", &src.not_remote_ip_blocks);
    if action == Action::Custom {
        let identity_fields = [
            ("namespaces", &src.namespaces),
            ("notNamespaces", &src.not_namespaces),
            ("serviceAccounts", &src.service_accounts),
            ("notServiceAccounts", &src.not_service_accounts),
            ("principals", &src.principals),
            ("notPrincipals", &src.not_principals),
            ("requestPrincipals", &src.request_principals),
            ("notRequestPrincipals", &src.not_request_principals),
            ("trustDomains", &src.trust_domains),
            ("notTrustDomains", &src.not_trust_domains),
        ];
        for (name, values) in identity_fields {
            if !values.is_empty() {
                v.error_at(name, format!("{name} is not supported with action CUSTOM"));
            }
        }
    }
}

fn operation(v: &mut Validator, op: &Operation) {
    if *op == Operation::default() {
        v.error("operation must set at least one field; omit the to entry to match any operation");
    }
    match_strings(v, "hosts", &op.hosts);
    match_strings(v, "notHosts", &op.not_hosts);
    ports(v, "ports", &op.ports);
    ports(v, "notPorts", &op.not_ports);
    match_strings(v, "methods", &op.methods);
    match_strings(v, "notMethods", &op.not_methods);
    paths(v, "paths", &op.paths);
    paths(v, "notPaths", &op.not_paths);
}

fn condition(v: &mut Validator, c: &Condition, action: Action) {
    let key = c.key.as_str();
    if key.is_empty() {
        v.error_at("key", "key is required");
        return;
    }
    let identity_key = matches!(
        key,
        "source.namespace" | "source.serviceAccount" | "source.principal" | "source.trustDomain"
    ) || key.starts_with("request.auth.");
    if action == Action::Custom && identity_key {
        v.error_at(
            "key",
            format!("condition key {key:?} is not supported with action CUSTOM"),
        );
    }
    if c.values.is_empty() && c.not_values.is_empty() {
        v.error(format!(
            "at least one of values or notValues is required for key {key:?}"
        ));
        return;
    }
    match attribute_kind(key) {
        Err(e) => v.error_at("key", e),
        Ok(kind) => {
            for (name, values) in [("values", &c.values), ("notValues", &c.not_values)] {
                match kind {
                    AttributeKind::Text => match_strings(v, name, values),
                    AttributeKind::Ip => ip_blocks(v, name, values),
                    AttributeKind::Port => ports(v, name, values),
                    AttributeKind::ServiceAccount => service_accounts(v, name, values),
                }
            }
        }
    }
}

/// How the values of a condition key are written.
#[derive(Clone, Copy)]
enum AttributeKind {
    /// Match strings (exact, `prefix*`, `*suffix`, `*`).
    Text,
    /// IPs or CIDR blocks.
    Ip,
    /// Decimal port numbers.
    Port,
    /// `name` or `namespace/name`.
    ServiceAccount,
}

/// The kind of a condition key, or why Istio refuses it
/// (https://istio.io/latest/docs/reference/config/security/conditions/).
fn attribute_kind(key: &str) -> Result<AttributeKind, String> {
    const MAP_KEYS: &[&str] = &[
        "request.headers",
        "request.experimental.inline.headers",
        "request.auth.claims",
        "experimental.envoy.filters.",
    ];
    if MAP_KEYS.iter().any(|prefix| key.starts_with(prefix)) {
        return check_map_key(key).map(|()| AttributeKind::Text);
    }
    match key {
        "source.ip" | "remote.ip" | "destination.ip" => Ok(AttributeKind::Ip),
        "destination.port" => Ok(AttributeKind::Port),
        "source.serviceAccount" => Ok(AttributeKind::ServiceAccount),
        "source.namespace"
        | "source.principal"
        | "source.trustDomain"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(AttributeKind::Text),
        "destination.namespace" => Err(
            "attribute \"destination.namespace\" is replaced by the policy's metadata.namespace"
                .to_string(),
        ),
        "destination.name" | "destination.user" => Err(format!(
            "attribute {key:?} is deprecated and only supported in v1alpha1"
        )),
        _ if key.starts_with("destination.labels") => Err(format!(
            "attribute {key:?} is replaced by the workload selector"
        )),
        _ => Err(format!("unknown attribute {key:?}")),
    }
}

/// Checks a bracketed key such as `request.headers[x-user]` has a non-empty name inside the brackets.
fn check_map_key(key: &str) -> Result<(), String> {
    match key.find('[') {
        Some(open) if open > 0 && key.ends_with(']') && open < key.len() - 2 => Ok(()),
        _ => Err(format!(
            "bad key {key:?}: expected the form name[entry], e.g. request.headers[x-user]"
        )),
    }
}

/// Checks match strings: no empty values, and `*` only where Istio treats it as a wildcard.
fn match_strings(v: &mut Validator, name: &str, values: &[String]) {
    v.each(name, values, |v, s| {
        if s.is_empty() {
            v.error("empty value is not allowed");
        } else if !is_supported_wildcard(s) {
            wildcard_warning(v, s);
        }
    });
}

/// True when `s` has no `*`, is `*`, or has a single `*` at its start or end.
fn is_supported_wildcard(s: &str) -> bool {
    match s.matches('*').count() {
        0 => true,
        1 => s.starts_with('*') || s.ends_with('*'),
        _ => false,
    }
}

// Istio accepts such values and matches the `*` literally, so refusing them would reject valid
// configuration; they are almost always a mistaken glob, hence the warning.
fn wildcard_warning(v: &mut Validator, s: &str) {
    v.warn(format!(
        "{s:?}: `*` is a wildcard only as the whole value or as its first or last character; here it is matched literally"
    ));
}

fn service_accounts(v: &mut Validator, name: &str, values: &[String]) {
    if values.len() > MAX_SERVICE_ACCOUNTS {
        v.error_at(
            name,
            format!(
                "at most {MAX_SERVICE_ACCOUNTS} service accounts are allowed (got {})",
                values.len()
            ),
        );
    }
    v.each(name, values, |v, sa| {
        if let Err(e) = check_service_account(sa) {
            v.error(e);
        }
    });
}

fn check_service_account(sa: &str) -> Result<(), String> {
    if sa.is_empty() {
        return Err("empty value is not allowed".into());
    }
    if sa.contains('*') {
        return Err(format!(
            "{sa:?}: wildcards are not allowed in service accounts"
        ));
    }
    if sa.len() > MAX_SERVICE_ACCOUNT_LEN {
        return Err(format!(
            "service account is {} characters long; at most {MAX_SERVICE_ACCOUNT_LEN} are allowed",
            sa.len()
        ));
    }
    match sa.split_once('/') {
        Some((ns, name)) if ns.is_empty() || name.is_empty() || name.contains('/') => {
            Err(format!("{sa:?}: expected \"name\" or \"namespace/name\""))
        }
        _ => Ok(()),
    }
}

fn ip_blocks(v: &mut Validator, name: &str, values: &[String]) {
    v.each(name, values, |v, s| {
        if let Err(e) = check_ip_block(s) {
            v.error(e);
        }
    });
}

/// Checks an IP address or CIDR block (host bits may be set, as Istio allows).
fn check_ip_block(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty value is not allowed".into());
    }
    if s.contains('/') {
        s.parse::<ipnet::IpNet>()
            .map(|_| ())
            .map_err(|_| format!("{s:?} is not a valid CIDR block (e.g. 10.0.0.0/16)"))
    } else {
        s.parse::<std::net::IpAddr>()
            .map(|_| ())
            .map_err(|_| format!("{s:?} is not a valid IP address"))
    }
}

fn ports(v: &mut Validator, name: &str, values: &[String]) {
    v.each(name, values, |v, p| {
        if let Err(e) = check_port(p) {
            v.error(e);
        }
    });
}

/// Checks a decimal port; Istio accepts 0..=65535 here.
fn check_port(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty value is not allowed".into());
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a port number"));
    }
    match s.parse::<u32>() {
        Ok(p) if p <= 65535 => Ok(()),
        _ => Err(format!("port {s} is greater than 65535")),
    }
}

/// Path template operators Envoy's URI template matcher understands.
const MATCH_ONE: &str = "{*}";
const MATCH_ANY: &str = "{**}";

fn paths(v: &mut Validator, name: &str, values: &[String]) {
    v.each(name, values, |v, path| {
        if path.is_empty() {
            v.error("empty value is not allowed");
        } else if let Err(e) = check_path_template(path) {
            v.error(e);
        } else if !is_path_template(path) && !is_supported_wildcard(path) {
            wildcard_warning(v, path);
        }
    });
}

fn is_path_template(path: &str) -> bool {
    path.contains(MATCH_ONE) || path.contains(MATCH_ANY)
}

/// Checks `{*}`/`{**}` templates as Istio does: operators are whole segments, `{**}` comes last,
/// and the other segments of a template are plain literals (RFC 3986 pchar).
fn check_path_template(path: &str) -> Result<(), String> {
    let template = is_path_template(path);
    let mut seen_match_any = false;
    for segment in path.trim_matches('/').split('/') {
        if segment == MATCH_ONE || segment == MATCH_ANY {
            if seen_match_any {
                return Err(format!(
                    "invalid path template {path:?}: {{**}} must be the last operator"
                ));
            }
            seen_match_any = segment == MATCH_ANY;
            continue;
        }
        if segment.contains(['{', '}']) {
            return Err(format!(
                "invalid path {path:?}: '{{' and '}}' are only allowed in the operators {{*}} and {{**}}, each a whole segment"
            ));
        }
        if template && !is_path_literal(segment) {
            return Err(format!(
                "invalid path template {path:?}: segment {segment:?} must be a literal (letters, digits and -._~%!$&'()+,;:@=)"
            ));
        }
    }
    Ok(())
}

fn is_path_literal(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&b))
}

#[cfg(test)]
mod tests;
