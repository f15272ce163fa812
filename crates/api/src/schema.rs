//! OpenAPI v3 documents for the kinds weft serves, as a Kubernetes API server publishes them.
//!
//! [`openapi_v3`] is the document at `/openapi/v3/apis/<group>/<version>`, which `kubectl explain`
//! and client-side validation read; [`openapi_v3_index`] is the `/openapi/v3` discovery document
//! that points at each of them.
//!
//! Spec schemas come from the `schemars::JsonSchema` derives on the API types, so doc comments are
//! descriptions and serde's renames hold. schemars writes JSON Schema with its OpenAPI 3.0 settings;
//! a pass over the result then leaves only what OpenAPI 3.0 (and so Kubernetes) knows: a null
//! alternative becomes `nullable: true`, `const` becomes a one-value `enum`, documented string
//! enums become one `enum` whose values are listed in the description, and `$ref` stands alone
//! (wrapped in `allOf` when it has siblings, as Kubernetes does).
//!
//! Component names follow Kubernetes: `io.istio.networking.v1.VirtualService` for a kind (the
//! group reversed, the version, the kind), the same prefix for the types its spec uses.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::kube;
use crate::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use crate::policy::RateLimit;
use crate::resource::Kind;
use crate::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use crate::telemetry::Telemetry;

