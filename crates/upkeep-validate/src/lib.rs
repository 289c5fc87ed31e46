//! Checks that prove the cluster still works, each with a name, a status,
//! what a person can act on, and the objects it looked at; and the
//! comparison with a baseline report, so that after an update only what
//! the update broke counts as a failure.
//!
//! - [`flux`]: Flux's controllers, sources, Kustomizations and HelmReleases.
//! - [`apps`]: workloads at their desired ready replicas, pods stuck
//!   waiting (CrashLoopBackOff, ImagePullBackOff), failed Jobs.
//!
//! The checks read plain JSON objects ([`Objects`]), so they are tested
//! without a cluster; [`Objects::read`] lists them from a live cluster or
//! a `kubectl get -o json` file through upkeep-kube.

pub mod apps;
mod baseline;
pub mod cause;
pub mod cli;
pub mod datatest;
pub mod flux;
pub mod http;
pub mod net;
mod objects;
mod prove;
pub mod storage;

pub use baseline::{compare, regressions};
pub use objects::{Objects, Selection};
pub use prove::{ProveOptions, prove};

use std::time::Instant;

use serde_json::Value;
use upkeep_contract::{Check, CheckStatus, ObjectRef, SafeText};

/// What can stop a validator from running at all.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Cluster(#[from] upkeep_kube::KubeError),
    #[error("{what}: {message}")]
    Input { what: String, message: String },
}

impl ValidateError {
    pub fn is_input(&self) -> bool {
        match self {
            ValidateError::Input { .. } => true,
            ValidateError::Cluster(e) => e.exit_code() == 2,
        }
    }
}

/// Collects checks as a validator runs them.
#[derive(Debug, Default)]
pub struct Checks {
    pub checks: Vec<Check>,
    pub not_run: Vec<Check>,
}

impl Checks {
    pub(crate) fn push(
        &mut self,
        name: &str,
        status: CheckStatus,
        detail: &str,
        objects: Vec<ObjectRef>,
        since: Instant,
    ) {
        self.checks.push(Check {
            name: name.to_string(),
            status,
            duration_ms: since.elapsed().as_millis() as u64,
            detail: SafeText::new(detail),
            objects,
            regression: false,
            cause: None,
        });
    }

    pub(crate) fn not_run(&mut self, name: &str, why: &str) {
        self.not_run.push(Check {
            name: name.to_string(),
            status: CheckStatus::Skip,
            duration_ms: 0,
            detail: SafeText::new(why),
            objects: Vec::new(),
            regression: false,
            cause: None,
        });
    }
}

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub(crate) fn int_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// `namespace/name` or `name`.
pub(crate) fn display(v: &Value) -> String {
    let name = str_at(v, "/metadata/name").unwrap_or("<unnamed>");
    match str_at(v, "/metadata/namespace") {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// A condition of `status.conditions`: (status, reason, message).
pub(crate) fn condition<'a>(v: &'a Value, type_: &str) -> Option<(&'a str, &'a str, &'a str)> {
    v.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .map(|c| {
            (
                c.get("status").and_then(Value::as_str).unwrap_or(""),
                c.get("reason").and_then(Value::as_str).unwrap_or(""),
                c.get("message").and_then(Value::as_str).unwrap_or(""),
            )
        })
}
