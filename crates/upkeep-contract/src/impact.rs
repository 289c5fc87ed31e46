//! `ImpactReport`: what each update touches, before it is applied.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use upkeep_version::Version;

use crate::common::{Finding, ObjectRef, SafeText, Timestamp};
use crate::kind::{self, ApiVersion};
use crate::updates::Component;

/// How much an update can hurt, all things considered.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

/// One object an update can affect, and through what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Affected {
    pub object: ObjectRef,
    /// The chain from the component to it (`StorageClass longhorn -> PVC
    /// media/jellyfin-config`).
    pub via: SafeText,
    /// Whether its pods restart because of the update.
    #[serde(default)]
    pub restarts: bool,
}

/// A volume behind an update's storage impact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeImpact {
    /// The PersistentVolumeClaim.
    pub claim: ObjectRef,
    /// The Longhorn volume (the PV's CSI volume handle).
    pub volume: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Longhorn's `status.robustness` (healthy, degraded, faulted, unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robustness: Option<String>,
    /// The newest completed Longhorn backup of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<Timestamp>,
    /// The workloads that mount the claim.
    #[serde(default)]
    pub workloads: Vec<ObjectRef>,
}

/// What one update touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateImpact {
    pub component: Component,
    pub from: Version,
    pub to: Version,
    pub risk: Risk,
    /// Objects affected, workloads first.
    #[serde(default)]
    pub affected: Vec<Affected>,
    /// API versions and chart values the update breaks, with where they are used.
    #[serde(default)]
    pub breaking: Vec<Finding>,
    #[serde(default)]
    pub storage: Vec<VolumeImpact>,
    #[serde(default)]
    pub recommendations: Vec<SafeText>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImpactReport {
    pub api_version: ApiVersion,
    pub kind: kind::ImpactReport,
    pub generated_at: Timestamp,
    /// Where the cluster objects were read (`cluster https://...`, `files ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<String>,
    #[serde(default)]
    pub updates: Vec<UpdateImpact>,
}
