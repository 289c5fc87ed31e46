//! The orchestrator's run, the job users come for: bring the cluster up to
//! date, safely, and say what happened.
//!
//! A run takes the locks (a local file lock and a Kubernetes Lease), checks
//! the maintenance window, then for each step of the plan, in order: a
//! restore point scoped to what the step touches, the validators before,
//! the update (upkeep-apply), the validators after with the before report
//! as the baseline, and on a failure or a regression the rollback and a
//! stop. Every transition is saved first ([`store`]), so a run killed at any
//! point is resumed ([`resume`]) from the stage it was in, and every
//! stage's document is in the run folder, as the small tools would have
//! written it.

pub mod cli;
mod engine;
pub mod lease;
pub mod maintenance;
pub mod policy;
mod scan;
pub mod schedule;
pub mod store;

pub use engine::{RunOptions, Validators, resume, rollback_run, run, window_verdict};
pub use scan::scan;
pub use store::{RunObserver, RunStore};

use std::path::Path;

/// The field manager of what a run writes to the cluster.
pub(crate) const FIELD_MANAGER: &str = "upkeep";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input: the plan, the config, a flag, a saved document.
    #[error("{0}")]
    Input(String),
    /// Another run holds a lock.
    #[error("{0}")]
    Busy(String),
    /// Outside every maintenance window.
    #[error("{0}")]
    Window(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Fs(#[from] upkeep_fs::FsError),
    #[error(transparent)]
    Cluster(#[from] upkeep_kube::KubeError),
    #[error("restore point: {0}")]
    Snapshot(#[from] upkeep_snapshot::SnapshotError),
    #[error(transparent)]
    Apply(#[from] upkeep_apply::ApplyError),
    #[error("validator: {0}")]
    Validate(#[from] upkeep_validate::ValidateError),
}

impl RunError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> RunError {
        RunError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// 2 for what the operator must fix first (input, a busy lock, the
    /// window), 3 for what the environment refused.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Input(_) | RunError::Busy(_) | RunError::Window(_) => 2,
            RunError::Io { .. } | RunError::Fs(_) => 3,
            RunError::Cluster(e) => e.exit_code(),
            RunError::Snapshot(e) => {
                if e.is_input() {
                    2
                } else {
                    3
                }
            }
            RunError::Apply(e) => e.exit_code(),
            RunError::Validate(e) => {
                if e.is_input() {
                    2
                } else {
                    3
                }
            }
        }
    }
}
