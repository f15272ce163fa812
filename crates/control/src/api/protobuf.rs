//! Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`) of the objects
//! kubectl creates with its typed clients (`kubectl create secret`, `kubectl create
//! configmap`, `kubectl create namespace`): read into the JSON form the rest of the API
//! takes. Replies stay JSON,
//! which kubectl accepts too.
//!
//! The envelope is the magic `k8s\0` and a `runtime.Unknown` (its type meta, then the
//! object's bytes); the messages are those of k8s.io/api (generated.proto), of which the
//! fields weft keeps are read. An object of another kind is refused by name (415), with
//! the way that works (`kubectl apply -f`).

use std::collections::BTreeMap;

use prost::Message;
use serde_json::{Map, Value, json};
use weft_api::Kind;

/// The envelope's first bytes.
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", tag = "2")]
    raw: Vec<u8>,
    #[prost(string, tag = "3")]
    content_encoding: String,
}

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, tag = "1")]
    api_version: String,
    #[prost(string, tag = "2")]
    kind: String,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    generate_name: String,
    #[prost(string, tag = "3")]
    namespace: String,
    #[prost(string, tag = "6")]
    resource_version: String,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    type_: Option<String>,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
}

fn metadata(m: Option<ObjectMeta>) -> Value {
    let m = m.unwrap_or_default();
    let mut out = Map::new();
    let mut text = |k: &str, v: String| {
        if !v.is_empty() {
            out.insert(k.into(), Value::String(v));
        }
    };
    text("name", m.name);
    text("generateName", m.generate_name);
    text("namespace", m.namespace);
    text("resourceVersion", m.resource_version);
    if !m.labels.is_empty() {
        out.insert("labels".into(), json!(m.labels));
    }
    if !m.annotations.is_empty() {
        out.insert("annotations".into(), json!(m.annotations));
    }
    if !m.finalizers.is_empty() {
        out.insert("finalizers".into(), json!(m.finalizers));
    }
    Value::Object(out)
}

/// The JSON text of a protobuf-encoded `kind` object, or why it cannot be read.
pub fn to_json(kind: Kind, body: &[u8]) -> Result<String, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("not a Kubernetes protobuf object (no k8s\\0 envelope)")?;
    let unknown = Unknown::decode(envelope).map_err(|e| format!("the envelope: {e}"))?;
    if !unknown.content_encoding.is_empty() {
        return Err(format!(
            "content encoding {:?} is not read",
            unknown.content_encoding
        ));
    }
    let meta = unknown.type_meta.unwrap_or_default();
    if !meta.kind.is_empty() && meta.kind != kind.name() {
        return Err(format!(
            "the body holds a {}, the path names {}",
            meta.kind,
            kind.plural()
        ));
    }
    let api_version = match meta.api_version.as_str() {
        "" => "v1".to_string(),
        v => v.to_string(),
    };
    let raw = unknown.raw.as_slice();
    let value = match kind {
        Kind::Secret => {
            use base64::Engine;
            let s = Secret::decode(raw).map_err(|e| format!("the Secret: {e}"))?;
            let data: BTreeMap<String, String> = s
                .data
                .into_iter()
                .map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v)))
                .collect();
            let mut v = json!({
                "apiVersion": api_version, "kind": "Secret",
                "metadata": metadata(s.metadata),
            });
            if !data.is_empty() {
                v["data"] = json!(data);
            }
            if !s.string_data.is_empty() {
                v["stringData"] = json!(s.string_data);
            }
            if let Some(t) = s.type_.filter(|t| !t.is_empty()) {
                v["type"] = json!(t);
            }
            if let Some(i) = s.immutable {
                v["immutable"] = json!(i);
            }
            v
        }
        Kind::ConfigMap => {
            use base64::Engine;
            let c = ConfigMap::decode(raw).map_err(|e| format!("the ConfigMap: {e}"))?;
            let mut v = json!({
                "apiVersion": api_version, "kind": "ConfigMap",
                "metadata": metadata(c.metadata),
            });
            if !c.data.is_empty() {
                v["data"] = json!(c.data);
            }
            if !c.binary_data.is_empty() {
                let binary: BTreeMap<String, String> = c
                    .binary_data
                    .into_iter()
                    .map(|(k, b)| (k, base64::engine::general_purpose::STANDARD.encode(b)))
                    .collect();
                v["binaryData"] = json!(binary);
            }
            if let Some(i) = c.immutable {
                v["immutable"] = json!(i);
            }
            v
        }
        Kind::Namespace => {
            let n = Namespace::decode(raw).map_err(|e| format!("the Namespace: {e}"))?;
            json!({"apiVersion": api_version, "kind": "Namespace", "metadata": metadata(n.metadata)})
        }
        other => {
            return Err(format!(
                "weft reads {} in JSON or YAML only, not protobuf: write it to a file and use kubectl apply -f",
                other.plural()
            ));
        }
    };
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: "v1".into(),
                kind: kind.into(),
            }),
            raw,
            content_encoding: String::new(),
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    #[test]
    fn a_secret_in_protobuf_reads_as_its_json() {
        let secret = Secret {
            metadata: Some(ObjectMeta {
                name: "web-cert".into(),
                namespace: "istio-system".into(),
                labels: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            }),
            data: [("tls.crt".to_string(), b"PEM".to_vec())].into(),
            type_: Some("kubernetes.io/tls".into()),
            ..Default::default()
        };
        let text =
            to_json(Kind::Secret, &envelope("Secret", secret.encode_to_vec())).expect("read");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": "web-cert", "namespace": "istio-system", "labels": {"app": "web"}},
                "data": {"tls.crt": "UEVN"}})
        );
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        let ns = Namespace::default().encode_to_vec();
        assert_eq!(
            to_json(Kind::Secret, &envelope("Namespace", ns.clone())).expect_err("kind"),
            "the body holds a Namespace, the path names secrets"
        );
        assert!(
            to_json(Kind::Secret, b"{}")
                .expect_err("no envelope")
                .contains("k8s\\0")
        );
        assert!(
            to_json(Kind::Service, &envelope("Service", ns))
                .expect_err("Service")
                .contains("kubectl apply -f")
        );
        assert!(to_json(Kind::Secret, b"k8s\0\xff\xff").is_err(), "garbage");
    }
}
