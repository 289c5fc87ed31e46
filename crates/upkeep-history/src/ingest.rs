//! What goes into the database: a RunRecord, plus what its run folder adds
//! (the revert commit of a rollback, when the update went in), from the
//! engine as it saves each transition or from `run.json` files on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use upkeep_contract::{RunRecord, Timestamp};

use crate::HistoryError;
use crate::db::History;

/// What a step's folder (`runs/<id>/step-N/`) says beyond the RunRecord.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepDocs {
    /// `rollback.json`'s revert commit.
    pub revert_commit: Option<String>,
    /// When `apply.json` says the update finished going in.
    pub applied_at: Option<Timestamp>,
}

/// The step documents of one run, by step index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunDocs {
    steps: BTreeMap<usize, StepDocs>,
}

impl RunDocs {
    pub fn step(&self, index: usize) -> Option<&StepDocs> {
        self.steps.get(&index)
    }

    pub fn insert(&mut self, index: usize, docs: StepDocs) {
        self.steps.insert(index, docs);
    }

    /// Reads `step-N/apply.json` and `step-N/rollback.json` of each step
    /// in `run_dir`. They are optional and read leniently: a missing or
    /// unreadable one only leaves its column empty.
    pub fn read(run_dir: &Path, record: &RunRecord) -> RunDocs {
        let mut docs = RunDocs::default();
        for s in &record.steps {
            let dir = run_dir.join(format!("step-{}", s.index));
            let apply = read_json(&dir.join("apply.json"));
            let rollback = read_json(&dir.join("rollback.json"));
            let applied_at = apply
                .as_ref()
                .filter(|a| a["dryRun"] != serde_json::Value::Bool(true))
                .filter(|a| matches!(a["status"].as_str(), Some("applied" | "rolled-back")))
                .and_then(|a| a["finishedAt"].as_str())
                .and_then(|t| Timestamp::parse(t).ok());
            let revert_commit = rollback
                .as_ref()
                .and_then(|r| r["revertCommit"].as_str())
                .map(str::to_string);
            if applied_at.is_some() || revert_commit.is_some() {
                docs.insert(
                    s.index,
                    StepDocs {
                        revert_commit,
                        applied_at,
                    },
                );
            }
        }
        docs
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    // Step documents are small; a huge one is not ours.
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > 16 << 20 {
        return None;
    }
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// What `import` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub runs: usize,
    pub steps: usize,
    /// `run.json` files that could not be read, with why.
    pub skipped: Vec<String>,
}

/// Imports every `<runs_dir>/*/run.json` (runs from before the database,
/// or missed while it was unwritable). A run already there is replaced by
/// what its folder says now, so importing twice changes nothing.
pub fn import(history: &mut History, runs_dir: &Path) -> Result<Imported, HistoryError> {
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(runs_dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("run.json").is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(HistoryError::io(runs_dir, e)),
    };
    dirs.sort();
    let mut done = Imported::default();
    for dir in dirs {
        let file = dir.join("run.json");
        let shown = file.display().to_string();
        let bytes = std::fs::read(&file).map_err(|e| HistoryError::io(&file, e))?;
        let record = match upkeep_contract::read_kind::<RunRecord>(&bytes, &shown) {
            Ok(mut docs) if docs.len() == 1 => docs.remove(0),
            Ok(docs) => {
                done.skipped.push(format!(
                    "{shown}: expected one RunRecord, found {}",
                    docs.len()
                ));
                continue;
            }
            Err(e) => {
                done.skipped.push(e.to_string());
                continue;
            }
        };
        history.upsert(&record, &RunDocs::read(&dir, &record))?;
        done.runs += 1;
        done.steps += record.steps.len();
    }
    Ok(done)
}

/// Opens the state directory's database; a new one first takes in the runs
/// already saved there, so switching history on (or a first run with it)
/// loses none of the runs from before.
pub fn open_with_backfill(state_dir: &Path) -> Result<History, HistoryError> {
    let existed = state_dir.join(crate::FILE_NAME).exists();
    let mut h = History::open_in(state_dir)?;
    if !existed {
        let done = import(&mut h, &state_dir.join("runs"))?;
        if done.runs > 0 {
            tracing::info!("history: took in {} saved run(s)", done.runs);
        }
        for s in &done.skipped {
            tracing::warn!("history: {s}");
        }
    }
    Ok(h)
}

/// Records every saved transition of a run in `<stateDir>/history.db`.
/// The run engine knows it as an `upkeep_run::RunObserver`; it never fails
/// a run: what it cannot write it logs, and `upkeep history import` picks
/// the run up again from its folder.
#[derive(Debug)]
pub struct HistoryObserver {
    state_dir: PathBuf,
    // Opened on first use, so a run that never saves pays nothing, and
    // reopened after a failure (a disk that was full may not be any more).
    db: Mutex<Option<History>>,
}

impl HistoryObserver {
    pub fn new(state_dir: &Path) -> HistoryObserver {
        HistoryObserver {
            state_dir: state_dir.to_path_buf(),
            db: Mutex::new(None),
        }
    }

