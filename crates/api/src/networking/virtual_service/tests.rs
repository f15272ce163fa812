use super::*;
use crate::testing::{assert_errors, errors, spec_issues};

#[test]
fn the_seed_rule_is_valid() {
    let issues = spec_issues::<VirtualService>(
        "hosts: [recommendation-service]\nhttp:\n- route:\n  - destination: {host: recommendation-service, subset: v1}\n    weight: 10\n  - destination: {host: recommendation-service, subset: v2}\n    weight: 90\n",
    )
    .expect("reads");
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn every_mistake_is_reported_with_its_path() {
    assert_errors::<VirtualService>(
        r#"
hosts: [reviews, reviews]
http:
- match: [{uri: {regex: "("}}, {headers: {"x bad": {exact: a}}}]
  route:
  - destination: {host: reviews}
    weight: -5
  - destination: {host: reviews, subset: V2}
    weight: 5
  timeout: 0.5ms
  retries: {attempts: 0, retryOn: "5xx,bogus"}
  fault:
    abort: {httpStatus: 700, percentage: {value: 120}}
  mirror: {host: a}
  mirrors: [{destination: {host: b}}]
"#,
        &[
            "spec.hosts[1]: duplicate host",
            "spec.http[0].match[0].uri.regex: invalid regex",
            "spec.http[0].match[1].headers.x bad: invalid header name",
            "spec.http[0].route[0].weight: must not be negative (got -5)",
            "spec.http[0].route[1].destination.subset: invalid subset name",
            "spec.http[0].timeout: must be at least 1ms",
            "spec.http[0].retries: attempts is 0",
            "spec.http[0].retries.retryOn: \"bogus\" is not a valid retryOn policy",
            "spec.http[0].fault.abort.httpStatus: must be in 200..600 (got 700)",
            "spec.http[0].fault.abort.percentage.value: percentage must be in [0, 100]",
            "spec.http[0]: mirror and mirrors cannot both be set",
        ],
    );
}

#[test]
fn zero_total_weight_needs_several_destinations() {
    let two = spec_issues::<VirtualService>(
        "hosts: [a]\nhttp:\n- route:\n  - destination: {host: a, subset: x}\n  - destination: {host: a, subset: \"y\"}\n",
    )
    .expect("reads");
    assert_eq!(
        errors(&two),
        [
            "spec.http[0].route: total destination weight must not be 0 when there are several destinations"
        ]
    );
    let one =
        spec_issues::<VirtualService>("hosts: [a]\nhttp:\n- route:\n  - destination: {host: a}\n")
            .expect("reads");
    assert!(errors(&one).is_empty());
}

#[test]
fn deprecated_integer_percent_is_a_warning() {
    let issues = spec_issues::<VirtualService>(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]\n  fault: {abort: {httpStatus: 500, percent: 100}}\n",
    )
    .expect("reads");
    assert!(errors(&issues).is_empty(), "{issues:?}");
    assert!(
        issues
            .iter()
            .any(|i| i.path == "spec.http[0].fault.abort.percent"
                && i.message.contains("deprecated"))
    );
}

#[test]
fn grpc_status_names_and_unsupported_faults() {
    let issues = spec_issues::<VirtualService>(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]\n  fault:\n    abort: {grpcStatus: UNAVAILBLE}\n    delay: {exponentialDelay: 1s}\n",
    )
    .expect("reads");
    let errs = errors(&issues);
    assert!(
        errs.iter().any(|e| e.contains(
            "grpcStatus: unknown gRPC status \"UNAVAILBLE\" (did you mean \"UNAVAILABLE\"?)"
        )),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("exponentialDelay is not supported")),
        "{errs:?}"
    );
}

#[test]
fn rule_shape_and_catch_all_warning() {
    let issues = spec_issues::<VirtualService>(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]\n- match: [{uri: {prefix: /x}}]\n  redirect: {uri: /y}\n  rewrite: {uri: /z}\n- match: [{uri: {prefix: /q}}]\n",
    )
    .expect("reads");
    let errs = errors(&issues);
    assert!(
        errs.contains(
            &"spec.http[1].rewrite: rewrite cannot be combined with redirect".to_string()
        ),
        "{errs:?}"
    );
    assert!(
        errs.contains(
            &"spec.http[2]: a rule needs one of route, redirect, directResponse or delegate"
                .to_string()
        )
    );
    assert!(
        issues
            .iter()
            .any(|i| i.path == "spec.http[0]" && i.message.contains("only the last rule"))
    );
}

