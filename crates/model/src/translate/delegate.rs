//! VirtualService delegation, as Istio executes it (one level deep): an HTTP rule of a
//! root VirtualService with `delegate: {name, namespace}` is replaced by the delegate's
//! rules — a VirtualService without `hosts` — each with its matches merged into the
//! root rule's (a delegate match must be narrower than a root match: a conflicting rule
//! is dropped) and the root rule's settings (rewrite, timeout, retries, fault, mirror,
//! CORS, headers) where the delegate rule has none. A delegate must be visible to the
//! root's namespace (`exportTo`); a missing or invisible delegate drops only that rule.
//! Delegates route nothing themselves.

use std::borrow::Cow;
use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::networking::common::StringMatch;
use weft_api::networking::virtual_service::{HttpMatchRequest, HttpRoute, VirtualService};

use super::scope::visible;

/// `resources` with every root VirtualService's delegating rules replaced by the merged
/// rules of its delegates, and the delegates left out; borrowed when nothing delegates.
pub fn resolve(resources: &[Resource]) -> Cow<'_, [Resource]> {
    let delegates: BTreeMap<(&str, &str), &Resource> = resources
        .iter()
        .filter(|r| matches!(r, Resource::VirtualService(o) if o.spec.hosts.is_empty()))
        .map(|r| ((r.namespace(), r.name()), r))
        .collect();
    let delegating = resources.iter().any(|r| {
        matches!(r, Resource::VirtualService(o) if o.spec.http.iter().any(|h| h.delegate.is_some()))
    });
    if delegates.is_empty() && !delegating {
        return Cow::Borrowed(resources);
    }
    let resolved = resources
        .iter()
        .filter_map(|r| match r {
            Resource::VirtualService(o) if o.spec.hosts.is_empty() => None,
            Resource::VirtualService(o) if o.spec.http.iter().any(|h| h.delegate.is_some()) => {
                let mut root = o.clone();
                root.spec.http = merged_rules(&o.spec, o.metadata.namespace(), &delegates);
                Some(Resource::VirtualService(root))
            }
            other => Some(other.clone()),
        })
        .collect::<Vec<_>>();
    Cow::Owned(resolved)
}

fn merged_rules(
    root: &VirtualService,
    root_ns: &str,
    delegates: &BTreeMap<(&str, &str), &Resource>,
) -> Vec<HttpRoute> {
    let mut out = Vec::new();
    for rule in &root.http {
        let Some(d) = &rule.delegate else {
            out.push(rule.clone());
            continue;
        };
        let ns = d.namespace.as_deref().unwrap_or(root_ns);
        // A missing or invisible delegate leaves its rule out (`weft analyze` says so).
        let Some(Resource::VirtualService(delegate)) = delegates.get(&(ns, d.name.as_str())) else {
            continue;
        };
        if !visible(&delegate.spec.export_to, ns, root_ns) {
            continue;
        }
        // One level: a delegate's own delegating rules are not followed.
        out.extend(
            delegate
                .spec
                .http
                .iter()
                .filter(|sub| sub.delegate.is_none())
                .filter_map(|sub| merge_rule(rule, sub)),
        );
    }
    out
}

/// The delegate's rule `sub` under the root's rule `root`, or `None` when their matches
/// conflict.
pub fn merge_rule(root: &HttpRoute, sub: &HttpRoute) -> Option<HttpRoute> {
    let mut out = sub.clone();
    out.matches = merge_matches(&root.matches, &sub.matches)?;
    out.name = joined(&root.name, &sub.name);
    out.delegate = None;
    macro_rules! inherit {
        ($($field:ident),*) => {$(
            if out.$field.is_none() {
                out.$field = root.$field.clone();
            }
        )*};
    }
    inherit!(
        rewrite,
        direct_response,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percentage,
        mirror_percent,
        cors_policy,
        headers
    );
    if out.mirrors.is_empty() {
        out.mirrors = root.mirrors.clone();
    }
    Some(out)
}

