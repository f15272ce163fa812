use super::*;
use crate::testing::{errors, spec_issues};

fn errors_of(yaml: &str) -> Vec<String> {
    let issues = spec_issues::<HttpRoute>(yaml).expect("reads");
    errors(&issues)
}

#[test]
fn the_seed_split_as_an_http_route_is_valid() {
    let yaml = r#"
parentRefs:
- {group: "", kind: Service, name: recommendation-service, port: 8080}
rules:
- backendRefs:
  - {name: recommendation-v1, port: 8080, weight: 10}
  - {name: recommendation-v2, port: 8080, weight: 90}
"#;
    assert_eq!(errors_of(yaml), Vec::<String>::new());
}

#[test]
fn the_crds_rules_are_enforced_at_their_paths() {
    let yaml = r#"
parentRefs:
- {group: "", kind: Service, name: svc}
- {group: "", kind: Service, name: svc}
- {name: gw}
hostnames: ["Bad_Host", "10.0.0.1"]
rules:
- name: a
  matches:
  - path: {type: PathPrefix, value: "foo"}
  - path: {type: Exact, value: "/a//b"}
  - path: {type: RegularExpression, value: "(["}
  - method: FETCH
    headers: [{name: "bad header", value: x}]
  filters:
  - type: RequestRedirect
    requestRedirect: {statusCode: 305, scheme: ftp}
  - type: URLRewrite
    urlRewrite: {path: {type: ReplacePrefixMatch}}
  - {type: RequestHeaderModifier}
  backendRefs:
  - {name: v1, weight: 2000000}
  timeouts: {request: 1s, backendRequest: 2s}
- name: a
  retry: {attempts: 2, codes: [503, 200], backoff: soon}
  filters:
  - type: CORS
    cors: {allowOrigins: ["https://*.example.com", "example.com"], allowMethods: ["*", GET, FETCH], maxAge: 0}
  timeouts: {request: "1 second"}
"#;
    let errs = errors_of(yaml);
    for want in [
        "parentRefs[1]: sectionName must be specified",
        "hostnames[0]: Invalid value: \"Bad_Host\"",
        "hostnames[1]: Invalid value: \"10.0.0.1\"",
        "rules[0].matches[0].path.value: must be an absolute path",
        "rules[0].matches[1].path.value: must not contain '//'",
        "rules[0].matches[2].path.value: Invalid value: \"([\": not a regular expression",
        "rules[0].matches[3].method: Unsupported value: \"FETCH\"",
        "rules[0].matches[3].headers[0].name: Invalid value: \"bad header\"",
        "rules[0]: RequestRedirect filter must not be used together with backendRefs",
        "rules[0].filters: May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite",
        "rules[0].filters[0].requestRedirect.scheme: Unsupported value: \"ftp\"",
        "rules[0].filters[0].requestRedirect.statusCode: Unsupported value: 305",
        "rules[0].filters[1].urlRewrite.path: replacePrefixMatch must be specified",
        "rules[0]: When using RequestRedirect or URLRewrite filter with path.type ReplacePrefixMatch, exactly one PathPrefix match must be specified",
        "rules[0].filters[2]: filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type",
        "rules[0].backendRefs[0].weight: Invalid value: 2000000",
        "rules[0].backendRefs[0]: Must have port for Service reference",
        "rules[0].timeouts: backendRequest timeout cannot be longer than request timeout",
        "rules[1].name: Duplicate value: \"a\"",
        "rules[1].retry.codes[1]: Invalid value: 200: must be 400 to 599",
        "rules[1].retry.backoff: \"soon\" is not a duration",
        "rules[1].filters[0].cors.allowOrigins[1]: Invalid value: \"example.com\"",
        "rules[1].filters[0].cors.allowMethods: * must be the only entry",
        "rules[1].filters[0].cors.allowMethods[2]: Unsupported value: \"FETCH\"",
        "rules[1].filters[0].cors.maxAge: Invalid value: 0",
        "rules[1].timeouts.request: \"1 second\" is not a duration",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want) || e.contains(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    assert!(
        !errs.iter().any(|e| e.contains("parentRefs[2]")),
        "a Gateway parent is accepted: {errs:#?}"
    );
}

#[test]
fn gateway_api_durations_read_as_gep_2257_writes_them() {
    use std::time::Duration;
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    for bad in ["", "10", "1.5s", "100000s", "1h1h1h1h1h", "-1s", "1d"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn mirror_shares_are_one_of_percent_or_fraction() {
    let yaml = r#"
parentRefs: [{group: "", kind: Service, name: svc, port: 80}]
rules:
- filters:
  - type: RequestMirror
    requestMirror: {backendRef: {name: copy}, percent: 50, fraction: {numerator: 1}}
  - type: RequestMirror
    requestMirror: {backendRef: {name: copy, port: 80}, fraction: {numerator: 3, denominator: 2}}
  - type: RequestMirror
    requestMirror: {backendRef: {name: copy, port: 80}, percent: 101}
  backendRefs: [{name: svc, port: 80}]
"#;
    let errs = errors_of(yaml);
    for want in [
        "spec.rules[0].filters[0].requestMirror: Only one of percent or fraction",
        "spec.rules[0].filters[0].requestMirror.backendRef: Must have port for Service reference",
        "spec.rules[0].filters[1].requestMirror.fraction: numerator must be less than or equal to denominator",
        "spec.rules[0].filters[2].requestMirror.percent: Invalid value: 101",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    let share = |p: Option<u32>, f: Option<(u32, Option<u32>)>| {
        RequestMirror {
            percent: p,
            fraction: f.map(|(numerator, denominator)| Fraction {
                numerator,
                denominator,
            }),
            ..RequestMirror::default()
        }
        .per_million()
    };
    assert_eq!(share(None, None), 1_000_000);
    assert_eq!(share(Some(25), None), 250_000);
    assert_eq!(share(None, Some((1, Some(3)))), 333_333);
    assert_eq!(share(None, Some((5, None))), 50_000);
}

#[test]
fn a_backends_header_modifiers_are_accepted_and_other_filters_refused_by_name() {
    let yaml = r#"
parentRefs: [{group: "", kind: Service, name: svc, port: 80}]
rules:
- backendRefs:
  - name: svc
    port: 80
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-backend, value: one}]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {remove: [server]}
    - type: URLRewrite
      urlRewrite: {hostname: other.example}
    - type: RequestHeaderModifier
"#;
    let errs = errors_of(yaml);
    assert!(
        errs.iter().any(|e| e.starts_with("spec.rules[0].backendRefs[0].filters[2].type: URLRewrite on a backendRef is not supported by weft")),
        "{errs:#?}"
    );
    // The filter rules of the CRDs hold for a backend's filters too.
    for want in [
        "spec.rules[0].backendRefs[0].filters: RequestHeaderModifier filter cannot be repeated",
        "spec.rules[0].backendRefs[0].filters[3]: filter.requestHeaderModifier must be specified",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 3, "{errs:#?}");
}
