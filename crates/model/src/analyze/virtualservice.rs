//! VirtualService analyzers: IST0109 ConflictingMeshGatewayVirtualServiceHosts,
//! IST0130 VirtualServiceUnreachableRule and IST0131 VirtualServiceIneffectiveMatch
//! (for HTTP, TLS and TCP rules), IST0132 VirtualServiceHostNotFoundInGateway.

use std::collections::BTreeMap;

use weft_api::load::LocatedResource;
use weft_api::networking::virtual_service::{MESH_GATEWAY, VirtualService};
use weft_api::{Object, Resource};

use super::{Context, Finding, codes, finding, involved};
use crate::host;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut mesh_hosts: BTreeMap<String, Vec<&LocatedResource>> = BTreeMap::new();
    for r in ctx.resources {
        let Resource::VirtualService(v) = &r.resource else {
            continue;
        };
        unreachable_rules(r, &v.spec, out);
        host_not_in_gateway(ctx, r, v, out);
        if v.spec.binds_to_mesh() {
            for h in &v.spec.hosts {
                mesh_hosts
                    .entry(host::resolve(h, v.metadata.namespace()))
                    .or_default()
                    .push(r);
            }
        }
    }
    for (h, owners) in mesh_hosts.iter().filter(|(_, o)| o.len() > 1) {
        let names: Vec<String> = owners
            .iter()
            .map(|o| format!("{}/{}", o.resource.namespace(), o.resource.name()))
            .collect();
        out.push(finding(
            codes::CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
            format!(
                "The VirtualServices {} associated with mesh gateway define the same host {h} which can lead to undefined behavior; weft uses the oldest. This can be fixed by merging the conflicting VirtualServices into a single resource.",
                names.join(", ")
            ),
            owners.iter().map(|o| involved(o, "spec.hosts")).collect(),
        ));
    }
}

/// One rule list (`http`, `tls` or `tcp`) reduced to what matters here: per rule, its
/// name, whether it matches everything, and a comparable key per match.
struct Rules {
    kind: &'static str,
    rules: Vec<(Option<String>, bool, Vec<String>)>,
}

fn rule_lists(v: &VirtualService) -> [Rules; 3] {
    let http = v
        .http
        .iter()
        .map(|rule| {
            let keys = rule
                .matches
                .iter()
                .map(|m| {
                    let mut m = m.clone();
                    // The name and stat prefix label a match; they do not change what it takes.
                    m.name = None;
                    m.stat_prefix = None;
                    format!("{m:?}")
                })
                .collect();
            (rule.name.clone(), rule.is_catch_all(), keys)
        })
        .collect();
    let tls = v
        .tls
        .iter()
        .map(|rule| {
            let keys = rule.matches.iter().map(|m| format!("{m:?}")).collect();
            (None, false, keys)
        })
        .collect();
    let tcp = v
        .tcp
        .iter()
        .map(|rule| {
            let keys: Vec<String> = rule.matches.iter().map(|m| format!("{m:?}")).collect();
            (None, keys.is_empty(), keys)
        })
        .collect();
    [
        Rules {
            kind: "http",
            rules: http,
        },
        Rules {
            kind: "tls",
            rules: tls,
        },
        Rules {
            kind: "tcp",
            rules: tcp,
        },
    ]
}

fn rule_label(name: &Option<String>, i: usize) -> String {
    match name {
        Some(n) => format!("{n:?}"),
        None => format!("#{i}"),
    }
}

