use super::*;

/// Follows `$ref` (alone or as the only `allOf` member) to the schema it names in `doc`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let reference = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|s| s.get("$ref"))
    });
    match reference.and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix(COMPONENTS)
                .expect("refs point at components");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Walks every schema in `schema` and reports keywords OpenAPI 3.0 lacks, with their path.
fn foreign_keywords(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(obj) = schema else {
        return;
    };
    for bad in [
        "$schema",
        "$defs",
        "const",
        "definitions",
        "prefixItems",
        "unevaluatedProperties",
        "examples",
    ] {
        if obj.contains_key(bad) {
            out.push(format!("{path}: {bad}"));
        }
    }
    if obj.get("type").is_some_and(|t| !t.is_string()) {
        out.push(format!("{path}: type {}", obj["type"]));
    }
    if obj.get("type").is_some_and(|t| t == "null") {
        out.push(format!("{path}: type null"));
    }
    for (key, value) in obj {
        match (key.as_str(), value) {
            ("properties", Value::Object(props)) => {
                for (name, prop) in props {
                    foreign_keywords(prop, &format!("{path}.{name}"), out);
                }
            }
            ("items" | "additionalProperties" | "not", v) => {
                foreign_keywords(v, &format!("{path}[{key}]"), out)
            }
            ("allOf" | "anyOf" | "oneOf", Value::Array(alternatives)) => {
                for (i, a) in alternatives.iter().enumerate() {
                    foreign_keywords(a, &format!("{path}[{key}/{i}]"), out);
                }
            }
            _ => {}
        }
    }
}

fn every_document() -> Vec<((&'static str, &'static str), Value)> {
    served_group_versions()
        .into_iter()
        .map(|(g, v)| ((g, v), openapi_v3(g, v)))
        .collect()
}

#[test]
fn virtual_service_http_routes_are_explained() {
    let doc = openapi_v3("networking.istio.io", "v1");
    let vs = &doc["components"]["schemas"]["io.istio.networking.v1.VirtualService"];
    let http = &vs["properties"]["spec"]["properties"]["http"];
    assert_eq!(http["type"], "array", "{http:#}");
    assert!(http["description"].is_string());
    let route = resolve(&doc, &http["items"]);
    assert_eq!(route["type"], "object", "{route:#}");
    for field in [
        "route",
        "match",
        "fault",
        "timeout",
        "retries",
        "mirrorPercentage",
    ] {
        let prop = &route["properties"][field];
        assert!(prop["description"].is_string(), "{field}: {prop:#}");
    }
    assert_eq!(route["properties"]["timeout"]["type"], "string");
    assert!(
        route["properties"].get("matches").is_none(),
        "serde rename is kept"
    );
    let matches = resolve(&doc, &route["properties"]["match"]["items"]);
    assert!(matches["properties"].get("uri").is_some(), "{matches:#}");
    assert!(
        matches["properties"].get("sourceLabels").is_some(),
        "camelCase names"
    );
}

#[test]
fn every_kind_has_a_schema_with_its_gvk() {
    for kind in Kind::ALL {
        for version in kind.api_versions() {
            let doc = openapi_v3(kind.group(), version);
            let name = format!(
                "{}.{}",
                component_prefix(kind.group(), version),
                kind.name()
            );
            let schema = &doc["components"]["schemas"][&name];
            assert_eq!(
                schema["x-kubernetes-group-version-kind"],
                json!([{ "group": kind.group(), "version": version, "kind": kind.name() }]),
                "{name}"
            );
            // An EndpointSlice's and a Secret's fields are top-level, not under `spec`.
            let body = match kind {
                Kind::EndpointSlice => "endpoints",
                Kind::Secret | Kind::ConfigMap => "data",
                _ => "spec",
            };
            for field in ["apiVersion", "kind", "metadata", body, "status"] {
                assert!(schema["properties"].get(field).is_some(), "{name}.{field}");
            }
            if !matches!(kind, Kind::EndpointSlice | Kind::Secret | Kind::ConfigMap) {
                assert_eq!(schema["properties"]["spec"]["type"], "object", "{name}");
            }
            // Of Kubernetes' kinds weft reads a part: the rest passes through.
            if kind.is_kubernetes() {
                assert_eq!(
                    schema["x-kubernetes-preserve-unknown-fields"], true,
                    "{name}"
                );
            }
            let meta = resolve(&doc, &schema["properties"]["metadata"]);
            assert_eq!(
                meta["properties"]["managedFields"]["items"]["type"],
                "object"
            );
            assert_eq!(
                schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"],
                true
            );
            let base = super::group_version_path(kind.group(), version);
            let list = if kind.is_namespaced() {
                format!("/{base}/namespaces/{{namespace}}/{}", kind.plural())
            } else {
                format!("/{base}/{}/{{name}}", kind.plural())
            };
            assert!(doc["paths"].get(&list).is_some(), "{list}");
        }
    }
}

