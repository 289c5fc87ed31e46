//! The versioned JSON documents every upkeep tool reads and writes.
//!
//! Each document is a JSON object with `apiVersion: upkeep.dev/v1alpha1` and
//! a `kind`, like a Kubernetes object. Detectors write [`ComponentUpdates`],
//! `merge-report` writes an [`UpdateReport`], the planner an [`UpdatePlan`],
//! and so on. Versions and constraints inside them are typed
//! ([`upkeep_version`]), text from outside is sanitised ([`SafeText`]).
//! [`read_documents`] reads a stream of them and refuses bad input with a
//! message naming the document and the field; [`schemas`] gives the JSON
//! Schemas committed under `schemas/`.

mod apply;
mod common;
mod impact;
pub mod kind;
mod plan;
mod reader;
mod snapshot;
mod updates;
mod validation;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use apply::{
    ApplyMode, ApplyResult, ApplyStatus, Emergency, FileEdit, RunRecord, RunStatus, StepRecord,
    StepStatus,
};
pub use common::{
    DocError, EXCERPT_MAX_CHARS, Finding, Location, ObjectRef, SafeText, Severity, Timestamp,
    sanitize,
};
pub use impact::{Affected, ImpactReport, Risk, UpdateImpact, VolumeImpact};
pub use kind::{API_VERSION, ApiVersion};
pub use plan::{PlanStep, Reversibility, Unreachable, UpdatePlan};
pub use reader::{ReadError, read_documents, read_kind};
pub use snapshot::{
    DatastoreBackup, GitState, RecordedRevision, RestoreAction, RestoreMode, RestoreResult,
    RestoredObject, RestoredVolume, SnapshotFile, SnapshotManifest, SnapshotScope, VolumeBackup,
    VolumeBackupKind,
};
pub use updates::{
    Breaking, BundledChange, Candidate, Component, ComponentKind, ComponentUpdates, Current, Hop,
    ReportSummary, Requires, Security, Source, SourceType, UpdateReport,
};
pub use upkeep_version::{Constraint, K3sVersion, MinorVersion, UpdateType, Version};
pub use validation::{AfterStep, Check, CheckStatus, ValidationReport};

/// A document type: knows its `kind` and the file name of its schema.
pub trait DocumentKind: Serialize + DeserializeOwned + schemars::JsonSchema {
    const KIND: &'static str;
    /// `schemas/<SCHEMA_FILE>`.
    const SCHEMA_FILE: &'static str;
}

macro_rules! document_kinds {
    ($($ty:ident => $file:literal),* $(,)?) => {
        $(impl DocumentKind for $ty {
            const KIND: &'static str = kind::$ty::VALUE;
            const SCHEMA_FILE: &'static str = $file;
        })*

        /// Any document, as read from a mixed stream.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Document {
            $($ty(Box<$ty>),)*
        }

        impl Document {
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Document::$ty(_) => kind::$ty::VALUE,)*
                }
            }

            fn from_value(
                kind: &str,
                value: serde_json::Value,
                input: &str,
                index: usize,
            ) -> Result<Self, ReadError> {
                match kind {
                    $(k if k == kind::$ty::VALUE => {
                        reader::typed::<$ty>(value, input, index).map(|d| Document::$ty(Box::new(d)))
                    })*
                    other => Err(ReadError {
                        input: input.to_string(),
                        document: Some(index),
                        field: Some("kind".to_string()),
                        message: format!("unknown kind {other:?}"),
                    }),
                }
            }

            /// The document as one line of JSON.
            pub fn to_json_line(&self) -> String {
                match self {
                    $(Document::$ty(d) => to_json_line(d.as_ref()),)*
                }
            }
        }

        /// Every document's JSON Schema, with the file name it is committed as.
        pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
            vec![$(($file, schemars::schema_for!($ty).to_value()),)*]
        }
    };
}

document_kinds! {
    ComponentUpdates => "component-updates.json",
    UpdateReport => "update-report.json",
    UpdatePlan => "update-plan.json",
    SnapshotManifest => "snapshot-manifest.json",
    RestoreResult => "restore-result.json",
    ValidationReport => "validation-report.json",
    ApplyResult => "apply-result.json",
    RunRecord => "run-record.json",
    ImpactReport => "impact-report.json",
}

/// One document as one line of compact JSON (no trailing newline).
pub fn to_json_line<T: Serialize>(doc: &T) -> String {
    // Our document types hold only strings, numbers, and maps with string
    // keys, for which serde_json cannot fail.
    serde_json::to_string(doc).unwrap_or_else(|e| unreachable!("document serialisation: {e}"))
}