/// A rule after one that matches everything is never used (IST0130); a rule whose
/// every match repeats an earlier rule's is never used either (IST0130); a single
/// repeated match in a rule that still has others is ineffective (IST0131).
fn unreachable_rules(r: &LocatedResource, v: &VirtualService, out: &mut Vec<Finding>) {
    for list in rule_lists(v) {
        let mut catch_all: Option<usize> = None;
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, (name, all, keys)) in list.rules.iter().enumerate() {
            let label = rule_label(name, i);
            let path = format!("spec.{}[{i}]", list.kind);
            if let Some(first) = catch_all {
                out.push(finding(
                    codes::VIRTUAL_SERVICE_UNREACHABLE_RULE,
                    format!(
                        "VirtualService rule {label} not used (rule #{first} before it matches every request; only the last rule can match everything)."
                    ),
                    vec![involved(r, &path)],
                ));
                continue;
            }
            if *all {
                catch_all = Some(i);
            }
            let dups: Vec<(usize, usize)> = keys
                .iter()
                .enumerate()
                .filter_map(|(j, k)| seen.get(k.as_str()).map(|d| (j, *d)))
                .collect();
            if !keys.is_empty() && dups.len() == keys.len() {
                out.push(finding(
                    codes::VIRTUAL_SERVICE_UNREACHABLE_RULE,
                    format!(
                        "VirtualService rule {label} not used (same match as rule #{}).",
                        dups[0].1
                    ),
                    vec![involved(r, &path)],
                ));
            } else {
                for (j, d) in dups {
                    out.push(finding(
                        codes::VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
                        format!(
                            "VirtualService rule {label} match #{j} is not used (duplicate/overlapping match in rule #{d})."
                        ),
                        vec![involved(r, &format!("{path}.match[{j}]"))],
                    ));
                }
            }
            for k in keys {
                seen.entry(k.as_str()).or_insert(i);
            }
        }
    }
}

