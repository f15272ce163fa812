//! `apps/v1` Deployment: read for analysis (which Services select its pods, which ports they
//! declare) and, in `weft up`, as a workload to run.

use serde::{Deserialize, Serialize};

use super::pod::PodSpec;
use super::{KubeView, LabelSelector};
use crate::meta::ObjectMeta;
use crate::validate::{Validator, checks};

/// What weft reads of a Deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Deployment {
    /// The deployment's spec.
    #[serde(default)]
    pub spec: DeploymentSpec,
}

/// What weft reads of a Deployment's spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// How many pods (1 when absent).
    #[serde(default)]
    pub replicas: Option<i64>,
    /// Which pods it owns; must select the template's labels.
    #[serde(default)]
    pub selector: LabelSelector,
    /// The pods it creates.
    #[serde(default)]
    pub template: PodTemplate,
}

/// A pod template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PodTemplate {
    /// The pods' labels and annotations.
    #[serde(default)]
    #[schemars(skip)]
    pub metadata: ObjectMeta,
    /// The pods' spec.
    #[serde(default)]
    pub spec: PodSpec,
}

impl DeploymentSpec {
    /// The number of pods, defaulted.
    pub fn replicas(&self) -> u32 {
        self.replicas.map_or(1, |r| u32::try_from(r).unwrap_or(0))
    }
}

impl KubeView for Deployment {
    fn validate(&self, v: &mut Validator) {
        v.field("spec", |v| {
            let spec = &self.spec;
            if let Some(r) = spec.replicas.filter(|r| *r < 0) {
                v.error_at(
                    "replicas",
                    format!("Invalid value: {r}: must be greater than or equal to 0"),
                );
            }
            v.field("selector", |v| spec.selector.validate(v));
            if spec.selector.match_labels.is_empty() && spec.selector.match_expressions.is_empty() {
                v.error_at("selector", "Required value");
            }
            v.field("template", |v| {
                v.field("metadata", |v| {
                    checks::labels(v, "labels", &spec.template.metadata.labels);
                    if !spec.selector.matches(&spec.template.metadata.labels) {
                        v.error_at(
                            "labels",
                            "Invalid value: `selector` does not match template `labels`",
                        );
                    }
                });
                v.field("spec", |v| {
                    if spec.template.spec.containers.is_empty() {
                        v.error_at("containers", "Required value");
                    }
                    spec.template.spec.validate(v)
                });
            });
        });
    }
}
