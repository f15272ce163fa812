//! `core/v1` Secret: what a gateway's certificates come from. An Istio Gateway server's
//! `credentialName` and a Gateway API listener's `certificateRefs` name one; its
//! `tls.crt`/`tls.key` (or Istio's generic `cert`/`key`) hold the PEM certificate chain
//! and key, `ca.crt` (or `cacert`) the CA bundle for client certificates.
//!
//! As Kubernetes' API server does, a write folds `stringData` into `data` (base64) and
//! drops it, defaults `type` to `Opaque`, and refuses changing an `immutable` Secret.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{KubeObject, KubeView};
use crate::validate::Validator;

/// The type of a Secret holding a certificate and its key.
pub const TLS_TYPE: &str = "kubernetes.io/tls";
/// The most a Secret may hold (Kubernetes' `MaxSecretSize`).
pub const MAX_SIZE: usize = 1024 * 1024;

/// What weft reads of a Secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// `Opaque` (default), `kubernetes.io/tls`, ...
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    /// The values, base64-encoded.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Values in plain text, folded into `data` when written.
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
    /// True: the data can no longer be changed.
    #[serde(default)]
    pub immutable: Option<bool>,
}

impl Secret {
    /// The type, defaulted (`Opaque`).
    pub fn secret_type(&self) -> &str {
        self.type_.as_deref().unwrap_or("Opaque")
    }

    /// The value of `key`, decoded (`stringData` wins over `data`, as when written).
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(s) = self.string_data.get(key) {
            return Some(s.as_bytes().to_vec());
        }
        let encoded = self.data.get(key)?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
    }

    fn has(&self, key: &str) -> bool {
        self.data.contains_key(key) || self.string_data.contains_key(key)
    }
}

/// True for a key Kubernetes allows in a Secret or ConfigMap.
pub(crate) fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && !key.starts_with("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl KubeView for Secret {
    fn validate(&self, v: &mut Validator) {
        let mut size = 0;
        for (field, map) in [("data", &self.data), ("stringData", &self.string_data)] {
            v.field(field, |v| {
                for (key, value) in map {
                    if !is_config_key(key) {
                        v.error_at(key, format!("Invalid value: {key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
                    }
                    if field == "data" {
                        match base64::engine::general_purpose::STANDARD.decode(value) {
                            Ok(bytes) => size += bytes.len(),
                            Err(e) => v.error_at(key, format!("Invalid value: illegal base64 data: {e}")),
                        }
                    } else {
                        size += value.len();
                    }
                }
            });
        }
        if size > MAX_SIZE {
            v.error_at(
                "data",
                format!("Too long: may not be more than {MAX_SIZE} bytes (has {size})"),
            );
        }
        if self.secret_type() == TLS_TYPE {
            for key in ["tls.crt", "tls.key"] {
                if !self.has(key) {
                    v.error_at(
                        &format!("data[{key}]"),
                        "Required value: a kubernetes.io/tls Secret holds tls.crt and tls.key",
                    );
                }
            }
        }
    }
}

impl KubeObject<Secret> {
    /// What the API server writes for this Secret: `stringData` folded into `data`,
    /// `type` defaulted; refused when `old` is immutable and this one changes it.
    pub fn fold_for_write(&mut self, old: Option<&KubeObject<Secret>>) -> Result<(), String> {
        let engine = base64::engine::general_purpose::STANDARD;
        let folded: Vec<(String, String)> = std::mem::take(&mut self.view.string_data)
            .into_iter()
            .map(|(k, v)| (k, engine.encode(v)))
            .collect();
        self.fields.remove("stringData");
        if !folded.is_empty() {
            let data = self
                .fields
                .entry("data")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(data) = data {
                for (k, v) in &folded {
                    data.insert(k.clone(), Value::String(v.clone()));
                }
            }
            self.view.data.extend(folded);
        }
        if self.view.type_.is_none() {
            self.view.type_ = Some("Opaque".into());
            self.fields.insert("type".into(), "Opaque".into());
        }
        if let Some(old) = old.filter(|o| o.view.immutable == Some(true)) {
            if old.view.data != self.view.data {
                return Err("data: Forbidden: field is immutable when `immutable` is set".into());
            }
            if self.view.immutable != Some(true) {
                return Err(
                    "immutable: Forbidden: field is immutable when `immutable` is set".into(),
                );
            }
        }
        Ok(())
    }
}
