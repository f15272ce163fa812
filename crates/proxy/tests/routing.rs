//! Routing as a client sees it through `weft proxy`: weights, match kinds, rewrites,
//! redirects, direct responses, header operations, Envoy's failure answers, and the
//! `Sidecar` egress hosts that narrow what a file-mode sidecar routes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Harness, service, subsets, virtual_service};
use weft_testkit::client::{Send, get, via_proxy};
use weft_testkit::{binomial_tolerance, eventually, upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_90_split_lands_within_binomial_tolerance() {
    let v1 = upstream::named("v1").await;
    let v2 = upstream::named("v2").await;
    let yaml = format!(
        "{}{}{}",
        service("reviews", 8080, "HTTP", &[(v1.addr, "v1"), (v2.addr, "v2")]),
        subsets("reviews"),
        virtual_service(
            "reviews",
            "  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 10}\n    - {destination: {host: reviews, subset: v2}, weight: 90}\n"
        )
    );
    let h = Harness::start(&yaml).await;
    let n = 2000u32;
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..n {
        let got = get(h.proxy.outbound, "http://reviews:8080/").await;
        assert_eq!(got.status, 200);
        *counts.entry(got.body).or_default() += 1;
    }
    let v1_count = f64::from(counts.get("v1").copied().unwrap_or(0));
    let expected = f64::from(n) * 0.1;
    let tolerance = binomial_tolerance(n, 0.1, 5.0);
    assert!(
        (v1_count - expected).abs() <= tolerance,
        "v1 got {v1_count}, expected {expected} ± {tolerance:.1}"
    );
    assert_eq!(counts.values().sum::<u32>(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_match_kind_routes() {
    let v1 = upstream::named("v1").await;
    let v2 = upstream::named("v2").await;
    let rules = r#"  - match: [{uri: {exact: /exact}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /pre}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {regex: "/re/[0-9]+"}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{method: {exact: DELETE}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{headers: {x-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{queryParams: {canary: {exact: "yes"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{authority: {prefix: "reviews.default"}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /wo}, withoutHeaders: {x-skip: {}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;
    let yaml = format!(
        "{}{}{}",
        service("reviews", 8080, "HTTP", &[(v1.addr, "v1"), (v2.addr, "v2")]),
        subsets("reviews"),
        virtual_service("reviews", rules)
    );
    let h = Harness::start(&yaml).await;
    /// Method, URL, headers, expected upstream.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        ("GET", "http://reviews:8080/exact", &[], "v2"),
        ("GET", "http://reviews:8080/exact/no", &[], "v1"),
        ("GET", "http://reviews:8080/prefix/x", &[], "v2"),
        ("GET", "http://reviews:8080/re/42", &[], "v2"),
        ("GET", "http://reviews:8080/re/42x", &[], "v1"),
        ("DELETE", "http://reviews:8080/", &[], "v2"),
        ("GET", "http://reviews:8080/", &[("x-user", "jason")], "v2"),
        ("GET", "http://reviews:8080/", &[("x-user", "Jason")], "v1"),
        ("GET", "http://reviews:8080/?canary=yes", &[], "v2"),
        ("GET", "http://reviews.default:8080/", &[], "v2"),
        ("GET", "http://reviews:8080/wo", &[], "v2"),
        ("GET", "http://reviews:8080/wo", &[("x-skip", "1")], "v1"),
    ];
    for (method, url, headers, want) in cases {
        let got = via_proxy(
            h.proxy.outbound,
            Send {
                method,
                url,
                headers,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(got.body, *want, "{method} {url} {headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_redirects_direct_responses_and_headers() {
    let v1 = upstream::named("v1").await;
    let rules = r#"  - match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/, authority: backend.internal}
    headers:
      request: {set: {x-route: rewritten}, remove: [x-drop]}
      response: {add: {x-served: weft}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {exact: /moved}}]
    redirect: {uri: /here, redirectCode: 308}
  - match: [{uri: {prefix: /docs/v1/}}]
    redirect: {prefixRewrite: /docs/v2/, scheme: https}
  - match: [{uri: {exact: /maintenance}}]
    directResponse: {status: 503, body: {string: "down for maintenance"}}
  - route: [{destination: {host: reviews, subset: v1}}]
"#;
    let yaml = format!(
        "{}{}{}",
        service("reviews", 8080, "HTTP", &[(v1.addr, "v1")]),
        subsets("reviews"),
        virtual_service("reviews", rules)
    );
    let h = Harness::start(&yaml).await;
    let got = via_proxy(
        h.proxy.outbound,
        Send {
            url: "http://reviews:8080/old/page?q=1",
            headers: &[("x-drop", "1")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("x-served"), Some("weft"));
    let seen = v1.seen();
    let last = seen.last().expect("a request reached the upstream");
    assert_eq!(last.path, "/new/page?q=1");
    assert_eq!(
        last.headers.get("host").and_then(|v| v.to_str().ok()),
        Some("backend.internal")
    );
    assert_eq!(
        last.headers.get("x-route").and_then(|v| v.to_str().ok()),
        Some("rewritten")
    );
    assert!(last.headers.get("x-drop").is_none());
    assert!(
        last.headers.get("x-request-id").is_some(),
        "x-request-id is generated"
    );
    assert_eq!(
        last.headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok()),
        Some("http")
    );

    let moved = get(h.proxy.outbound, "http://reviews:8080/moved").await;
    assert_eq!(moved.status, 308);
    assert_eq!(moved.header("location"), Some("http://reviews:8080/here"));
    let renamed = get(
        h.proxy.outbound,
        "http://reviews:8080/docs/v1/guide/intro?lang=en",
    )
    .await;
    assert_eq!(renamed.status, 301);
    assert_eq!(
        renamed.header("location"),
        Some("https://reviews:8080/docs/v2/guide/intro?lang=en"),
        "prefixRewrite replaces the matched prefix only"
    );

    let down = get(h.proxy.outbound, "http://reviews:8080/maintenance").await;
    assert_eq!(
        (down.status.as_u16(), down.body.as_str()),
        (503, "down for maintenance")
    );
    assert_eq!(
        v1.hits(),
        1,
        "redirects and direct responses never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_failures_answer_with_envoy_flags() {
    let v1 = upstream::named("v1").await;
    let dead: std::net::SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let rules = "  - match: [{uri: {prefix: /missing-subset}}]\n    route: [{destination: {host: reviews, subset: v3}}]\n  - route: [{destination: {host: reviews, subset: v1}}]\n";
    let yaml = format!(
        "{}{}{}{}",
        service("reviews", 8080, "HTTP", &[(v1.addr, "v1")]),
        service("ratings", 9080, "HTTP", &[(dead, "v1")]),
        subsets("reviews"),
        virtual_service("reviews", rules)
    );
    let h = Harness::start(&yaml).await;
    let nc = get(h.proxy.outbound, "http://reviews:8080/missing-subset").await;
    assert_eq!(
        (nc.status.as_u16(), nc.header("x-weft-response-flags")),
        (503, Some("NC"))
    );
    let nr = get(h.proxy.outbound, "http://unknown:8080/").await;
    assert_eq!(
        (nr.status.as_u16(), nr.header("x-weft-response-flags")),
        (404, Some("NR"))
    );
    let uf = get(h.proxy.outbound, "http://ratings:9080/").await;
    assert_eq!(uf.status, 503);
    assert_eq!(
        uf.header("x-weft-response-flags"),
        Some("UF,URX"),
        "the default policy retried the connect failure twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_and_responses_carry_allow_headers() {
    let app = upstream::named("app").await;
    let rules = r#"  - corsPolicy:
      allowOrigins: [{exact: "https://shop.example.com"}, {regex: "https://.*\\.example\\.org"}]
      allowMethods: [GET, POST]
      allowHeaders: [content-type]
      exposeHeaders: [x-request-id]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    route: [{destination: {host: web}}]
"#;
    let h = Harness::start(&format!(
        "{}{}",
        service("web", 8080, "HTTP", &[(app.addr, "v1")]),
        virtual_service("web", rules)
    ))
    .await;
    const ALLOWED: &[(&str, &str)] = &[
        ("origin", "https://shop.example.com"),
        ("access-control-request-method", "POST"),
    ];
    const OTHER: &[(&str, &str)] = &[
        ("origin", "https://evil.example.net"),
        ("access-control-request-method", "POST"),
    ];
    let preflight = |headers| Send {
        method: "OPTIONS",
        url: "http://web:8080/cart",
        headers,
        ..Default::default()
    };
    let ok = via_proxy(h.proxy.outbound, preflight(ALLOWED)).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET,POST"));
    assert_eq!(ok.header("access-control-max-age"), Some("86400"));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    let denied = via_proxy(h.proxy.outbound, preflight(OTHER)).await;
    assert_eq!(denied.status, 200);
    assert!(
        denied.header("access-control-allow-origin").is_none(),
        "IGNORE: answered without CORS headers"
    );
    assert_eq!(app.hits(), 0, "preflights are answered by the proxy");

    let actual = via_proxy(
        h.proxy.outbound,
        Send {
            url: "http://web:8080/cart",
            headers: &[("origin", "https://a.example.org")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(actual.body, "app");
    assert_eq!(
        actual.header("access-control-allow-origin"),
        Some("https://a.example.org")
    );
    assert_eq!(
        actual.header("access-control-expose-headers"),
        Some("x-request-id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_keeps_a_user_on_one_endpoint() {
    let a = upstream::named("a").await;
    let b = upstream::named("b").await;
    let c = upstream::named("c").await;
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web}\nspec:\n  host: web\n  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 1031}}}}\n---\n";
    let h = Harness::start(&format!(
        "{}{dr}",
        service(
            "web",
            8080,
            "HTTP",
            &[(a.addr, "v1"), (b.addr, "v1"), (c.addr, "v1")]
        )
    ))
    .await;
    let mut owners = std::collections::BTreeSet::new();
    // Twelve users over three endpoints: all on one endpoint has probability 3·3⁻¹² ≈ 6e-6.
    for user in [
        "ann", "bob", "cho", "dee", "eve", "fay", "gus", "hal", "ivy", "jon", "kim", "lou",
    ] {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10 {
            let got = via_proxy(
                h.proxy.outbound,
                Send {
                    url: "http://web:8080/",
                    headers: &[("x-user", user)],
                    ..Default::default()
                },
            )
            .await;
            seen.insert(got.body);
        }
        assert_eq!(
            seen.len(),
            1,
            "user {user} moved between endpoints: {seen:?}"
        );
        owners.extend(seen);
    }
    assert!(
        owners.len() > 1,
        "every user hashed to one endpoint: {owners:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_host_rewrites_the_authority_and_resolution_none_goes_where_the_app_asked() {
    let app = upstream::named("app").await;
    let rules = "  - headers: {request: {set: {host: internal.example}}}\n    route: [{destination: {host: web}}]\n";
    let h = Harness::start(&format!(
        "{}{}",
        service("web", 8080, "HTTP", &[(app.addr, "v1")]),
        virtual_service("web", rules)
    ))
    .await;
    get(h.proxy.outbound, "http://web:8080/").await;
    assert_eq!(
        app.seen()[0]
            .headers
            .get("host")
            .and_then(|v| v.to_str().ok()),
        Some("internal.example")
    );

    let external = upstream::named("external").await;
    let port = external.addr.port();
    let entry = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ext}}\nspec:\n  hosts: [localhost]\n  location: MESH_EXTERNAL\n  resolution: NONE\n  ports: [{{number: {port}, name: http, protocol: HTTP}}]\n"
    );
    let h = Harness::start(&entry).await;
    let url = format!("http://localhost:{port}/");
    let got = get(h.proxy.outbound, &url).await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "external"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_resource_narrows_what_a_file_mode_sidecar_routes_and_subtracts_with_tilde() {
    let a = upstream::named("a").await;
    let b = upstream::named("b").await;
    let services = format!(
        "{}{}",
        service("a", 80, "HTTP", &[(a.addr, "v1")]),
        service("b", 80, "HTTP", &[(b.addr, "v1")])
    );
    let h = Harness::start(&services).await;
    let call = |host: &'static str| {
        let outbound = h.proxy.outbound;
        async move {
            via_proxy(
                outbound,
                Send {
                    url: &format!("http://{host}/"),
                    ..Default::default()
                },
            )
            .await
        }
    };
    assert_eq!(call("a").await.body, "a");
    assert_eq!(call("b").await.body, "b", "without a Sidecar, b is routed");

    h.write(&format!(
        "{services}apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default}}\nspec:\n  egress:\n  - hosts: [\"./a.default.svc.cluster.local\"]\n"
    ));
    eventually(
        "the Sidecar's egress hosts leave b out",
        Duration::from_secs(10),
        || async {
            let gone = call("b").await;
            (gone.status == 404 && gone.header("x-weft-response-flags") == Some("NR")).then_some(())
        },
    )
    .await;
    let seen = b.hits();
    assert_eq!(call("b").await.status, 404);
    assert_eq!(b.hits(), seen, "b is no longer reached");
    assert_eq!(
        call("a").await.body,
        "a",
        "the host the Sidecar lists stays"
    );

    // Istio 1.31's subtraction: everything but a.
    h.write(&format!(
        "{services}apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default}}\nspec:\n  egress:\n  - hosts: [\"*/*\", \"~./a.default.svc.cluster.local\"]\n"
    ));
    eventually(
        "~./a subtracts a from */*",
        Duration::from_secs(10),
        || async {
            let gone = call("a").await;
            (gone.status == 404 && gone.header("x-weft-response-flags") == Some("NR")).then_some(())
        },
    )
    .await;
    assert_eq!(call("b").await.body, "b", "*/* imports b again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegating_rule_routes_by_its_delegates_rules() {
    let v1 = upstream::named("v1").await;
    let v2 = upstream::named("v2").await;
    // The root keeps /api for the team's delegate (a VirtualService without hosts).
    let root = virtual_service(
        "reviews",
        "  - match: [{uri: {prefix: /api}}]\n    delegate: {name: reviews-api}\n  - route: [{destination: {host: reviews, subset: v1}}]\n",
    );
    let delegate = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews-api}\nspec:\n  http:\n  - match: [{uri: {prefix: /api/v2}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n  - match: [{uri: {prefix: /elsewhere}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n";
    let yaml = format!(
        "{}{}{root}{delegate}",
        service("reviews", 8080, "HTTP", &[(v1.addr, "v1"), (v2.addr, "v2")]),
        subsets("reviews"),
    );
    let h = Harness::start(&yaml).await;
    assert_eq!(
        get(h.proxy.outbound, "http://reviews:8080/api/v2/x")
            .await
            .body,
        "v2"
    );
    assert_eq!(
        get(h.proxy.outbound, "http://reviews:8080/other")
            .await
            .body,
        "v1"
    );
    // Under /api but in no delegate rule: the root's next rules decide, as in Istio.
    assert_eq!(
        get(h.proxy.outbound, "http://reviews:8080/api/v1")
            .await
            .body,
        "v1"
    );
    // A delegate rule outside the root's /api is dropped, not routed.
    assert_eq!(
        get(h.proxy.outbound, "http://reviews:8080/elsewhere")
            .await
            .body,
        "v1"
    );
}
