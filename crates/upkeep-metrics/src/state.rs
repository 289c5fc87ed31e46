//! Reading what the metrics are made of: the runs in the state directory
//! (`<stateDir>/runs/<run id>/run.json` and each step's documents in
//! `step-N/`, the layout upkeep-run's store writes) and an `UpdateReport`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use upkeep_contract::{RunRecord, Timestamp, UpdateReport, ValidationReport};

use crate::MetricsError;

/// A run and what its step folders say about timing and validations.
#[derive(Debug, Clone)]
pub struct RunData {
    pub record: RunRecord,
    pub steps: Vec<StepData>,
}

impl RunData {
    /// Seconds from start to finish, once the run finished.
    pub fn duration(&self) -> Option<f64> {
        let end = self.record.finished_at?;
        Some((end.0.as_second() - self.record.started_at.0.as_second()).max(0) as f64)
    }

    pub fn step(&self, index: usize) -> Option<&StepData> {
        self.steps.iter().find(|s| s.index == index)
    }
}

/// What a step's saved documents say. The `RunRecord` has no step times,
/// so they come from the documents each stage wrote (restore point,
/// validators, update, rollback): the earliest start to the latest finish.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepData {
    pub index: usize,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// Validators whose report after the update found regressions.
    pub failed_validators: Vec<String>,
}

impl StepData {
    pub fn duration(&self) -> Option<f64> {
        let (s, f) = (self.started?, self.finished?);
        Some((f.0.as_second() - s.0.as_second()).max(0) as f64)
    }
}

/// Every run in `<state_dir>/runs`, oldest first. A run folder without a
/// `run.json` is not a run (yet); a `run.json` that does not read is an
/// error naming the file.
pub fn load_runs(state_dir: &Path) -> Result<Vec<RunData>, MetricsError> {
    let dir = state_dir.join("runs");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(MetricsError::io(&dir, e)),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("run.json").is_file())
        .collect();
    dirs.sort();
    dirs.iter().map(|d| load_run(d)).collect()
}

fn load_run(dir: &Path) -> Result<RunData, MetricsError> {
    let path = dir.join("run.json");
    let bytes = std::fs::read(&path).map_err(|e| MetricsError::io(&path, e))?;
    let shown = path.display().to_string();
    let mut docs = upkeep_contract::read_kind::<RunRecord>(&bytes, &shown)
        .map_err(|e| MetricsError::Input(e.to_string()))?;
    if docs.len() != 1 {
        return Err(MetricsError::Input(format!(
            "{shown}: expected one RunRecord, found {}",
            docs.len()
        )));
    }
    let record = docs.remove(0);
    let steps = record
        .steps
        .iter()
        .map(|s| load_step(&dir.join(format!("step-{}", s.index)), s.index))
        .collect::<Result<_, _>>()?;
    Ok(RunData { record, steps })
}

fn load_step(dir: &Path, index: usize) -> Result<StepData, MetricsError> {
    let mut data = StepData {
        index,
        ..StepData::default()
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(data),
        Err(e) => return Err(MetricsError::io(dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).map_err(|e| MetricsError::io(&path, e))?;
        // Timing is read leniently (any document with these fields counts):
        // a stage document of a newer kind must not hide the step's time.
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
            return Err(MetricsError::Input(format!(
                "{}: not a JSON document",
                path.display()
            )));
        };
        let stamp = |key: &str| {
            doc.get(key)
                .and_then(Value::as_str)
                .and_then(|s| Timestamp::parse(s).ok())
        };
        for start in [stamp("startedAt"), stamp("createdAt")]
            .into_iter()
            .flatten()
        {
            data.started = Some(data.started.map_or(start, |s| s.min(start)));
        }
        for end in [stamp("finishedAt"), stamp("createdAt")]
            .into_iter()
            .flatten()
        {
            data.finished = Some(data.finished.map_or(end, |f| f.max(end)));
        }
        // `after-<validator>.json` is the check after the update; the one
        // after a rollback (`after-rollback-*`) is not the update's verdict.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("after-") && !name.starts_with("after-rollback-") {
            let shown = path.display().to_string();
            let reports = upkeep_contract::read_kind::<ValidationReport>(&bytes, &shown)
                .map_err(|e| MetricsError::Input(e.to_string()))?;
            for r in reports {
                if r.checks.iter().any(|c| c.regression) {
                    data.failed_validators.push(r.validator.clone());
                }
            }
        }
    }
    Ok(data)
}

/// An `UpdateReport` file, as `upkeep scan --save` or `merge-report` wrote it.
pub fn read_report(path: &Path) -> Result<UpdateReport, MetricsError> {
    let bytes = std::fs::read(path).map_err(|e| MetricsError::io(path, e))?;
    let shown = path.display().to_string();
    let mut docs = upkeep_contract::read_kind::<UpdateReport>(&bytes, &shown)
        .map_err(|e| MetricsError::Input(e.to_string()))?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(MetricsError::Input(format!(
            "{shown}: expected one UpdateReport, found {n}"
        ))),
    }
}
