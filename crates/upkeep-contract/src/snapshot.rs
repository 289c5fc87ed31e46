//! `SnapshotManifest` and `RestoreResult`: the restore point and the way back.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DocError, ObjectRef, SafeText, Timestamp};
use crate::kind::{self, ApiVersion};

/// One file of a restore point, with its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotFile {
    /// Path inside the archive: `GROUP/KIND/NAMESPACE/NAME.json`.
    pub path: String,
    /// Lowercase hex sha256 of the file as stored (after encryption).
    pub sha256: String,
    pub size: u64,
    /// Encrypted with age to the manifest's recipients.
    #[serde(default)]
    pub encrypted: bool,
}

/// The GitOps side of a restore point.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(default)]
    pub dirty: bool,
    /// Flux objects and the revision each had applied.
    #[serde(default)]
    pub revisions: Vec<RecordedRevision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordedRevision {
    pub object: ObjectRef,
    pub revision: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeBackupKind {
    /// An in-cluster snapshot: lost with the volume.
    Snapshot,
    /// A backup on the configured backup target: survives the volume.
    Backup,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeBackup {
    pub volume: String,
    pub kind: VolumeBackupKind,
    /// The Longhorn Snapshot or Backup object.
    pub object: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatastoreBackup {
    /// `etcd` or `sqlite`.
    pub datastore: String,
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// The server token needed to restore, stored age-encrypted.
    #[serde(default)]
    pub token_captured: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotScope {
    /// Empty means every namespace.
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub secrets_included: bool,
    #[serde(default)]
    pub status_included: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotManifest {
    pub api_version: ApiVersion,
    pub kind: kind::SnapshotManifest,
    /// The restore point's name, e.g. `upkeep-20261128T040000Z`.
    pub name: String,
    pub created_at: Timestamp,
    pub tool_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_version: Option<String>,
    pub scope: SnapshotScope,
    /// age recipients (public keys) the secret parts are encrypted to.
    #[serde(default)]
    pub recipients: Vec<String>,
    pub files: Vec<SnapshotFile>,
    /// Kinds deliberately not captured (events, leases...).
    #[serde(default)]
    pub skipped: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitState>,
    #[serde(default)]
    pub volumes: Vec<VolumeBackup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore: Option<DatastoreBackup>,
    #[serde(default)]
    pub errors: Vec<DocError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMode {
    /// Create what is missing; leave existing objects alone.
    Create,
    /// Replace what differs (the rollback mode).
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreAction {
    Created,
    Replaced,
    Unchanged,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoredObject {
    pub object: ObjectRef,
    pub action: RestoreAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<SafeText>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreResult {
    pub api_version: ApiVersion,
    pub kind: kind::RestoreResult,
    /// The restore point's name.
    pub snapshot: String,
    pub mode: RestoreMode,
    pub dry_run: bool,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub objects: Vec<RestoredObject>,
    /// Flux objects suspended for the restore (and resumed after).
    #[serde(default)]
    pub suspended: Vec<ObjectRef>,
    /// Longhorn volumes restored from their recorded snapshot or backup (`restore --volumes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<RestoredVolume>,
    #[serde(default)]
    pub errors: Vec<DocError>,
}

/// One Longhorn volume's restore: its claim brought back with the recorded data, and the
/// digest a Job read back through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoredVolume {
    /// The Longhorn volume recorded in the restore point.
    pub volume: String,
    /// The PersistentVolumeClaim restored with its data.
    pub claim: ObjectRef,
    /// The Longhorn Snapshot or Backup the data came from.
    pub source: ObjectRef,
    /// The CSI snapshot handle (`snap://VOLUME/SNAPSHOT` or `bak://VOLUME/BACKUP`).
    pub handle: String,
    pub action: RestoreAction,
    /// sha256 over every file's sha256 (sorted by path), read through the restored claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Regular files the data check read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<SafeText>,
}
