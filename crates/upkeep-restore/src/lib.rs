//! upkeep-restore: puts a restore point (written by upkeep-snapshot) back into a cluster.
//!
//! - [`order`]: CRDs first, then Velero's order (namespaces, storage classes, volume snapshot
//!   kinds, PVs, PVCs, RBAC, service accounts, secrets, config maps, limit ranges, priority
//!   classes), the rest, and admission webhooks last, after the Services that answer them.
//! - [`diff`]: the stored object against the live one, ignoring what the server sets.
//! - [`flux`]: Flux reconcilers suspended around the restore, and resumed, only those the
//!   restore suspended.
//! - [`select`]: `--only KIND|NAMESPACE`.
//! - [`restore`]: the run against a live cluster, in `create` mode (create what is missing) or
//!   `replace` mode (the rollback: replace what differs), optionally as the server's dry run.
//! - [`volumes`]: `--volumes`, Longhorn volumes brought back from their recorded snapshot or
//!   backup through the CSI snapshot API, each proven by a Job that reads it back.
//! - [`cli`]: the `restore` binary's flags and run.
//!
//! The pure parts take `serde_json::Value` objects, so they are tested without a cluster or a
//! restore point.

pub mod cli;
pub mod diff;
mod engine;
mod error;
pub mod flux;
pub mod order;
pub mod select;
pub mod volumes;

pub use engine::{
    FIELD_MANAGER, RestoreOptions, RestoreRun, check_objects, object_ref, restore,
    restore_with_volumes,
};
pub use error::RestoreError;
