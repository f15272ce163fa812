//! `core/v1` ConfigMap: what a Gateway's client certificate validation reads its CA
//! bundles from (`spec.tls.frontend...caCertificateRefs`, key `ca.crt`).
//!
//! Checked as Kubernetes' API server checks it: keys are config keys, `binaryData`
//! values base64, no key in both, at most 1 MiB in all.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::KubeView;
use super::secret::{MAX_SIZE, is_config_key};
use crate::validate::Validator;

/// What weft reads of a ConfigMap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    /// Text values.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Binary values, base64-encoded.
    #[serde(default)]
    pub binary_data: BTreeMap<String, String>,
    /// True: the data can no longer be changed.
    #[serde(default)]
    pub immutable: Option<bool>,
}

impl ConfigMap {
    /// The value of `key` (from `data`, else decoded from `binaryData`).
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(s) = self.data.get(key) {
            return Some(s.as_bytes().to_vec());
        }
        base64::engine::general_purpose::STANDARD
            .decode(self.binary_data.get(key)?)
            .ok()
    }
}

impl KubeView for ConfigMap {
    fn validate(&self, v: &mut Validator) {
        let mut size = 0;
        v.field("data", |v| {
            for (key, value) in &self.data {
                if !is_config_key(key) {
                    v.error_at(key, format!("Invalid value: {key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
                }
                size += key.len() + value.len();
            }
        });
        v.field("binaryData", |v| {
            for (key, value) in &self.binary_data {
                if !is_config_key(key) {
                    v.error_at(key, format!("Invalid value: {key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
                }
                if self.data.contains_key(key) {
                    v.error_at(key, format!("Invalid value: {key:?}: duplicate of key present in data"));
                }
                match base64::engine::general_purpose::STANDARD.decode(value) {
                    Ok(bytes) => size += key.len() + bytes.len(),
                    Err(e) => v.error_at(key, format!("Invalid value: illegal base64 data: {e}")),
                }
            }
        });
        if size > MAX_SIZE {
            v.error(format!(
                "Too long: must have at most {MAX_SIZE} bytes (has {size})"
            ));
        }
    }
}
