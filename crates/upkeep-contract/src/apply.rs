//! `ApplyResult` and `RunRecord`: what an update did, and what a run did.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use upkeep_version::Version;

use crate::common::{DocError, ObjectRef, SafeText, Timestamp};
use crate::kind::{self, ApiVersion};
use crate::updates::Component;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyMode {
    /// A commit in the GitOps repository that Flux reconciles.
    Gitops,
    /// A server-side apply straight to the cluster.
    Direct,
    /// k3s binaries rolled over SSH.
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyStatus {
    Applied,
    NoOp,
    RolledBack,
    Failed,
}

/// One edited line of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileEdit {
    pub path: String,
    pub line: u32,
    pub before: String,
    pub after: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyResult {
    pub api_version: ApiVersion,
    pub kind: kind::ApplyResult,
    pub component: Component,
    pub from: Version,
    pub to: Version,
    pub mode: ApplyMode,
    pub status: ApplyStatus,
    /// Nothing was changed: `edits` and `objects` say what would have been.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<String>,
    #[serde(default)]
    pub edits: Vec<FileEdit>,
    /// Objects patched or waited on.
    #[serde(default)]
    pub objects: Vec<ObjectRef>,
    #[serde(default)]
    pub errors: Vec<DocError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    RolledBack,
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Pending,
    Snapshotting,
    ValidatingBefore,
    Applying,
    ValidatingAfter,
    RollingBack,
    Completed,
    RolledBack,
    Failed,
    Skipped,
}

impl RunStatus {
    /// Every status, in the order a run can go through them.
    pub const ALL: &[RunStatus] = &[
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::RolledBack,
        RunStatus::Aborted,
    ];

    /// The name the documents use (`rolled-back`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::RolledBack => "rolled-back",
            RunStatus::Aborted => "aborted",
        }
    }
}

impl StepStatus {
    /// Every status, in the order a step goes through them.
    pub const ALL: &[StepStatus] = &[
        StepStatus::Pending,
        StepStatus::Snapshotting,
        StepStatus::ValidatingBefore,
        StepStatus::Applying,
        StepStatus::ValidatingAfter,
        StepStatus::RollingBack,
        StepStatus::Completed,
        StepStatus::RolledBack,
        StepStatus::Failed,
        StepStatus::Skipped,
    ];

    /// The name the documents use (`validating-after`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Snapshotting => "snapshotting",
            StepStatus::ValidatingBefore => "validating-before",
            StepStatus::Applying => "applying",
            StepStatus::ValidatingAfter => "validating-after",
            StepStatus::RollingBack => "rolling-back",
            StepStatus::Completed => "completed",
            StepStatus::RolledBack => "rolled-back",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepRecord {
    pub index: usize,
    pub component: Component,
    pub from: Version,
    pub to: Version,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SafeText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Emergency {
    pub reason: SafeText,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRecord {
    pub api_version: ApiVersion,
    pub kind: kind::RunRecord,
    pub run_id: String,
    pub started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    pub status: RunStatus,
    /// Who started it: the local user, or the ServiceAccount of a CronJob.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<Emergency>,
    pub steps: Vec<StepRecord>,
    #[serde(default)]
    pub errors: Vec<DocError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_the_serialized_ones_and_all_lists_every_status() {
        for s in RunStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in StepStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        // A status added to the enum and not to ALL fails to match here.
        let run_count = |s: RunStatus| match s {
            RunStatus::Running
            | RunStatus::Completed
            | RunStatus::Failed
            | RunStatus::RolledBack
            | RunStatus::Aborted => 5,
        };
        assert_eq!(RunStatus::ALL.len(), run_count(RunStatus::Running));
        assert_eq!(StepStatus::ALL.len(), 10);
    }
}
