//! Version and constraint types as k3s, Helm and Flux read them.
//!
//! Everything upkeep compares goes through these types: [`Version`] (loose
//! Masterminds parsing, SemVer precedence, k3s release counters ordered),
//! [`Constraint`] (Masterminds/semver v3 grammar and meaning, as Helm and
//! Flux evaluate it), [`K3sVersion`] and [`MinorVersion`] for hop-by-hop
//! upgrade paths, and [`UpdateType`] for how big a step is.

mod constraint;
mod k3s;
mod serde_impls;
mod update;
mod version;

pub use constraint::Constraint;
pub use k3s::K3sVersion;
pub use update::UpdateType;
pub use version::{MinorVersion, Version};

/// A version string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {input:?}: {reason}")]
pub struct VersionError {
    input: String,
    reason: String,
}

impl VersionError {
    pub(crate) fn new(input: &str, reason: String) -> Self {
        VersionError {
            input: input.to_string(),
            reason,
        }
    }
}

/// A constraint string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid constraint {input:?}: {reason}")]
pub struct ConstraintError {
    input: String,
    reason: String,
}

impl ConstraintError {
    pub(crate) fn new(input: &str, reason: String) -> Self {
        ConstraintError {
            input: input.to_string(),
            reason,
        }
    }
}
