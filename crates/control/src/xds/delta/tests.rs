use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use weft_model::translate::scope::{ProxyScope, SidecarScope};

use super::{Delta, Has, MAX_RESOURCES_PER_RESPONSE, PARTIAL, Scope};
use crate::xds::view::{WireEntry, WireView};

fn scope(namespace: &str) -> Arc<Scope> {
    let proxy = ProxyScope {
        namespace: namespace.into(),
        labels: BTreeMap::new(),
        gateway: false,
    };
    Arc::new(Scope {
        namespace: namespace.into(),
        sidecar: SidecarScope::of(&[], &proxy),
        secrets: Vec::new(),
    })
}

/// An entry in `namespace` at `version`; `export_to` `.` keeps it in its namespace.
fn entry(namespace: &str, version: u64, local: bool) -> Option<Arc<WireEntry>> {
    Some(Arc::new(WireEntry {
        version,
        namespace: namespace.into(),
        export_to: local.then(|| vec![".".to_string()]),
        hosts: Vec::new(),
        gateway_only: None,
        payload: bytes::Bytes::from(format!("{namespace}-{version}")),
    }))
}

fn secret(namespace: &str, name: &str) -> Arc<WireEntry> {
    held(weft_api::Kind::Secret, namespace, name)
}

fn held(kind: weft_api::Kind, namespace: &str, name: &str) -> Arc<WireEntry> {
    Arc::new(WireEntry {
        version: 1,
        namespace: namespace.into(),
        export_to: None,
        hosts: Vec::new(),
        gateway_only: Some((kind, name.into())),
        payload: bytes::Bytes::from(format!("{namespace}/{name}")),
    })
}

/// Secrets and ConfigMaps go only to a gateway proxy that proved its namespace, and only
/// those its Gateways refer to: its Gateway API Gateway's certificateRefs and CA bundles
/// (in another namespace where a ReferenceGrant allows it: every Secret there, or the one
/// named), its Istio Gateways' credentialName (and `-cacert`) in its namespace; never an
/// unreferenced Secret of its namespace, never to a sidecar or an unproven gateway.
#[test]
fn secrets_reach_only_the_proven_gateways_allowed_to_read_them() {
    let grant = |ns: &str, from_kind: &str, to: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: g, namespace: {ns}}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: {from_kind}, namespace: web}}]\n  to: [{to}]\n---\n"
        )
    };
    let yaml = format!(
        "{}{}{}apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: web}}\nspec:\n  gatewayClassName: weft\n  tls:\n    frontend:\n      default: {{validation: {{caCertificateRefs: [{{group: '', kind: ConfigMap, name: ca}}]}}}}\n  listeners:\n  - {{name: a, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {{certificateRefs: [{{name: web-cert}}, {{name: web-cert, namespace: shared}}, {{name: any, namespace: vault}}, {{name: x, namespace: other}}, {{name: x, namespace: default}}]}}}}\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: ingress, namespace: default}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - {{port: {{number: 443, name: https, protocol: HTTPS}}, hosts: ['*'], tls: {{mode: MUTUAL, credentialName: ingress-cert}}}}\n",
        grant(
            "shared",
            "Gateway",
            "{group: '', kind: Secret, name: web-cert}"
        ),
        grant("vault", "Gateway", "{group: core, kind: Secret}"),
        grant("other", "HTTPRoute", "{group: '', kind: Secret}"),
    );
    let loaded = weft_api::load_str("scoping.yaml", &yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let scoping: Vec<weft_api::Resource> =
        loaded.resources.into_iter().map(|r| r.resource).collect();
    let proxy = |gateway: bool, ns: &str, label: (&str, &str)| ProxyScope {
        namespace: ns.into(),
        labels: [(label.0.to_string(), label.1.to_string())].into(),
        gateway,
    };
    let web = proxy(
        true,
        "web",
        ("gateway.networking.k8s.io/gateway-name", "gw"),
    );
    let gateway = Scope::new(&scoping, &web, true);
    let sees = |scope: &Scope, ns: &str, name: &str| scope.sees(&secret(ns, name));
    assert!(
        sees(&gateway, "web", "web-cert"),
        "its own namespace's, referred to"
    );
    assert!(
        !sees(&gateway, "web", "db-password"),
        "not one it does not refer to"
    );
    assert!(
        sees(&gateway, "shared", "web-cert"),
        "the one the grant names"
    );
    assert!(
        !sees(&gateway, "shared", "db-password"),
        "not the others there"
    );
    assert!(
        sees(&gateway, "vault", "any"),
        "a grant naming no Secret grants what it refers to"
    );
    assert!(
        !sees(&gateway, "vault", "other"),
        "not what it does not refer to"
    );
    assert!(
        !sees(&gateway, "other", "x"),
        "a grant from HTTPRoutes is not for Gateways"
    );
    assert!(!sees(&gateway, "default", "x"), "no grant");
    // ConfigMaps (CA bundles) go by the same rules.
    let config_map = |ns: &str, name: &str| held(weft_api::Kind::ConfigMap, ns, name);
    assert!(gateway.sees(&config_map("web", "ca")), "its CA bundle");
    assert!(
        !gateway.sees(&config_map("web", "settings")),
        "not another ConfigMap"
    );
    assert!(
        !gateway.sees(&config_map("shared", "web-cert")),
        "a grant for a Secret"
    );
    // Istio's ingress (istio-system) reads its servers' credentialName and -cacert there.
    let ingress = proxy(true, "istio-system", ("istio", "ingressgateway"));
    let istio = Scope::new(&scoping, &ingress, true);
    assert!(sees(&istio, "istio-system", "ingress-cert"));
    assert!(sees(&istio, "istio-system", "ingress-cert-cacert"));
    assert!(
        !sees(&istio, "default", "ingress-cert"),
        "the Gateway's namespace is not the proxy's"
    );
    assert!(!sees(&istio, "istio-system", "web-cert"));
    let unproven = Scope::new(&scoping, &web, false);
    assert!(!sees(&unproven, "web", "web-cert"), "an unproven gateway");
    // What decides `reads_secrets` in a session: a gateway whose token proved it.
    let sidecar = Scope::new(&scoping, &proxy(false, "web", ("app", "web")), true);
    assert!(!sees(&sidecar, "web", "web-cert"), "a sidecar");
    // Other resources are seen as before.
    assert!(sidecar.sees(&entry("web", 1, false).expect("an entry")));
}

