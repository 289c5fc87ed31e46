//! `ValidationReport`: what the validators checked and what they found.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use upkeep_version::Version;

use crate::apply::ApplyResult;
use crate::common::{ObjectRef, SafeText, Timestamp};
use crate::kind::{self, ApiVersion};
use crate::updates::Component;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Skip,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Check {
    /// Stable name, e.g. `flux/helmrelease-ready`.
    pub name: String,
    pub status: CheckStatus,
    pub duration_ms: u64,
    /// What a person can act on.
    pub detail: SafeText,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectRef>,
    /// Failed now but not in the baseline.
    #[serde(default)]
    pub regression: bool,
    /// For regressions: the likely cause (events, conditions, the step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<SafeText>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationReport {
    pub api_version: ApiVersion,
    pub kind: kind::ValidationReport,
    /// `flux`, `storage`, `net` or `apps`.
    pub validator: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub checks: Vec<Check>,
    /// Checks that could not run, and why.
    #[serde(default)]
    pub not_run: Vec<Check>,
    /// The update step this report follows, so that a regression can name
    /// what the step changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_step: Option<AfterStep>,
}

/// The update step a report follows: what changed, and which objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AfterStep {
    /// 1-based position in the plan, when run by the orchestrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub component: Component,
    pub from: Version,
    pub to: Version,
    /// The GitOps commit the step made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The objects the step changed.
    #[serde(default)]
    pub objects: Vec<ObjectRef>,
}

impl AfterStep {
    /// The step an `ApplyResult` describes (its plan index is not part of it).
    pub fn from_apply(result: &ApplyResult) -> AfterStep {
        AfterStep {
            index: None,
            component: result.component.clone(),
            from: result.from.clone(),
            to: result.to.clone(),
            commit: result.commit.clone(),
            objects: result.objects.clone(),
        }
    }
}