fn joined(root: &Option<String>, sub: &Option<String>) -> Option<String> {
    match (root, sub) {
        (Some(r), Some(s)) => Some(format!("{r}-{s}")),
        (r, None) => r.clone(),
        (None, s) => s.clone(),
    }
}

/// Each delegate match merged with every root match it does not conflict with; `None`
/// when a delegate match fits no root match.
fn merge_matches(
    root: &[HttpMatchRequest],
    sub: &[HttpMatchRequest],
) -> Option<Vec<HttpMatchRequest>> {
    if root.is_empty() {
        return Some(sub.to_vec());
    }
    if sub.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for leaf in sub {
        let fitting: Vec<HttpMatchRequest> = root
            .iter()
            .filter(|r| !conflicts(r, leaf))
            .map(|r| merge_match(r, leaf))
            .collect();
        if fitting.is_empty() {
            return None;
        }
        out.extend(fitting);
    }
    Some(out)
}

fn merge_match(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> HttpMatchRequest {
    let mut out = leaf.clone();
    out.name = joined(&root.name, &leaf.name);
    for (mine, theirs) in [
        (&mut out.uri, &root.uri),
        (&mut out.scheme, &root.scheme),
        (&mut out.method, &root.method),
        (&mut out.authority, &root.authority),
    ] {
        if mine.is_none() {
            mine.clone_from(theirs);
        }
    }
    let merged = |root: &BTreeMap<String, StringMatch>, leaf: &BTreeMap<String, StringMatch>| {
        let mut m = root.clone();
        m.extend(leaf.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    };
    out.headers = merged(&root.headers, &leaf.headers);
    out.without_headers = merged(&root.without_headers, &leaf.without_headers);
    out.query_params = merged(&root.query_params, &leaf.query_params);
    let mut labels = root.source_labels.clone();
    labels.extend(leaf.source_labels.clone());
    out.source_labels = labels;
    if out.port.is_none() {
        out.port = root.port;
    }
    if out.source_namespace.is_none() {
        out.source_namespace.clone_from(&root.source_namespace);
    }
    if out.gateways.is_empty() {
        out.gateways.clone_from(&root.gateways);
    }
    if out.stat_prefix.is_none() {
        out.stat_prefix.clone_from(&root.stat_prefix);
    }
    out
}

/// True when `leaf` is not narrower than `root` (Istio's rules).
fn conflicts(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs
        .iter()
        .any(|(r, l)| string_conflict(r.as_ref(), l.as_ref()))
    {
        return true;
    }
    let maps = [
        (&root.headers, &leaf.headers),
        (&root.without_headers, &leaf.without_headers),
        (&root.query_params, &leaf.query_params),
    ];
    if maps
        .iter()
        .any(|(r, l)| l.iter().any(|(k, v)| string_conflict(r.get(k), Some(v))))
    {
        return true;
    }
    if root.ignore_uri_case != leaf.ignore_uri_case {
        return true;
    }
    if let (Some(r), Some(l)) = (root.port, leaf.port) {
        if r != l {
            return true;
        }
    }
    if root
        .source_namespace
        .as_ref()
        .is_some_and(|r| leaf.source_namespace.as_ref() != Some(r))
    {
        return true;
    }
    if leaf
        .source_labels
        .iter()
        .any(|(k, v)| root.source_labels.get(k).is_some_and(|r| r != v))
    {
        return true;
    }
    !root.gateways.is_empty()
        && !leaf.gateways.is_empty()
        && leaf.gateways.iter().any(|g| !root.gateways.contains(g))
}

fn string_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    if root.regex.is_some() || leaf.regex.is_some() {
        // A regex on one side only fits a side that sets nothing else.
        let other = if root.regex.is_some() { leaf } else { root };
        return other.regex.is_some() || other.prefix.is_some() || other.exact.is_some();
    }
    if let Some(exact) = &root.exact {
        return leaf.prefix.is_some() || leaf.exact.as_ref() != Some(exact);
    }
    if let Some(prefix) = &root.prefix {
        if let Some(p) = &leaf.prefix {
            return !p.starts_with(prefix.as_str());
        }
        if let Some(e) = &leaf.exact {
            return !e.starts_with(prefix.as_str());
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(yaml: &str) -> Vec<Resource> {
        let loaded = weft_api::load_str("t.yaml", yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.resources.into_iter().map(|l| l.resource).collect()
    }

    const ROOT: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: root, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - name: api\n    match: [{uri: {prefix: /api}}]\n    timeout: 3s\n    delegate: {name: reviews-api}\n  - route: [{destination: {host: reviews}}]\n";

    fn delegate(ns: &str, export: &str, prefix: &str) -> String {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews-api, namespace: {ns}}}\nspec:\n  exportTo: [{export}]\n  http:\n  - name: v2\n    match: [{{uri: {{prefix: {prefix}}}}}]\n    route: [{{destination: {{host: reviews, subset: v2}}}}]\n  - name: rest\n    route: [{{destination: {{host: reviews, subset: v1}}}}]\n"
        )
    }

    fn root_rules(resolved: &[Resource]) -> Vec<HttpRoute> {
        resolved
            .iter()
            .find_map(|r| match r {
                Resource::VirtualService(o) if o.metadata.name == "root" => {
                    Some(o.spec.http.clone())
                }
                _ => None,
            })
            .expect("root")
    }

    #[test]
    fn delegate_rules_replace_the_delegating_rule_with_merged_matches() {
        let all = resources(&format!("{ROOT}{}", delegate("shop", "\"*\"", "/api/v2")));
        let resolved = resolve(&all);
        assert_eq!(resolved.len(), 1, "the delegate routes nothing itself");
        let rules = root_rules(&resolved);
        let names: Vec<_> = rules
            .iter()
            .map(|r| r.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["api-v2", "api-rest", ""]);
        assert_eq!(
            rules[0].matches[0]
                .uri
                .as_ref()
                .and_then(|u| u.prefix.as_deref()),
            Some("/api/v2")
        );
        assert_eq!(
            rules[1].matches[0]
                .uri
                .as_ref()
                .and_then(|u| u.prefix.as_deref()),
            Some("/api"),
            "a delegate rule without match takes the root's"
        );
        assert!(rules[0].timeout.is_some(), "root settings fill in");
    }

    #[test]
    fn a_conflicting_match_drops_the_rule_and_visibility_is_checked() {
        // /other is not under /api: that delegate rule is dropped, the catch-all stays.
        let all = resources(&format!("{ROOT}{}", delegate("shop", "\"*\"", "/other")));
        let names: Vec<_> = root_rules(&resolve(&all))
            .iter()
            .map(|r| r.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["api-rest", ""]);
        // In another namespace, exported only to itself: the delegating rule goes.
        let hidden = ROOT.replace(
            "delegate: {name: reviews-api}",
            "delegate: {name: reviews-api, namespace: team}",
        );
        let all = resources(&format!("{hidden}{}", delegate("team", "\".\"", "/api/v2")));
        assert_eq!(root_rules(&resolve(&all)).len(), 1);
        let all = resources(&format!("{hidden}{}", delegate("team", "shop", "/api/v2")));
        assert_eq!(
            root_rules(&resolve(&all)).len(),
            3,
            "exported to the root's namespace"
        );
    }

    #[test]
    fn string_matches_narrow_as_istio_requires() {
        let m = |e: Option<&str>, p: Option<&str>| StringMatch {
            exact: e.map(str::to_string),
            prefix: p.map(str::to_string),
            regex: None,
        };
        assert!(!string_conflict(
            Some(&m(None, Some("/a"))),
            Some(&m(None, Some("/a/b")))
        ));
        assert!(string_conflict(
            Some(&m(None, Some("/a/b"))),
            Some(&m(None, Some("/a")))
        ));
        assert!(!string_conflict(
            Some(&m(Some("/x"), None)),
            Some(&m(Some("/x"), None))
        ));
        assert!(string_conflict(
            Some(&m(Some("/x"), None)),
            Some(&m(None, Some("/x")))
        ));
        assert!(!string_conflict(None, Some(&m(Some("/x"), None))));
    }
}
