//! Where runs are kept: `<stateDir>/runs/<run id>/`, with `run.json` (the
//! `RunRecord`, rewritten atomically after every transition), `plan.json`,
//! and each step's documents (`step-N/apply.json`, `before-flux.json`...),
//! so that `resume`, `status` and `rollback` read back what happened and
//! any stage can be re-run by hand from its saved input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use upkeep_contract::{RunRecord, UpdatePlan};

use crate::RunError;

/// Files of the state directory are the operator's alone.
const MODE: u32 = 0o600;

/// Told of every saved transition of a run: the history database, the
/// notifications, the metrics. An observer never fails the run; what it
/// cannot do it logs.
pub trait RunObserver: Send + Sync {
    /// Called after `record` is safely on disk.
    fn record_saved(&self, record: &RunRecord);
}

#[derive(Clone)]
pub struct RunStore {
    root: PathBuf,
    observers: Vec<Arc<dyn RunObserver>>,
}

impl std::fmt::Debug for RunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStore")
            .field("root", &self.root)
            .field("observers", &self.observers.len())
            .finish()
    }
}

impl RunStore {
    pub fn new(state_dir: &Path) -> RunStore {
        RunStore {
            root: state_dir.to_path_buf(),
            observers: Vec::new(),
        }
    }

    /// Adds an observer of every transition saved from now on.
    pub fn observe(mut self, observer: Arc<dyn RunObserver>) -> RunStore {
        self.observers.push(observer);
        self
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join("run.lock")
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.runs_dir().join(run_id)
    }

    pub fn step_dir(&self, run_id: &str, step: usize) -> PathBuf {
        self.run_dir(run_id).join(format!("step-{step}"))
    }

    /// Writes a document atomically (a reader never sees half of it).
    pub fn write<T: serde::Serialize>(&self, path: &Path, doc: &T) -> Result<(), RunError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RunError::io(dir, e))?;
            set_private(dir);
        }
        let mut bytes = serde_json::to_vec_pretty(doc)
            .map_err(|e| RunError::Input(format!("{}: {e}", path.display())))?;
        bytes.push(b'\n');
        upkeep_fs::atomic_write(path, &bytes, MODE)?;
        Ok(())
    }

    pub fn save_record(&self, record: &RunRecord) -> Result<(), RunError> {
        self.write(&self.run_dir(&record.run_id).join("run.json"), record)?;
        for o in &self.observers {
            o.record_saved(record);
        }
        Ok(())
    }

    pub fn save_plan(&self, run_id: &str, plan: &UpdatePlan) -> Result<(), RunError> {
        self.write(&self.run_dir(run_id).join("plan.json"), plan)
    }

    /// A saved document of kind `T`, or `None` when the file is not there.
    pub fn read<T: upkeep_contract::DocumentKind>(
        &self,
        path: &Path,
    ) -> Result<Option<T>, RunError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RunError::io(path, e)),
        };
        let shown = path.display().to_string();
        let mut docs = upkeep_contract::read_kind::<T>(&bytes, &shown)
            .map_err(|e| RunError::Input(e.to_string()))?;
        match docs.len() {
            1 => Ok(Some(docs.remove(0))),
            n => Err(RunError::Input(format!(
                "{shown}: expected one {}, found {n}",
                T::KIND
            ))),
        }
    }

    pub fn record(&self, run_id: &str) -> Result<RunRecord, RunError> {
        let path = self.run_dir(run_id).join("run.json");
        self.read(&path)?.ok_or_else(|| {
            RunError::Input(format!("no run {run_id} in {}", self.runs_dir().display()))
        })
    }

    pub fn plan(&self, run_id: &str) -> Result<UpdatePlan, RunError> {
        let path = self.run_dir(run_id).join("plan.json");
        self.read(&path)?
            .ok_or_else(|| RunError::Input(format!("{}: missing", path.display())))
    }

    /// Run ids, oldest first (they sort by time).
    pub fn runs(&self) -> Result<Vec<String>, RunError> {
        let dir = self.runs_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RunError::io(&dir, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join("run.json").is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The newest run.
    pub fn latest(&self) -> Result<Option<String>, RunError> {
        Ok(self.runs()?.pop())
    }

    /// A saved JSON value, for documents the contract does not type.
    pub fn read_value(&self, path: &Path) -> Option<Value> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

fn set_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Seen(Mutex<Vec<String>>);

    impl RunObserver for Seen {
        fn record_saved(&self, record: &RunRecord) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {:?}", record.run_id, record.status));
        }
    }

    #[test]
    fn observers_see_each_saved_transition_after_it_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Seen(Mutex::new(Vec::new())));
        let store = RunStore::new(dir.path()).observe(seen.clone());
        let mut record: RunRecord = serde_json::from_value(serde_json::json!({
            "apiVersion": "upkeep.dev/v1alpha1", "kind": "RunRecord",
            "runId": "r1", "startedAt": "2026-11-28T02:00:00Z",
            "status": "running", "actor": "me", "steps": []
        }))
        .unwrap();
        store.save_record(&record).unwrap();
        record.status = upkeep_contract::RunStatus::Completed;
        store.save_record(&record).unwrap();
        assert_eq!(*seen.0.lock().unwrap(), ["r1 Running", "r1 Completed"]);
        assert!(store.run_dir("r1").join("run.json").exists());
    }
}
