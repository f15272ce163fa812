//! What a request names: the resource (`/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}]`)
//! and the query parameters of Kubernetes' API conventions.

use std::collections::BTreeMap;

use weft_api::Kind;

/// A parsed resource path.
#[derive(Debug, PartialEq)]
pub struct Target {
    /// The kind the path names.
    pub kind: Kind,
    /// The API version in the path.
    pub version: String,
    /// The namespace, when the path is namespaced.
    pub namespace: Option<String>,
    /// The object, when the path names one.
    pub name: Option<String>,
}

impl Target {
    /// `group/version` of the path.
    pub fn api_version(&self) -> String {
        self.kind.api_version(&self.version)
    }
}

/// The resource `path` names, if any.
pub fn parse(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        // Kubernetes' core group: `/api/v1/...`.
        ["api", version, rest @ ..] => ("", *version, rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        // A cluster-scoped object: `/api/v1/namespaces/{name}`.
        [plural, name] => (None, *plural, Some(*name)),
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        _ => return None,
    };
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.group() == group && k.plural() == plural)?;
    // A namespaced kind is not named without its namespace, nor a cluster-scoped one with one.
    if (kind.is_namespaced() && namespace.is_none() && name.is_some())
        || (!kind.is_namespaced() && namespace.is_some())
    {
        return None;
    }
    kind.api_versions().contains(&version).then(|| Target {
        kind,
        version: version.to_string(),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
    })
}

/// How unknown or duplicate fields in a write are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Refused with the request (kubectl's default).
    #[default]
    Strict,
    /// Accepted, each reported in a `Warning` header.
    Warn,
    /// Accepted silently.
    Ignore,
}

/// The query parameters weft reads.
#[derive(Debug, Default)]
pub struct Query {
    /// `watch=true`.
    pub watch: bool,
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `force=true` (server-side apply takes fields other managers own).
    pub force: bool,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `resourceVersion` (a watch starts after it).
    pub resource_version: Option<u64>,
    /// `timeoutSeconds` of a watch.
    pub timeout_seconds: Option<u64>,
    /// Parameters weft does not know, kept for the error message.
    pub other: BTreeMap<String, String>,
}

impl Query {
    /// Reads `query` (`a=b&c=d`, percent-encoded); a bad value is an error naming it.
    pub fn parse(query: Option<&str>) -> Result<Query, String> {
        let mut q = Query::default();
        for (k, v) in crate::query::params(query) {
            let flag = |v: &str| matches!(v, "true" | "1" | "");
            match k.as_str() {
                "watch" => q.watch = flag(&v),
                "dryRun" => match v.as_str() {
                    "All" => q.dry_run = true,
                    "" => {}
                    other => return Err(format!("dryRun: unsupported value {other:?} (All)")),
                },
                "fieldValidation" => {
                    q.field_validation = match v.as_str() {
                        "Strict" | "" => FieldValidation::Strict,
                        "Warn" => FieldValidation::Warn,
                        "Ignore" => FieldValidation::Ignore,
                        other => {
                            return Err(format!(
                                "fieldValidation: unsupported value {other:?} (Strict, Warn or Ignore)"
                            ));
                        }
                    }
                }
                "fieldManager" => q.field_manager = Some(v),
                "force" => q.force = flag(&v),
                "labelSelector" => q.label_selector = Some(v).filter(|s| !s.is_empty()),
                "fieldSelector" => q.field_selector = Some(v).filter(|s| !s.is_empty()),
                "allowWatchBookmarks" => q.bookmarks = flag(&v),
                "resourceVersion" => {
                    q.resource_version = match v.as_str() {
                        "" | "0" => None,
                        n => Some(n.parse().map_err(|_| {
                            format!("resourceVersion: {n:?} is not a resource version")
                        })?),
                    }
                }
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(
                        v.parse()
                            .map_err(|_| format!("timeoutSeconds: {v:?} is not a number"))?,
                    )
                }
                // Read and answered as Kubernetes does without effect here.
                "limit"
                | "continue"
                | "pretty"
                | "includeObject"
                | "propagationPolicy"
                | "gracePeriodSeconds"
                | "resourceVersionMatch"
                | "sendInitialEvents" => {}
                _ => {
                    q.other.insert(k, v);
                }
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_kubernetes() {
        let t = parse("/apis/networking.istio.io/v1/namespaces/shop/virtualservices/reviews")
            .expect("parses");
        assert_eq!(t.kind, Kind::VirtualService);
        assert_eq!(t.namespace.as_deref(), Some("shop"));
        assert_eq!(t.name.as_deref(), Some("reviews"));
        let all = parse("/apis/security.istio.io/v1beta1/authorizationpolicies").expect("parses");
        assert_eq!(all.namespace, None);
        assert!(parse("/apis/security.istio.io/v1alpha3/authorizationpolicies").is_none());
        assert!(parse("/apis/networking.istio.io/v1/namespaces/x/widgets").is_none());
        // Kubernetes' core group, and a cluster-scoped kind.
        let svc = parse("/api/v1/namespaces/shop/services/reviews").expect("parses");
        assert_eq!(
            (svc.kind, svc.api_version()),
            (Kind::Service, "v1".to_string())
        );
        let ns = parse("/api/v1/namespaces/shop").expect("parses");
        assert_eq!(
            (ns.kind, ns.namespace, ns.name.as_deref()),
            (Kind::Namespace, None, Some("shop"))
        );
        assert!(parse("/api/v1/namespaces/shop/namespaces").is_none());
        assert!(parse("/apis/networking.istio.io/v1/virtualservices/x").is_none());
        let deploy = parse("/apis/apps/v1/namespaces/shop/deployments").expect("parses");
        assert_eq!(deploy.kind, Kind::Deployment);
    }

    #[test]
    fn query_parameters_as_kubectl_sends_them() {
        let q = Query::parse(Some(
            "dryRun=All&fieldManager=kubectl&force=true&labelSelector=app%3Dreviews%2Cversion%21%3Dv1&watch=1&resourceVersion=12&allowWatchBookmarks=true&fieldValidation=Warn",
        ))
        .expect("parses");
        assert!(q.dry_run && q.force && q.watch && q.bookmarks);
        assert_eq!(q.field_manager.as_deref(), Some("kubectl"));
        assert_eq!(q.label_selector.as_deref(), Some("app=reviews,version!=v1"));
        assert_eq!(q.resource_version, Some(12));
        assert_eq!(q.field_validation, FieldValidation::Warn);
        assert!(Query::parse(Some("dryRun=Some")).is_err());
        assert!(Query::parse(Some("fieldValidation=Loose")).is_err());
    }
}