#[test]
fn no_reference_dangles() {
    for ((g, v), doc) in every_document() {
        let mut found = Vec::new();
        collect_refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix(COMPONENTS)
                .unwrap_or_else(|| panic!("{g}/{v}: {r}"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{g}/{v}: {r} dangles"
            );
        }
    }
}

#[test]
fn only_openapi_30_keywords_remain() {
    for ((g, v), doc) in every_document() {
        assert_eq!(doc["openapi"], "3.0.0");
        let text = serde_json::to_string(&doc).expect("serializes");
        let reparsed: Value = serde_json::from_str(&text).expect("valid JSON");
        let mut bad = Vec::new();
        for (name, schema) in reparsed["components"]["schemas"]
            .as_object()
            .expect("schemas")
        {
            foreign_keywords(schema, name, &mut bad);
        }
        assert!(bad.is_empty(), "{g}/{v}: {bad:#?}");
    }
}

#[test]
fn enums_list_their_values() {
    let doc = openapi_v3("networking.istio.io", "v1");
    let cors = &doc["components"]["schemas"]["io.istio.networking.v1.CorsPolicy"];
    let unmatched = resolve(&doc, &cors["properties"]["unmatchedPreflights"]);
    assert_eq!(unmatched["type"], "string", "{unmatched:#}");
    assert_eq!(
        unmatched["enum"],
        json!(["UNSPECIFIED", "FORWARD", "IGNORE"])
    );
}

#[test]
fn index_names_every_served_group_version() {
    let index = openapi_v3_index();
    let paths = index["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 15, "{paths:#?}");
    for telemetry in [
        "apis/telemetry.istio.io/v1",
        "apis/telemetry.istio.io/v1alpha1",
        "apis/gateway.networking.k8s.io/v1",
        "apis/gateway.networking.k8s.io/v1beta1",
        "apis/gateway.networking.k8s.io/v1alpha2",
        "apis/gateway.networking.k8s.io/v1alpha3",
    ] {
        assert!(paths.contains_key(telemetry), "{paths:#?}");
    }
    let url = paths["apis/networking.istio.io/v1"]["serverRelativeURL"]
        .as_str()
        .expect("url");
    assert!(
        url.starts_with("/openapi/v3/apis/networking.istio.io/v1?hash="),
        "{url}"
    );
    assert_eq!(index, openapi_v3_index(), "the hash is stable");
    assert!(paths.contains_key("apis/policy.weft.dev/v1alpha1"));
    assert!(
        paths.contains_key("apis/telemetry.istio.io/v1")
            && paths.contains_key("apis/telemetry.istio.io/v1alpha1")
    );
    // Kubernetes' core group is served at /api/v1, as Kubernetes serves it.
    assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
}

#[test]
fn duration_is_a_string_matching_what_parses() {
    let schema = SchemaSettings::openapi3()
        .into_generator()
        .into_root_schema_for::<crate::Duration>();
    let pattern = regex::Regex::new(
        schema
            .get("pattern")
            .and_then(Value::as_str)
            .expect("pattern"),
    )
    .expect("regex");
    for ok in [
        "10s", "0.5s", "100ms", "1m30s", "1h", "250us", "0", "+1s", ".5s",
    ] {
        assert!(crate::duration::parse_duration(ok).is_ok(), "{ok}");
        assert!(pattern.is_match(ok), "{ok}");
    }
    for bad in ["", "10", "s", "-1s", "1x", "1..5s", "1s 2s"] {
        assert!(!pattern.is_match(bad), "{bad}");
    }
}