/// Hosts of a VirtualService bound to a Gateway (defined among the inputs) that none of
/// the Gateway's servers accepts: the gateway never routes them.
fn host_not_in_gateway(
    ctx: &Context<'_>,
    r: &LocatedResource,
    v: &Object<VirtualService>,
    out: &mut Vec<Finding>,
) {
    let ns = v.metadata.namespace();
    for (i, g) in v.spec.gateways.iter().enumerate() {
        if g == MESH_GATEWAY {
            continue;
        }
        let (gns, gname) = crate::translate::scope::gateway_reference(g, ns);
        let Some(gateway) = ctx.resources.iter().find_map(|x| match &x.resource {
            Resource::Gateway(gw)
                if gw.metadata.namespace() == gns && gw.metadata.name == gname =>
            {
                Some(gw)
            }
            _ => None,
        }) else {
            continue;
        };
        let missing: Vec<&String> = v
            .spec
            .hosts
            .iter()
            .filter(|h| {
                let h = h.to_ascii_lowercase();
                !gateway
                    .spec
                    .servers
                    .iter()
                    .flat_map(|s| &s.hosts)
                    .any(|server_host| {
                        let (scope, name) =
                            server_host.split_once('/').unwrap_or(("*", server_host));
                        let scope_ok = match scope {
                            "*" => true,
                            "." => ns == gns,
                            other => other == ns,
                        };
                        let name = name.to_ascii_lowercase();
                        scope_ok && (host::covers(&name, &h) || host::covers(&h, &name))
                    })
            })
            .collect();
        if !missing.is_empty() {
            out.push(finding(
                codes::VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
                format!(
                    "one or more host {missing:?} defined in VirtualService {ns}/{} not found in Gateway {gns}/{gname}.",
                    v.metadata.name
                ),
                vec![involved(r, &format!("spec.gateways[{i}]"))],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{SERVICE, codes_of, run};

    fn vs(name: &str, body: &str) -> String {
        format!(
            "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
{body}"
        )
    }

    #[test]
    fn two_mesh_virtual_services_for_one_host_conflict() {
        let a = vs(
            "a",
            "  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}]}]\n",
        );
        let b = vs(
            "b",
            "  hosts: [reviews.default.svc.cluster.local]\n  http: [{route: [{destination: {host: reviews}}]}]\n",
        );
        let f = run(&format!("{SERVICE}{a}{b}"));
        assert!(codes_of(&f).contains(&"IST0109"), "{f:?}");
        let other = b.replace(
            "hosts: [reviews.default.svc.cluster.local]",
            "hosts: [ratings]",
        );
        let ok = run(&format!("{SERVICE}{a}{other}"));
        assert!(!codes_of(&ok).contains(&"IST0109"), "{ok:?}");
    }

    #[test]
    fn a_rule_after_a_catch_all_is_unreachable() {
        let dead = vs(
            "r",
            "  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: reviews}}]
",
        );
        let f = run(&format!("{SERVICE}{dead}"));
        assert!(
            f.iter()
                .any(|f| f.code == "IST0130"
                    && f.message.starts_with("VirtualService rule #1 not used")),
            "{f:?}"
        );
        let ordered = vs(
            "r",
            "  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
",
        );
        assert_eq!(run(&format!("{SERVICE}{ordered}")), vec![]);
    }

    #[test]
    fn a_rule_repeating_earlier_matches_is_unreachable_and_one_repeated_match_ineffective() {
        let body = "  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /a}}, {uri: {prefix: /b}}]
    route: [{destination: {host: reviews}}]
  - match: SECOND
    route: [{destination: {host: reviews}}]
";
        let f = run(&format!(
            "{SERVICE}{}",
            vs("r", &body.replace("SECOND", "[{uri: {prefix: /b}}]"))
        ));
        assert!(
            f.iter()
                .any(|f| f.code == "IST0130" && f.message.contains("same match as rule #0")),
            "{f:?}"
        );
        let f = run(&format!(
            "{SERVICE}{}",
            vs(
                "r",
                &body.replace("SECOND", "[{uri: {prefix: /b}}, {uri: {prefix: /c}}]")
            )
        ));
        assert_eq!(codes_of(&f), vec!["IST0131"], "{f:?}");
        assert!(
            f[0].message.contains("rule #1 match #0 is not used"),
            "{f:?}"
        );
        let f = run(&format!(
            "{SERVICE}{}",
            vs("r", &body.replace("SECOND", "[{uri: {prefix: /c}}]"))
        ));
        assert_eq!(f, vec![]);
    }

    #[test]
    fn repeated_tcp_and_tls_matches_are_unreachable() {
        let tcp = vs(
            "t",
            "  hosts: [reviews]
  tcp:
  - match: [{port: 80}]
    route: [{destination: {host: reviews}}]
  - match: [{port: PORT}]
    route: [{destination: {host: reviews}}]
",
        );
        let f = run(&format!("{SERVICE}{}", tcp.replace("PORT", "80")));
        assert!(codes_of(&f).contains(&"IST0130"), "{f:?}");
        let f = run(&format!("{SERVICE}{}", tcp.replace("PORT", "81")));
        assert!(!codes_of(&f).contains(&"IST0130"), "{f:?}");
        let tls = vs(
            "s",
            "  hosts: [reviews, other.example.com]
  tls:
  - match: [{sniHosts: [reviews]}]
    route: [{destination: {host: reviews}}]
  - match: [{sniHosts: [SNI]}]
    route: [{destination: {host: reviews}}]
",
        );
        let f = run(&format!("{SERVICE}{}", tls.replace("SNI", "reviews")));
        assert!(codes_of(&f).contains(&"IST0130"), "{f:?}");
        let f = run(&format!(
            "{SERVICE}{}",
            tls.replace("SNI", "other.example.com")
        ));
        assert!(!codes_of(&f).contains(&"IST0130"), "{f:?}");
    }

    #[test]
    fn a_host_the_gateway_does_not_serve_is_reported() {
        let gw = "---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [GWHOST]}]
";
        let v = vs(
            "r",
            "  hosts: [shop.example.com]
  gateways: [ingress]
  http: [{route: [{destination: {host: reviews}}]}]
",
        );
        let f = run(&format!(
            "{SERVICE}{}{v}",
            gw.replace("GWHOST", "api.example.com")
        ));
        assert!(codes_of(&f).contains(&"IST0132"), "{f:?}");
        for served in [
            "'*.example.com'",
            "shop.example.com",
            "default/shop.example.com",
        ] {
            let f = run(&format!("{SERVICE}{}{v}", gw.replace("GWHOST", served)));
            assert!(!codes_of(&f).contains(&"IST0132"), "{served}: {f:?}");
        }
        let f = run(&format!(
            "{SERVICE}{}{v}",
            gw.replace("GWHOST", "other/shop.example.com")
        ));
        assert!(codes_of(&f).contains(&"IST0132"), "{f:?}");
    }
}
