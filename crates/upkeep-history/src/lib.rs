//! What upkeep did, kept: every run, its steps, each version change, the
//! commits, the restore points, what the validators said, rollbacks and
//! emergency runs with their reason, and who ran them, in an SQLite
//! database in the state directory (`history.db`).
//!
//! The run engine writes it through [`HistoryObserver`] after each saved
//! transition; [`import`] adds runs from their folders. [`query`] lists the
//! steps through filters (text, JSON lines, CSV); [`report`] sums a month up
//! as markdown or as one self-contained HTML page with SVG charts.

pub mod cli;
mod db;
mod ingest;
pub mod query;
pub mod report;
mod time;

pub use db::{FILE_NAME, History, SCHEMA_VERSION};
pub use ingest::{HistoryObserver, Imported, RunDocs, StepDocs, import, open_with_backfill};
pub use time::{Period, parse_bound, parse_month};

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A flag or a file the operator gave is wrong.
    #[error("{0}")]
    Input(String),
    #[error("{path}: {message}")]
    Db { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl HistoryError {
    pub(crate) fn db(path: &Path, e: rusqlite::Error) -> HistoryError {
        HistoryError::Db {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> HistoryError {
        HistoryError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// 2 for bad input, 3 for a database or disk that would not do it.
    pub fn exit_code(&self) -> u8 {
        match self {
            HistoryError::Input(_) => 2,
            HistoryError::Db { .. } | HistoryError::Io { .. } => 3,
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use upkeep_contract::{RunRecord, RunStatus, StepRecord, StepStatus};

    pub fn record(id: &str, started: &str, status: RunStatus) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "upkeep.dev/v1alpha1", "kind": "RunRecord",
            "runId": id, "startedAt": started, "status": status,
            "actor": "alice", "steps": []
        }))
        .unwrap()
    }

    pub fn step(index: usize, name: &str, from: &str, to: &str, status: StepStatus) -> StepRecord {
        serde_json::from_value(serde_json::json!({
            "index": index,
            "component": {"kind": "chart", "name": name, "namespace": "apps"},
            "from": from, "to": to, "status": status
        }))
        .unwrap()
    }
}