fn change(name: &str, e: Option<Arc<WireEntry>>) -> (Arc<str>, Option<Arc<WireEntry>>) {
    (Arc::from(name), e)
}

fn names(d: &Delta) -> (Vec<String>, Vec<String>) {
    (
        d.updated
            .iter()
            .map(|(n, e)| format!("{n}@{}", e.version))
            .collect(),
        d.removed.iter().map(|n| n.to_string()).collect(),
    )
}

fn nothing() -> Has {
    Has::Told(Arc::new(HashMap::new()))
}

/// The delta found from the change log and the one found by comparing whole views are
/// the same (the log is only a shortcut), and a proxy ends with every visible resource.
#[test]
fn deltas_from_the_change_log_match_whole_view_comparison() {
    let base = Arc::new(WireView::default().next(
        1,
        vec![
            change("a/1", entry("a", 1, false)),
            change("a/2", entry("a", 1, true)),
            change("b/1", entry("b", 1, true)),
        ],
        None,
    ));
    let here = scope("a");
    let first = Delta::between(&nothing(), &base, &here);
    assert_eq!(
        names(&first),
        (vec!["a/1@1".into(), "a/2@1".into()], Vec::<String>::new())
    );
    let has = Has::Sent {
        view: base.clone(),
        scope: here.clone(),
    };
    // Updated, removed, added and one invisible here, over two views.
    let mid = Arc::new(base.next(
        2,
        vec![
            change("a/1", entry("a", 2, false)),
            change("b/1", entry("b", 2, true)),
        ],
        None,
    ));
    let now = mid.next(
        3,
        vec![change("a/2", None), change("c/1", entry("c", 3, false))],
        None,
    );
    let from_log = Delta::between(&has, &now, &here);
    assert_eq!(
        names(&from_log),
        (
            vec!["a/1@2".into(), "c/1@3".into()],
            vec!["a/2".to_string()]
        )
    );
    // A new scope (same content) compares whole views: the same answer.
    let whole = Delta::between(&has, &now, &scope("a"));
    assert_eq!(names(&whole), names(&from_log));
    // Nothing changed since: nothing to send.
    let again = Has::Sent {
        view: Arc::new(now),
        scope: here.clone(),
    };
    let view = match &again {
        Has::Sent { view, .. } => view.clone(),
        Has::Told(_) => unreachable!(),
    };
    assert!(Delta::between(&again, &view, &here).is_empty());
}