    /// Writes `record` (and its folder's step documents); logs a failure.
    pub fn record(&self, record: &RunRecord) {
        if let Err(e) = self.try_record(record) {
            tracing::warn!(
                "history: run {} not recorded ({e}); `upkeep history import` adds it later",
                record.run_id
            );
        }
    }

    pub fn try_record(&self, record: &RunRecord) -> Result<(), HistoryError> {
        let mut guard = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(open_with_backfill(&self.state_dir)?);
        }
        let docs = RunDocs::read(&self.state_dir.join("runs").join(&record.run_id), record);
        let result = guard
            .as_mut()
            .map(|h| h.upsert(record, &docs))
            .unwrap_or(Ok(()));
        if result.is_err() {
            *guard = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{record, step};
    use upkeep_contract::{RunStatus, StepStatus};

    fn write(path: &Path, v: &serde_json::Value) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec(v).unwrap()).unwrap();
    }

    #[test]
    fn import_reads_run_folders_with_their_revert_commits_and_skips_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        let mut r = record(
            "20261101-020000",
            "2026-11-01T02:00:00Z",
            RunStatus::RolledBack,
        );
        r.steps = vec![step(0, "podinfo", "6.0.0", "6.1.0", StepStatus::RolledBack)];
        write(
            &runs.join(&r.run_id).join("run.json"),
            &serde_json::to_value(&r).unwrap(),
        );
        write(
            &runs.join(&r.run_id).join("step-0/apply.json"),
            &serde_json::json!({"status": "applied", "finishedAt": "2026-11-01T02:05:00Z"}),
        );
        write(
            &runs.join(&r.run_id).join("step-0/rollback.json"),
            &serde_json::json!({"status": "rolled-back", "revertCommit": "beef01"}),
        );
        std::fs::create_dir_all(runs.join("broken")).unwrap();
        std::fs::write(runs.join("broken/run.json"), "{not json").unwrap();

        let mut h = History::open_in(dir.path()).unwrap();
        let done = import(&mut h, &runs).unwrap();
        assert_eq!((done.runs, done.steps), (1, 1));
        assert_eq!(done.skipped.len(), 1);
        assert!(
            done.skipped[0].contains("broken/run.json"),
            "{:?}",
            done.skipped
        );
        let (revert, applied): (String, String) = h
            .conn()
            .query_row("SELECT revert_commit, applied_at FROM steps", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(revert, "beef01");
        assert_eq!(applied, "2026-11-01T02:05:00Z");
        // Importing again replaces, it does not duplicate.
        import(&mut h, &runs).unwrap();
        let n: i64 = h
            .conn()
            .query_row("SELECT count(*) FROM steps", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn the_first_recorded_run_brings_in_the_runs_saved_before_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = record("old", "2026-10-01T02:00:00Z", RunStatus::Completed);
        old.steps = vec![step(0, "podinfo", "6.0.0", "6.1.0", StepStatus::Completed)];
        write(
            &dir.path().join("runs/old/run.json"),
            &serde_json::to_value(&old).unwrap(),
        );
        let o = HistoryObserver::new(dir.path());
        o.try_record(&record("new", "2026-11-01T02:00:00Z", RunStatus::Running))
            .unwrap();
        o.try_record(&record("new", "2026-11-01T02:00:00Z", RunStatus::Completed))
            .unwrap();
        let h = History::open_in(dir.path()).unwrap();
        let runs: Vec<(String, RunStatus)> = h
            .records()
            .unwrap()
            .into_iter()
            .map(|r| (r.run_id, r.status))
            .collect();
        assert_eq!(
            runs,
            [
                ("old".to_string(), RunStatus::Completed),
                ("new".to_string(), RunStatus::Completed)
            ]
        );
    }

    #[test]
    fn the_observer_logs_instead_of_failing_when_the_database_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        // The state "directory" is a file: nothing can be created under it.
        let state = dir.path().join("not-a-dir");
        std::fs::write(&state, "x").unwrap();
        let o = HistoryObserver::new(&state);
        let r = record("r1", "2026-11-01T02:00:00Z", RunStatus::Running);
        assert!(o.try_record(&r).is_err());
        o.record(&r); // must not panic
    }
}
