//! `core/v1` Namespace: cluster-scoped; its labels (`istio-injection`, `istio.io/rev`) are
//! what the analyzers read.

use serde::{Deserialize, Serialize};

use super::KubeView;
use crate::validate::Validator;

/// What weft reads of a Namespace: nothing beyond its metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Namespace {}

impl KubeView for Namespace {
    fn validate(&self, _v: &mut Validator) {}
}
