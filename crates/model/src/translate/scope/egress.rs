//! A Sidecar egress listener's `hosts`, as Istio selects with them: `namespace/dnsName`
//! entries import hosts, and (Istio 1.31, istio/istio#60581) entries whose namespace starts
//! with `~` subtract from what the listener imports: `~ns/*` every host of `ns`,
//! `~ns/host` that host in `ns`, `~/host` that host in every namespace, `~/*` everything.
//! A host is selected by a listener when one entry imports it and none subtracts it.

use crate::host;

/// Which namespaces an entry covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Namespaces {
    /// `*` (and `~` alone in a subtraction).
    Any,
    /// `.`: the proxy's.
    Own,
    /// A namespace name.
    Named(String),
}

impl Namespaces {
    fn parse(ns: &str) -> Namespaces {
        match ns {
            "*" | "" => Namespaces::Any,
            "." => Namespaces::Own,
            other => Namespaces::Named(other.to_string()),
        }
    }

    fn covers(&self, namespace: &str, own: &str) -> bool {
        match self {
            Namespaces::Any => true,
            Namespaces::Own => namespace == own,
            Namespaces::Named(n) => namespace == n,
        }
    }
}

/// One `namespace/dnsName` entry (dnsName lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    namespaces: Namespaces,
    pattern: String,
}

impl Entry {
    fn covers(&self, namespace: &str, own: &str, host: &str) -> bool {
        self.namespaces.covers(namespace, own) && host::covers(&self.pattern, host)
    }
}

/// The hosts of one egress listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressHosts {
    import: Vec<Entry>,
    subtract: Vec<Entry>,
}

impl EgressHosts {
    /// The listener's `hosts` as written; entries without `/` (refused by validation) are
    /// skipped.
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a String>) -> EgressHosts {
        let mut out = EgressHosts::default();
        for h in hosts {
            let Some((ns, name)) = h.split_once('/') else {
                continue;
            };
            let pattern = name.to_ascii_lowercase();
            match ns.strip_prefix('~') {
                Some(excluded) => out.subtract.push(Entry {
                    namespaces: Namespaces::parse(excluded),
                    pattern,
                }),
                None => out.import.push(Entry {
                    namespaces: Namespaces::parse(ns),
                    pattern,
                }),
            }
        }
        out
    }

    /// True when the listener selects `host` of a resource in `namespace`, for a proxy in
    /// `own`.
    pub fn selects(&self, namespace: &str, own: &str, host: &str) -> bool {
        self.import.iter().any(|e| e.covers(namespace, own, host))
            && !self.subtract.iter().any(|e| e.covers(namespace, own, host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[&str]) -> EgressHosts {
        let owned: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        EgressHosts::new(&owned)
    }

    #[test]
    fn a_tilde_namespace_subtracts_from_what_the_listener_imports() {
        let h = hosts(&[
            "*/*",
            "~ops/*",
            "~shop/secret.example.com",
            "~/legacy.example.com",
        ]);
        assert!(h.selects("web", "shop", "a.example.com"));
        // `~ops/*`: nothing of ops.
        assert!(!h.selects("ops", "shop", "a.example.com"));
        // `~shop/host`: that host in shop only.
        assert!(!h.selects("shop", "shop", "secret.example.com"));
        assert!(h.selects("web", "shop", "secret.example.com"));
        // `~/host`: that host in every namespace.
        assert!(!h.selects("web", "shop", "legacy.example.com"));
        assert!(!h.selects("shop", "shop", "legacy.example.com"));
    }

    #[test]
    fn tilde_alone_imports_nothing_and_subtraction_needs_an_import() {
        assert!(!hosts(&["~/*"]).selects("shop", "shop", "a.example.com"));
        assert!(!hosts(&["*/*", "~/*"]).selects("shop", "shop", "a.example.com"));
        assert!(!hosts(&["~ops/*"]).selects("web", "shop", "a.example.com"));
        // `~.` is the proxy's namespace.
        let own = hosts(&["*/*", "~./*"]);
        assert!(!own.selects("shop", "shop", "a.example.com"));
        assert!(own.selects("web", "shop", "a.example.com"));
    }
}
