//! `UpdatePlan`: the ordered steps a run will take.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use upkeep_version::{UpdateType, Version};

use crate::common::{Finding, ObjectRef, SafeText, Timestamp};
use crate::kind::{self, ApiVersion};
use crate::updates::Component;

/// How a step is undone if it goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Reversibility {
    /// A revert commit (GitOps) or the previous object (direct) undoes it.
    Revert,
    /// The component refuses downgrades (k3s and Longhorn minors, CRD
    /// storage changes): only the restore point takes it back.
    RestorePointOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanStep {
    /// 1-based position in the plan.
    pub index: usize,
    pub component: Component,
    pub from: Version,
    pub to: Version,
    pub update: UpdateType,
    /// Why this step is here and at this position.
    pub reason: SafeText,
    pub reversibility: Reversibility,
    /// Indexes of steps that must complete first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<usize>,
    /// Indexes of steps that cannot run until this one completes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<usize>,
    /// Objects the step is expected to touch (impact analysis).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub touches: Vec<ObjectRef>,
}

/// An update the policy or the constraints keep out of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Unreachable {
    pub component: Component,
    pub version: Version,
    pub why: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePlan {
    pub api_version: ApiVersion,
    pub kind: kind::UpdatePlan,
    pub created_at: Timestamp,
    #[serde(default)]
    pub steps: Vec<PlanStep>,
    #[serde(default)]
    pub unreachable: Vec<Unreachable>,
}
