//! Host names as Istio resolves them.

/// The cluster DNS suffix Istio assumes (`svc.cluster.local`).
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// Resolves a host written in a resource of namespace `ns` the way Istio does:
/// a name without dots is short for `name.ns.svc.cluster.local`; anything else
/// (FQDNs, wildcards, `name.other-ns`) is taken as written. Lower-cased.
pub fn resolve(host: &str, ns: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host == "*" || host.contains('.') {
        host
    } else {
        format!("{host}.{ns}.{CLUSTER_DOMAIN}")
    }
}

/// The names a client in namespace `client_ns` may use for `host`, as Istio's
/// sidecar virtual hosts list them: the host itself and, for cluster-local
/// names, `name.ns.svc`, `name.ns` and (same namespace only) `name`.
pub fn aliases(host: &str, client_ns: &str) -> Vec<String> {
    let mut out = vec![host.to_string()];
    let suffix = format!(".{CLUSTER_DOMAIN}");
    if let Some(name_ns) = host.strip_suffix(&suffix) {
        if let Some((name, ns)) = name_ns.split_once('.') {
            if !ns.contains('.') {
                out.push(format!("{name_ns}.svc"));
                out.push(name_ns.to_string());
                if ns == client_ns {
                    out.push(name.to_string());
                }
            }
        }
    }
    out
}

/// True when `pattern` (a host, `*.suffix` or `*`) covers `host`.
pub fn covers(pattern: &str, host: &str) -> bool {
    if pattern == "*" || pattern == host {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => false,
    }
}

/// The host part of an authority (`name:port` or `[v6]:port`), lower-cased.
pub fn authority_host(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_expand_in_the_resource_namespace() {
        assert_eq!(resolve("reviews", "shop"), "reviews.shop.svc.cluster.local");
        assert_eq!(resolve("Reviews.Other", "shop"), "reviews.other");
        assert_eq!(resolve("*.example.com", "shop"), "*.example.com");
    }

    #[test]
    fn aliases_follow_istio() {
        let same = aliases("reviews.shop.svc.cluster.local", "shop");
        assert_eq!(
            same,
            [
                "reviews.shop.svc.cluster.local",
                "reviews.shop.svc",
                "reviews.shop",
                "reviews"
            ]
        );
        let other = aliases("reviews.shop.svc.cluster.local", "web");
        assert!(!other.contains(&"reviews".to_string()));
        assert_eq!(aliases("api.example.com", "shop"), ["api.example.com"]);
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        assert!(covers("*.example.com", "a.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(covers("*", "anything"));
        assert_eq!(authority_host("a.b:8080"), "a.b");
        assert_eq!(authority_host("[::1]:80"), "::1");
    }
}
