use super::*;
use crate::testing::{assert_errors, spec_issues};

#[test]
fn istio_examples_are_valid() {
    for yaml in [
        "tracing: [{randomSamplingPercentage: 10.00}]",
        "{selector: {matchLabels: {service.istio.io/canonical-name: foo}}, tracing: [{disableSpanReporting: true}]}",
        "tracing: [{providers: [{name: zipkin}], match: {mode: SERVER}, useRequestIdForTraceSampling: true}]",
        "tracing: [{customTags: {team: {literal: {value: shop}}, pod: {environment: {name: POD_NAME, defaultValue: none}}, user: {header: {name: x-user, defaultValue: anon}}}}]",
        "accessLogging: [{providers: [{name: envoy}], filter: {expression: 'response.code >= 400'}}]",
        "accessLogging: [{match: {mode: CLIENT}, disabled: true}]",
        "metrics: [{providers: [{name: prometheus}], reportingInterval: 10s, overrides: [{match: {metric: REQUEST_COUNT, mode: CLIENT}, disabled: true}]}]",
        "metrics: [{overrides: [{tagOverrides: {request_host: {value: request.host}, response_flags: {operation: REMOVE}, team: {value: \"'shop'\"}}}]}]",
    ] {
        assert_errors::<Telemetry>(yaml, &[]);
    }
}

#[test]
fn field_errors_name_the_path() {
    assert_errors::<Telemetry>(
        "tracing: [{randomSamplingPercentage: 120}]",
        &["spec.tracing[0].randomSamplingPercentage: must be a percentage in [0, 100]"],
    );
    assert_errors::<Telemetry>(
        "tracing: [{providers: [{name: a}, {name: b}]}]",
        &["spec.tracing[0].providers: at most one tracing provider"],
    );
    assert_errors::<Telemetry>(
        "tracing: [{customTags: {a: {literal: {value: ''}}, b: {}, c: {header: {name: 'bad header'}}}}]",
        &[
            "spec.tracing[0].customTags.a.literal.value: literal tag value may not be empty",
            "spec.tracing[0].customTags.b: a custom tag needs one of",
            "spec.tracing[0].customTags.c.header.name:",
        ],
    );
    assert_errors::<Telemetry>(
        "accessLogging: [{filter: {expression: 'response.code >='}}]",
        &["spec.accessLogging[0].filter.expression: must be a valid CEL expression"],
    );
    assert_errors::<Telemetry>(
        "metrics: [{overrides: [{tagOverrides: {a: {}, b: {operation: REMOVE, value: x}, c: {value: 'request.'}}}]}]",
        &[
            "spec.metrics[0].overrides[0].tagOverrides.a.value: must be set when operation is UPSERT",
            "spec.metrics[0].overrides[0].tagOverrides.b.value: may only be set when operation is UPSERT",
            "spec.metrics[0].overrides[0].tagOverrides.c.value: must be a valid CEL expression",
        ],
    );
    assert_errors::<Telemetry>(
        "{selector: {matchLabels: {app: a}}, targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: g}]}",
        &["spec: only one of selector, targetRef and targetRefs may be set"],
    );
}

#[test]
fn what_weft_cannot_honour_is_refused_by_name() {
    assert_errors::<Telemetry>(
        "tracing: [{enableIstioTags: false}]",
        &["spec.tracing[0].enableIstioTags: weft always adds Istio's tags"],
    );
    assert_errors::<Telemetry>(
        "tracing: [{customTags: {a: {formatter: {value: '%REQ(x)%'}}}}]",
        &["spec.tracing[0].customTags.a.formatter: weft has no Envoy substitution formatter"],
    );
    assert_errors::<Telemetry>(
        "metrics: [{overrides: [{match: {customMetric: my_metric}}]}]",
        &["spec.metrics[0].overrides[0].match.customMetric: weft defines no custom metrics"],
    );
}

#[test]
fn unknown_fields_and_values_do_not_read() {
    let e = spec_issues::<Telemetry>("tracing: [{sampling: 10}]").expect_err("unknown field");
    assert!(e.contains("sampling"), "{e}");
    let e = spec_issues::<Telemetry>("metrics: [{overrides: [{match: {metric: REQUESTS}}]}]")
        .expect_err("unknown metric");
    assert!(e.contains("REQUESTS"), "{e}");
}