/// A proxy further behind than the log reaches still gets exactly what it lacks.
#[test]
fn a_proxy_behind_the_change_log_compares_whole_views() {
    let mut view =
        Arc::new(WireView::default().next(1, vec![change("a/0", entry("a", 1, false))], None));
    let has = Has::Sent {
        view: view.clone(),
        scope: scope("a"),
    };
    let here = match &has {
        Has::Sent { scope, .. } => scope.clone(),
        Has::Told(_) => unreachable!(),
    };
    for v in 2..(super::super::view::CHANGE_LOG as u64 + 10) {
        view = Arc::new(view.next(
            v,
            vec![change(&format!("a/{}", v % 3), entry("a", v, false))],
            None,
        ));
    }
    let d = Delta::between(&has, &view, &here);
    let (updated, removed) = names(&d);
    assert_eq!(updated.len(), 3, "{updated:?}");
    assert!(removed.is_empty());
    assert!(
        view.changes.since(1).is_none(),
        "the log no longer reaches view 1"
    );
}

/// After a reconnect the proxy's told versions count: what it has at the current
/// version is not sent again, and what no longer exists is removed.
#[test]
fn told_versions_are_honoured() {
    let view = WireView::default().next(
        5,
        vec![
            change("a/1", entry("a", 4, false)),
            change("a/2", entry("a", 5, false)),
        ],
        None,
    );
    let told: HashMap<Arc<str>, u64> = [
        (Arc::from("a/1"), 4),
        (Arc::from("a/2"), 3),
        (Arc::from("a/gone"), 1),
    ]
    .into_iter()
    .collect();
    let d = Delta::between(&Has::Told(Arc::new(told)), &view, &scope("a"));
    assert_eq!(
        names(&d),
        (vec!["a/2@5".into()], vec!["a/gone".to_string()])
    );
}

/// Parts: at most [`MAX_RESOURCES_PER_RESPONSE`] each, all but the last marked partial,
/// the removed names on the last; every resource sent once.
#[test]
fn a_large_delta_goes_out_in_parts() {
    let count = MAX_RESOURCES_PER_RESPONSE * 2 + 3;
    let changes = (0..count)
        .map(|i| change(&format!("a/{i:04}"), entry("a", 7, false)))
        .collect();
    let view = WireView::default().next(7, changes, None);
    let told: HashMap<Arc<str>, u64> = [(Arc::from("a/old"), 1)].into_iter().collect();
    let parts: Vec<_> = Delta::between(&Has::Told(Arc::new(told)), &view, &scope("a"))
        .parts(7, 1)
        .collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].system_version_info, format!("7{PARTIAL}"));
    assert_eq!(parts[2].system_version_info, "7");
    assert_eq!(parts[2].nonce, "7-1-2");
    assert!(parts[..2].iter().all(|p| p.removed_resources.is_empty()));
    assert_eq!(parts[2].removed_resources, vec!["a/old".to_string()]);
    let sent: Vec<_> = parts.iter().flat_map(|p| &p.resources).collect();
    assert_eq!(sent.len(), count);
    assert_eq!(
        sent[0].resource.as_ref().map(|a| a.value.clone()),
        Some(b"a-7".to_vec())
    );
    // Nothing to send still makes one (empty) response when asked.
    let empty: Vec<_> = Delta::default().parts(7, 2).collect();
    assert_eq!(empty.len(), 1);
    assert!(empty[0].resources.is_empty() && empty[0].removed_resources.is_empty());
}