#[test]
fn tls_sni_must_be_within_hosts() {
    let issues = spec_issues::<VirtualService>(
        "hosts: [\"*.example.com\"]\ngateways: [gw]\ntls:\n- match: [{sniHosts: [a.example.com, other.org]}]\n  route: [{destination: {host: a.example.com}}]\n",
    )
    .expect("reads");
    assert_eq!(
        errors(&issues),
        [
            "spec.tls[0].match[0].sniHosts[1]: SNI host \"other.org\" is not within the VirtualService hosts"
        ]
    );
}

#[test]
fn redirect_prefix_rewrite_is_read_and_excludes_uri() {
    let ok = spec_issues::<VirtualService>(
        "hosts: [a]\nhttp:\n- match: [{uri: {prefix: /old/}}]\n  redirect: {prefixRewrite: /new/}\n",
    )
    .expect("reads");
    assert!(ok.is_empty(), "{ok:?}");
    assert_errors::<VirtualService>(
        "hosts: [a]\nhttp:\n- match: [{uri: {prefix: /old/}}]\n  redirect: {uri: /x, prefixRewrite: /new/}\n",
        &["spec.http[0].redirect: uri and prefixRewrite cannot both be set"],
    );
}

#[test]
fn fault_delay_without_fixed_delay_and_abort_without_status_warn_as_in_istio() {
    let issues = spec_issues::<VirtualService>(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]\n  fault:\n    delay: {percentage: {value: 10}}\n    abort: {percentage: {value: 10}}\n",
    )
    .expect("reads");
    assert_eq!(errors(&issues), Vec::<String>::new());
    let warned: Vec<String> = issues
        .iter()
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect();
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(warned[0].starts_with("spec.http[0].fault.delay: delay configured without fixedDelay"));
    assert!(
        warned[1].starts_with("spec.http[0].fault.abort: abort configured, but error type not set")
    );
    // A fault with neither is still an error, as in Istio.
    assert_errors::<VirtualService>(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]\n  fault: {}\n",
        &["spec.http[0].fault: a fault needs an abort or a delay"],
    );
}

#[test]
fn retry_on_is_split_on_commas_as_istio_does() {
    assert_errors::<VirtualService>(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]\n  retries: {attempts: 2, retryOn: \"5xx,,gateway-error, reset,599,503,retriable-4xx\"}\n",
        &[
            "spec.http[0].retries.retryOn: \"\" is not a valid retryOn policy (remove the empty entry between commas)",
            "spec.http[0].retries.retryOn: \" reset\" is not a valid retryOn policy (remove the spaces around it)",
            "spec.http[0].retries.retryOn: 599 is not an HTTP status code Istio accepts in retryOn",
        ],
    );
    assert_errors::<VirtualService>(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]\n  retries: {attempts: 2, retryOn: \"5xx,\"}\n",
        &["spec.http[0].retries.retryOn: \"\" is not a valid retryOn policy"],
    );
    // An empty retryOn is unset: not an error, even with attempts 0.
    let unset = spec_issues::<VirtualService>(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]\n  retries: {attempts: 0, retryOn: \"\"}\n",
    )
    .expect("reads");
    assert!(unset.is_empty(), "{unset:?}");
}

#[test]
fn jwt_claim_routing_is_for_gateways_only() {
    let rule = "http:\n- match: [{headers: {\"@request.auth.claims.groups\": {exact: admin}}}]\n  route: [{destination: {host: reviews}}]\n";
    let at_gateway =
        spec_issues::<VirtualService>(&format!("hosts: [\"*\"]\ngateways: [web-gateway]\n{rule}"))
            .expect("reads");
    assert!(errors(&at_gateway).is_empty(), "{at_gateway:?}");
    assert_errors::<VirtualService>(
        &format!("hosts: [reviews]\n{rule}"),
        &[
            "spec.http[0]: JWT claim based routing (key: @request.auth.claims.groups) is only supported for gateway, found no gateways: []",
        ],
    );
    assert_errors::<VirtualService>(
        "hosts: [\"*\"]\ngateways: [gw]\nhttp:\n- match: [{withoutHeaders: {\"@request.auth.claims[\": {exact: a}}}]\n  route: [{destination: {host: reviews}}]\n",
        &[
            "spec.http[0].match[0].withoutHeaders.@request.auth.claims[: invalid JWT claim routing key",
        ],
    );
    assert_eq!(
        routing_claim("@request.auth.claims.org.team"),
        Some(vec!["org", "team"])
    );
    assert_eq!(
        routing_claim("@request.auth.claims[a.b][c]"),
        Some(vec!["a.b", "c"])
    );
    assert_eq!(routing_claim("@request.auth.claims."), None);
    assert_eq!(routing_claim("x-user"), None);
}
