//! What stops a restore before it changes anything, each a one-line message naming the flag,
//! file or field, with the exit code it maps to.

use upkeep_kube::KubeError;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// An `--only` value that names nothing in the restore point, or two things.
    #[error("--only {value}: {problem}")]
    Only { value: String, problem: String },

    /// Encrypted objects are selected and no identity was given to decrypt them.
    #[error(
        "{path}{more} is age-encrypted: give --age-identity FILE to restore it, or leave it out with --only"
    )]
    NeedsIdentity { path: String, more: String },

    /// A stored object that cannot be restored as it is (the restore point is damaged).
    #[error("{path}: {field}: {problem}")]
    BadObject {
        path: String,
        field: String,
        problem: String,
    },

    /// The restore point could not be opened or read, or is damaged.
    #[error(transparent)]
    Snapshot(#[from] upkeep_snapshot::SnapshotError),

    /// The cluster could not be used before anything was changed (unreachable, refused).
    #[error("{0}")]
    Cluster(#[from] KubeError),
}

impl RestoreError {
    /// 2 for what the user gave (flags, the restore point), 3 for the environment.
    pub fn exit_code(&self) -> u8 {
        match self {
            RestoreError::Only { .. }
            | RestoreError::NeedsIdentity { .. }
            | RestoreError::BadObject { .. } => 2,
            // A damaged restore point is bad input here: restoring part of it is not an option.
            RestoreError::Snapshot(e) if e.is_input() || e.is_corrupt() => 2,
            RestoreError::Snapshot(_) => 3,
            RestoreError::Cluster(e) => match e.exit_code() {
                // A wait that did not end in time is not the user's input; before anything
                // changed, anything but bad input is the cluster's doing.
                2 => 2,
                _ => 3,
            },
        }
    }

    pub fn is_input(&self) -> bool {
        self.exit_code() == 2
    }
}
