//! Restore points: a cluster's objects, its GitOps and Longhorn state, captured
//! before an update and read back by `restore`.
//!
//! A restore point is a directory or a `.tar.zst` archive holding
//! `resources/<group>/<Kind>/<namespace>/<name>.json` (group `core` for the
//! core API, namespace `_cluster` for cluster-scoped kinds) and a
//! `manifest.json` (a [`SnapshotManifest`]) that lists every file with its
//! sha256. Secrets, and ConfigMaps marked sensitive, are age-encrypted in
//! memory before they are written (`.json.age`). Nothing is left half-done:
//! a restore point is written under a temporary name next to its final
//! path and renamed into place only when complete.

mod create;
mod crypt;
mod datastore;
mod layout;
mod read;
mod scope;
mod store;
mod strip;
mod write;

use std::path::PathBuf;

pub use create::{CreateOptions, LonghornMode, create};
pub use crypt::{Identity, Recipients, keygen};
pub use read::{Snapshot, StoredObject, VerifyOptions, verify};
pub use scope::Scope;
pub use store::{RestorePoint, list, prune};
pub use strip::{SENSITIVE_LABEL, SERVER_SET_METADATA, is_sensitive, strip};
pub use upkeep_contract::SnapshotManifest;

/// What can go wrong with a restore point.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Bad input: a flag, a key, a file that is not a restore point.
    #[error("{what}: {message}")]
    Input { what: String, message: String },
    /// A restore point whose content does not match its manifest.
    #[error("{path}: {message}")]
    Corrupt { path: String, message: String },
    /// An encrypted part and no identity to open it.
    #[error("{path} is age-encrypted: give --age-identity FILE with the key it was encrypted to")]
    NeedsIdentity { path: String },
    /// The cluster failed us (unreachable, refused, too slow).
    #[error(transparent)]
    Cluster(#[from] upkeep_kube::KubeError),
    /// The local disk failed us.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Longhorn did not finish a snapshot or backup in time, or failed it.
    #[error("{0}")]
    Volume(String),
}

impl SnapshotError {
    /// Bad input (exit 2) rather than a failed environment (exit 3) or a
    /// restore point found damaged (exit 1).
    pub fn is_input(&self) -> bool {
        match self {
            SnapshotError::Input { .. } | SnapshotError::NeedsIdentity { .. } => true,
            SnapshotError::Cluster(e) => e.exit_code() == 2,
            _ => false,
        }
    }

    /// The restore point itself is damaged.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, SnapshotError::Corrupt { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SnapshotError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn input(what: impl Into<String>, message: impl Into<String>) -> Self {
        SnapshotError::Input {
            what: what.into(),
            message: message.into(),
        }
    }

    pub(crate) fn corrupt(path: impl Into<String>, message: impl Into<String>) -> Self {
        SnapshotError::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }
}