/// Where schemas live in an OpenAPI 3.0 document.
const COMPONENTS: &str = "#/components/schemas/";
/// The component name of Kubernetes' ObjectMeta.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
/// The component name of Kubernetes' ListMeta.
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// The OpenAPI 3.0 document for one group and version: every kind weft serves there, with its
/// resource paths. A group/version weft does not serve gives a document with no kinds.
pub fn openapi_v3(group: &str, version: &str) -> Value {
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.group() == group && k.api_versions().contains(&version))
        .collect();
    let prefix = component_prefix(group, version);
    let mut generator = SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator();

    let mut schemas = Map::new();
    let mut paths = Map::new();
    for kind in &kinds {
        let spec = spec_schema(*kind, &mut generator);
        let gvk = json!([{ "group": group, "version": version, "kind": kind.name() }]);
        let name = format!("{prefix}.{}", kind.name());
        schemas.insert(
            name.clone(),
            json!({
                "description": format!("{} ({group}/{version}).", kind.name()),
                "type": "object",
                "properties": {
                    "apiVersion": {
                        "description": "APIVersion defines the versioned schema of this representation of an object.",
                        "type": "string",
                    },
                    "kind": {
                        "description": "Kind is a string value representing the REST resource this object represents.",
                        "type": "string",
                    },
                    "metadata": { "allOf": [{ "$ref": format!("{COMPONENTS}{OBJECT_META}") }], "default": {} },
                    "spec": spec,
                    "status": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                },
                "x-kubernetes-group-version-kind": gvk,
            }),
        );
        schemas.insert(
            format!("{name}List"),
            json!({
                "description": format!("A list of {}.", kind.plural()),
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": { "type": "string" },
                    "kind": { "type": "string" },
                    "metadata": { "allOf": [{ "$ref": format!("{COMPONENTS}{LIST_META}") }], "default": {} },
                    "items": { "type": "array", "items": { "$ref": format!("{COMPONENTS}{name}") } },
                },
                "x-kubernetes-group-version-kind": [{ "group": group, "version": version, "kind": format!("{}List", kind.name()) }],
            }),
        );
        add_paths(&mut paths, group, version, *kind, &name);
    }

    // A spec type is inlined in its kind and also stays a component when another spec uses it
    // (a ServiceEntry's endpoints are WorkloadEntries); it is then named `<Kind>Spec`.
    let definitions = generator.take_definitions(true);
    inline_specs(&mut schemas, &definitions);
    for kind in kinds.iter().filter(|k| k.is_kubernetes()) {
        let Some(Value::Object(schema)) = schemas.get_mut(&format!("{prefix}.{}", kind.name()))
        else {
            continue;
        };
        schema.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
        if let Some(Value::Object(spec)) =
            schema.get_mut("properties").and_then(|p| p.get_mut("spec"))
        {
            spec.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
        }
        if *kind == Kind::EndpointSlice {
            if let Some(Value::Object(props)) = schema.get_mut("properties") {
                props.remove("spec");
                props.insert(
                    "addressType".into(),
                    json!({ "type": "string", "description": "IPv4, IPv6 or FQDN." }),
                );
                props.insert("endpoints".into(), json!({ "type": "array", "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } }));
                props.insert("ports".into(), json!({ "type": "array", "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } }));
            }
        }
        if *kind == Kind::Secret {
            if let Some(Value::Object(props)) = schema.get_mut("properties") {
                props.remove("spec");
                props.insert("type".into(), json!({ "type": "string", "description": "Opaque (default), kubernetes.io/tls, ..." }));
                props.insert("data".into(), json!({ "type": "object", "additionalProperties": { "type": "string", "format": "byte" }, "description": "The values, base64-encoded." }));
                props.insert("stringData".into(), json!({ "type": "object", "additionalProperties": { "type": "string" }, "description": "Values in plain text, folded into data when written." }));
                props.insert("immutable".into(), json!({ "type": "boolean" }));
            }
        }
        if *kind == Kind::ConfigMap {
            if let Some(Value::Object(props)) = schema.get_mut("properties") {
                props.remove("spec");
                props.insert(
                    "data".into(),
                    json!({ "type": "object", "additionalProperties": { "type": "string" } }),
                );
                props.insert("binaryData".into(), json!({ "type": "object", "additionalProperties": { "type": "string", "format": "byte" } }));
                props.insert("immutable".into(), json!({ "type": "boolean" }));
            }
        }
    }
    let mut used = Vec::new();
    collect_refs(&Value::Object(schemas.clone()), &mut used);
    collect_refs(&Value::Object(definitions.clone()), &mut used);
    let mut local = BTreeMap::new();
    for (name, schema) in definitions {
        let component = if kinds.iter().any(|k| k.name() == name) {
            if !used.contains(&format!("{COMPONENTS}{name}")) {
                continue;
            }
            format!("{prefix}.{name}Spec")
        } else {
            format!("{prefix}.{name}")
        };
        let previous = schemas.insert(component.clone(), schema);
        debug_assert!(
            previous.is_none(),
            "component {component} collides with a kind"
        );
        local.insert(name, component);
    }
    let mut schemas = Value::Object(schemas);
    to_openapi30(&mut schemas, &local);
    if let Value::Object(s) = &mut schemas {
        s.insert(OBJECT_META.into(), object_meta());
        s.insert(LIST_META.into(), list_meta());
    }

    json!({
        "openapi": "3.0.0",
        "info": { "title": "Weft", "version": "unversioned" },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// The `/openapi/v3` discovery document: one entry per group/version weft serves, each naming its
/// document's URL with a hash of the document, so clients re-fetch only when it changes.
pub fn openapi_v3_index() -> Value {
    let mut paths = Map::new();
    for (group, version) in served_group_versions() {
        let doc = openapi_v3(group, version);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        doc.to_string().hash(&mut hasher);
        let path = group_version_path(group, version);
        paths.insert(
            path.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={:016X}", hasher.finish()) }),
        );
    }
    json!({ "paths": paths })
}

/// `apis/<group>/<version>`, or `api/<version>` for Kubernetes' core group.
pub fn group_version_path(group: &str, version: &str) -> String {
    match group {
        "" => format!("api/{version}"),
        _ => format!("apis/{group}/{version}"),
    }
}

/// Every group/version at least one kind is served at, in a stable order.
fn served_group_versions() -> BTreeSet<(&'static str, &'static str)> {
    Kind::ALL
        .into_iter()
        .flat_map(|k| k.api_versions().iter().map(move |v| (k.group(), *v)))
        .collect()
}

/// `networking.istio.io`, `v1` → `io.istio.networking.v1`; Kubernetes' own groups as
/// Kubernetes names them (`io.k8s.api.core.v1`, `io.k8s.api.apps.v1`).
pub fn component_prefix(group: &str, version: &str) -> String {
    match group {
        "" => return format!("io.k8s.api.core.{version}"),
        "apps" => return format!("io.k8s.api.apps.{version}"),
        "discovery.k8s.io" => return format!("io.k8s.api.discovery.{version}"),
        _ => {}
    }
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    parts.push(version);
    parts.join(".")
}

/// The spec type's schema as schemars gives it: a reference into the generator's definitions.
fn spec_schema(kind: Kind, generator: &mut SchemaGenerator) -> Value {
    let schema = match kind {
        Kind::VirtualService => generator.subschema_for::<VirtualService>(),
        Kind::DestinationRule => generator.subschema_for::<DestinationRule>(),
        Kind::ServiceEntry => generator.subschema_for::<ServiceEntry>(),
        Kind::Gateway => generator.subschema_for::<Gateway>(),
        Kind::Sidecar => generator.subschema_for::<Sidecar>(),
        Kind::WorkloadEntry => generator.subschema_for::<WorkloadEntry>(),
        Kind::PeerAuthentication => generator.subschema_for::<PeerAuthentication>(),
        Kind::AuthorizationPolicy => generator.subschema_for::<AuthorizationPolicy>(),
        Kind::RequestAuthentication => generator.subschema_for::<RequestAuthentication>(),
        Kind::Telemetry => generator.subschema_for::<Telemetry>(),
        Kind::HttpRoute => generator.subschema_for::<crate::gateway_api::HttpRoute>(),
        Kind::GrpcRoute => generator.subschema_for::<crate::gateway_api::GrpcRoute>(),
        Kind::TcpRoute => generator.subschema_for::<crate::gateway_api::TcpRoute>(),
        Kind::TlsRoute => generator.subschema_for::<crate::gateway_api::TlsRoute>(),
        Kind::GatewayClass => generator.subschema_for::<crate::gateway_api::GatewayClass>(),
        Kind::KubernetesGateway => generator.subschema_for::<crate::gateway_api::Gateway>(),
        Kind::ReferenceGrant => generator.subschema_for::<crate::gateway_api::ReferenceGrant>(),
        Kind::RateLimit => generator.subschema_for::<RateLimit>(),
        // Of Kubernetes' kinds weft reads a part and keeps the rest: the schema describes the
        // part and lets every other field through (see [`kube_schema`]).
        Kind::Service => generator.subschema_for::<kube::service::ServiceSpec>(),
        Kind::Pod => generator.subschema_for::<kube::pod::PodSpec>(),
        Kind::Deployment => generator.subschema_for::<kube::deployment::DeploymentSpec>(),
        Kind::Namespace | Kind::EndpointSlice | Kind::Secret | Kind::ConfigMap => {
            return json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true });
        }
    };
    schema.to_value()
}

/// Replaces each kind's `spec`, a reference to its spec type, by that type's schema, so the
/// kind carries it inline as Kubernetes serves CRD schemas.
fn inline_specs(schemas: &mut Map<String, Value>, definitions: &Map<String, Value>) {
    for schema in schemas.values_mut() {
        let Some(spec) = schema.pointer_mut("/properties/spec") else {
            continue;
        };
        let name = spec
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(COMPONENTS));
        if let Some(definition) = name.and_then(|n| definitions.get(n)) {
            *spec = definition.clone();
        }
    }
}

/// Rewrites `schema` and its subschemas to OpenAPI 3.0 as Kubernetes serves it (see the module
/// docs), and points references to generated components (`local`) at their prefixed names.
fn to_openapi30(schema: &mut Value, local: &BTreeMap<String, String>) {
    match schema {
        Value::Array(items) => {
            for item in items {
                to_openapi30(item, local);
            }
        }
        Value::Object(obj) => {
            for (key, value) in obj.iter_mut() {
                // Under `properties` and similar maps the keys are names, not keywords.
                if matches!(key.as_str(), "properties" | "patternProperties") {
                    if let Value::Object(props) = value {
                        for prop in props.values_mut() {
                            to_openapi30(prop, local);
                        }
                    }
                } else if !matches!(key.as_str(), "default" | "example" | "enum") {
                    to_openapi30(value, local);
                }
            }
            normalize(obj, local);
        }
        _ => {}
    }
}

/// One schema object's rewrite, its subschemas already done.
fn normalize(obj: &mut Map<String, Value>, local: &BTreeMap<String, String>) {
    obj.remove("$schema");
    if let Some(Value::String(r)) = obj.get_mut("$ref") {
        if let Some(component) = r.strip_prefix(COMPONENTS).and_then(|n| local.get(n)) {
            *r = format!("{COMPONENTS}{component}");
        }
    }
    if let Some(value) = obj.remove("const") {
        obj.insert("enum".into(), Value::Array(vec![value]));
    }
    if let Some(Value::Array(types)) = obj.get("type") {
        let non_null: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if non_null.len() < types.len() {
            obj.insert("nullable".into(), true.into());
        }
        match non_null.len() {
            1 => {
                obj.insert("type".into(), non_null[0].clone());
            }
            _ => {
                obj.remove("type");
            }
        }
    }
    for keyword in ["anyOf", "oneOf"] {
        let Some(Value::Array(alternatives)) = obj.get(keyword) else {
            continue;
        };
        let non_null: Vec<Value> = alternatives
            .iter()
            .filter(|a| !is_null_schema(a))
            .cloned()
            .collect();
        if non_null.len() < alternatives.len() {
            obj.insert("nullable".into(), true.into());
        }
        if non_null.len() == 1 {
            obj.remove(keyword);
            let Value::Object(only) = non_null.into_iter().next().unwrap_or_default() else {
                continue;
            };
            for (k, v) in only {
                if k == "description" && obj.contains_key("description") {
                    continue;
                }
                obj.entry(k).or_insert(v);
            }
        } else if let Some(merged) = string_enum(&non_null) {
            obj.remove(keyword);
            let (values, notes) = merged;
            obj.insert("type".into(), "string".into());
            obj.insert("enum".into(), Value::Array(values));
            let description = match obj.get("description").and_then(Value::as_str) {
                Some(d) => format!("{d}\n\n{notes}"),
                None => notes,
            };
            obj.insert("description".into(), description.into());
        } else {
            obj.insert(keyword.into(), Value::Array(non_null));
        }
    }
    // OpenAPI 3.0 ignores siblings of `$ref`; Kubernetes wraps such a reference in `allOf`.
    if obj.len() > 1 {
        if let Some(reference) = obj.remove("$ref") {
            obj.insert("allOf".into(), json!([{ "$ref": reference }]));
        }
    }
}

/// Every `$ref` in `value`, as written.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(obj) => {
            for (key, v) in obj {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

/// Whether `schema` only allows `null`, as schemars writes an `Option`'s other alternative.
fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").is_some_and(|t| t == "null")
        || schema
            .get("enum")
            .is_some_and(|e| e.as_array().is_some_and(|e| e.iter().all(Value::is_null)))
}

/// The values of alternatives that are each one string (a documented unit enum variant), and a
/// `VALUE: description` line for each variant that has a description.
fn string_enum(alternatives: &[Value]) -> Option<(Vec<Value>, String)> {
    let mut values = Vec::new();
    let mut notes = Vec::new();
    for alternative in alternatives {
        let Some(Value::Array(one)) = alternative.get("enum") else {
            return None;
        };
        let [Value::String(value)] = one.as_slice() else {
            return None;
        };
        if let Some(d) = alternative.get("description").and_then(Value::as_str) {
            notes.push(format!("{value}: {d}"));
        }
        values.push(Value::String(value.clone()));
    }
    Some((values, notes.join("\n")))
}

/// Kubernetes' ObjectMeta, with the fields weft reads and keeps.
fn object_meta() -> Value {
    let text = |d: &str| json!({ "type": "string", "description": d });
    let map = |d: &str| json!({ "type": "object", "description": d, "additionalProperties": { "type": "string", "default": "" } });
    json!({
        "description": "ObjectMeta is metadata that all persisted resources must have.",
        "type": "object",
        "properties": {
            "name": text("Name must be unique within a namespace."),
            "generateName": text("An optional prefix the server uses to generate a unique name when name is empty."),
            "namespace": text("The namespace the resource is in; empty means \"default\"."),
            "labels": map("Map of string keys and values that can be used to organize and categorize objects."),
            "annotations": map("Unstructured key value map stored with a resource."),
            "resourceVersion": text("An opaque value that represents the internal version of this object."),
            "uid": text("The unique in time and space value for this object."),
            "generation": { "type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state." },
            "creationTimestamp": { "type": "string", "format": "date-time", "description": "When this object was created (RFC 3339)." },
            "deletionTimestamp": { "type": "string", "format": "date-time", "description": "When this object will be deleted (RFC 3339)." },
            "selfLink": text("Deprecated; not set by weft."),
            "finalizers": { "type": "array", "description": "Must be empty before the object is deleted from the registry.", "items": { "type": "string", "default": "" } },
            "ownerReferences": {
                "type": "array",
                "description": "Objects depended by this object.",
                "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
            },
            "managedFields": {
                "type": "array",
                "description": "Which workflow manages which fields (server-side apply).",
                "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
            },
        },
    })
}

/// Kubernetes' ListMeta.
fn list_meta() -> Value {
    json!({
        "description": "ListMeta describes metadata that synthetic resources must have.",
        "type": "object",
        "properties": {
            "resourceVersion": { "type": "string", "description": "The version of the list, for watches." },
            "continue": { "type": "string", "description": "Set when more results are available." },
            "remainingItemCount": { "type": "integer", "format": "int64", "description": "Items left after this page." },
            "selfLink": { "type": "string", "description": "Deprecated; not set by weft." },
        },
    })
}

/// The resource paths Kubernetes serves for a namespaced kind, with their operations.
fn add_paths(paths: &mut Map<String, Value>, group: &str, version: &str, kind: Kind, name: &str) {
    let one = json!({ "$ref": format!("{COMPONENTS}{name}") });
    let list = json!({ "$ref": format!("{COMPONENTS}{name}List") });
    let gvk = json!({ "group": group, "version": version, "kind": kind.name() });
    let op = |verb: &str, action: &str, schema: &Value, body: bool| {
        let mut op = json!({
            "operationId": format!("{verb}{}", kind.name()),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": schema } } } },
        });
        if body {
            op["requestBody"] =
                json!({ "content": { "application/json": { "schema": one.clone() } } });
        }
        op
    };
    let param = |n: &str, d: &str| json!({ "name": n, "in": "path", "required": true, "description": d, "schema": { "type": "string" } });
    let namespace = param(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    );
    let object = param("name", format!("name of the {}", kind.name()).as_str());
    let base = format!("/{}", group_version_path(group, version));
    let plural = kind.plural();
    if !kind.is_namespaced() {
        let object = param("name", format!("name of the {}", kind.name()).as_str());
        paths.insert(
            format!("{base}/{plural}"),
            json!({ "get": op("list", "list", &list, false), "post": op("create", "post", &one, true) }),
        );
        paths.insert(
            format!("{base}/{plural}/{{name}}"),
            json!({
                "parameters": [object],
                "get": op("read", "get", &one, false),
                "put": op("replace", "put", &one, true),
                "delete": op("delete", "delete", &json!({ "type": "object" }), false),
            }),
        );
        return;
    }
    paths.insert(
        format!("{base}/{plural}"),
        json!({ "get": op("listAllNamespaces", "list", &list, false) }),
    );
    paths.insert(
        format!("{base}/namespaces/{{namespace}}/{plural}"),
        json!({
            "parameters": [namespace],
            "get": op("list", "list", &list, false),
            "post": op("create", "post", &one, true),
        }),
    );
    paths.insert(
        format!("{base}/namespaces/{{namespace}}/{plural}/{{name}}"),
        json!({
            "parameters": [object, namespace],
            "get": op("read", "get", &one, false),
            "put": op("replace", "put", &one, true),
            "delete": op("delete", "delete", &json!({ "type": "object" }), false),
        }),
    );
}

#[cfg(test)]
mod tests;
