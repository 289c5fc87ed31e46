//! The database: `<stateDir>/history.db`, opened in WAL mode with one
//! writer at a time, migrated forward on open, and fed whole RunRecords.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use upkeep_contract::RunRecord;

use crate::HistoryError;
use crate::ingest::RunDocs;

/// The file name inside the state directory.
pub const FILE_NAME: &str = "history.db";

/// A run is written by one process at a time (the run lock sees to that),
/// but `upkeep history import` or a report may overlap with a run: wait for
/// the other writer rather than fail.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Each migration runs in its own transaction and moves `PRAGMA
/// user_version` to its index + 1, so a database is always at a known
/// version, even after a kill in the middle of an upgrade.
const MIGRATIONS: &[&str] = &[
    // 1: runs and their steps.
    "CREATE TABLE runs (
        run_id           TEXT PRIMARY KEY NOT NULL,
        started_at       TEXT NOT NULL,
        started_unix     INTEGER NOT NULL,
        finished_at      TEXT,
        finished_unix    INTEGER,
        status           TEXT NOT NULL,
        actor            TEXT NOT NULL,
        emergency_reason TEXT,
        step_count       INTEGER NOT NULL,
        errors           TEXT NOT NULL,
        record           TEXT NOT NULL
    );
    CREATE TABLE steps (
        run_id              TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        idx                 INTEGER NOT NULL,
        component_kind      TEXT NOT NULL,
        component_namespace TEXT,
        component_name      TEXT NOT NULL,
        from_version        TEXT NOT NULL,
        to_version          TEXT NOT NULL,
        status              TEXT NOT NULL,
        restore_point       TEXT,
        commit_before       TEXT,
        commit_after        TEXT,
        error               TEXT,
        PRIMARY KEY (run_id, idx)
    );",
    // 2: what the run folder adds to the RunRecord (the revert commit of a
    // rollback, when the update went in), and the indexes the filters use.
    "ALTER TABLE steps ADD COLUMN revert_commit TEXT;
    ALTER TABLE steps ADD COLUMN applied_at TEXT;
    ALTER TABLE steps ADD COLUMN applied_unix INTEGER;
    CREATE INDEX runs_started ON runs(started_unix);
    CREATE INDEX steps_component ON steps(component_name);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// An open history database.
#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    /// The database of a state directory, created (0600) and migrated as needed.
    pub fn open_in(state_dir: &Path) -> Result<History, HistoryError> {
        std::fs::create_dir_all(state_dir).map_err(|e| HistoryError::io(state_dir, e))?;
        History::open(&state_dir.join(FILE_NAME))
    }

    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        create_private(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| HistoryError::db(path, e))?;
        let mut h = History {
            conn,
            path: path.to_path_buf(),
        };
        h.configure()?;
        h.migrate(MIGRATIONS)?;
        Ok(h)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn configure(&self) -> Result<(), HistoryError> {
        let c = &self.conn;
        c.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        // WAL: readers (history, report) never block the run's writes, and
        // a write killed half-way leaves the last committed state intact.
        let mode: String = c
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(HistoryError::Db {
                path: self.path.display().to_string(),
                message: format!("the database would not switch to WAL (journal_mode is {mode})"),
            });
        }
        // FULL, not NORMAL: in WAL mode NORMAL survives a killed process but
        // can lose the last commits on a power cut, and this is the audit
        // trail of what was done to the cluster. At one commit per run
        // transition the extra fsync costs nothing anyone would notice.
        c.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Applies the migrations this database has not seen, each in its own
    /// transaction; refuses a database written by a newer upkeep.
    fn migrate(&mut self, migrations: &[&str]) -> Result<(), HistoryError> {
        let current = self.schema_version()?;
        let known = migrations.len() as i64;
        if current > known {
            return Err(HistoryError::Db {
                path: self.path.display().to_string(),
                message: format!(
                    "schema version {current} is newer than this upkeep knows ({known}); use a newer upkeep"
                ),
            });
        }
        for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
            let path = self.path.clone();
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| HistoryError::db(&path, e))?;
            // Another process may have migrated while this one waited.
            let now: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| HistoryError::db(&path, e))?;
            if now > i as i64 {
                continue;
            }
            tx.execute_batch(sql).map_err(|e| HistoryError::Db {
                path: path.display().to_string(),
                message: format!("migration {}: {e}", i + 1),
            })?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(|e| HistoryError::db(&path, e))?;
            tx.commit().map_err(|e| HistoryError::db(&path, e))?;
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64, HistoryError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Writes a whole run: its row replaced, its steps replaced, in one
    /// transaction, so a reader sees the run before or after, never half.
    pub fn upsert(&mut self, record: &RunRecord, docs: &RunDocs) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let db = |e| HistoryError::db(&path, e);
        let json = serde_json::to_string(record).map_err(|e| HistoryError::Db {
            path: path.display().to_string(),
            message: format!("run {}: {e}", record.run_id),
        })?;
        let errors = serde_json::to_string(&record.errors).unwrap_or_else(|_| "[]".to_string());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        tx.execute(
            "INSERT INTO runs (run_id, started_at, started_unix, finished_at, finished_unix,
                               status, actor, emergency_reason, step_count, errors, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(run_id) DO UPDATE SET
               started_at = excluded.started_at, started_unix = excluded.started_unix,
               finished_at = excluded.finished_at, finished_unix = excluded.finished_unix,
               status = excluded.status, actor = excluded.actor,
               emergency_reason = excluded.emergency_reason, step_count = excluded.step_count,
               errors = excluded.errors, record = excluded.record",
            params![
                record.run_id,
                record.started_at.to_string(),
                record.started_at.0.as_second(),
                record.finished_at.map(|t| t.to_string()),
                record.finished_at.map(|t| t.0.as_second()),
                record.status.as_str(),
                record.actor,
                record
                    .emergency
                    .as_ref()
                    .map(|e| e.reason.as_str().to_string()),
                record.steps.len() as i64,
                errors,
                json,
            ],
        )
        .map_err(db)?;
        tx.execute("DELETE FROM steps WHERE run_id = ?1", [&record.run_id])
            .map_err(db)?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO steps (run_id, idx, component_kind, component_namespace,
                        component_name, from_version, to_version, status, restore_point,
                        commit_before, commit_after, error, revert_commit, applied_at, applied_unix)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(db)?;
            for s in &record.steps {
                let extra = docs.step(s.index);
                insert
                    .execute(params![
                        record.run_id,
                        s.index as i64,
                        s.component.kind.as_str(),
                        s.component.namespace,
                        s.component.name,
                        s.from.to_string(),
                        s.to.to_string(),
                        s.status.as_str(),
                        s.restore_point,
                        s.commit_before,
                        s.commit_after,
                        s.error.as_ref().map(|e| e.as_str().to_string()),
                        extra.and_then(|x| x.revert_commit.clone()),
                        extra.and_then(|x| x.applied_at).map(|t| t.to_string()),
                        extra.and_then(|x| x.applied_at).map(|t| t.0.as_second()),
                    ])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Every run as it was last recorded, oldest first.
    pub fn records(&self) -> Result<Vec<RunRecord>, HistoryError> {
        let mut q = self
            .conn
            .prepare("SELECT run_id, record FROM runs ORDER BY started_unix, rowid")
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row.map_err(|e| self.err(e))?;
            out.push(serde_json::from_str(&json).map_err(|e| HistoryError::Db {
                path: self.path.display().to_string(),
                message: format!("run {id}: stored record unreadable: {e}"),
            })?);
        }
        Ok(out)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> HistoryError {
        HistoryError::db(&self.path, e)
    }
}

/// Creates the file 0600 before SQLite does (SQLite would use the umask),
/// and tightens an existing one; SQLite gives the -wal and -shm files the
/// database file's mode.
fn create_private(path: &Path) -> Result<(), HistoryError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| HistoryError::io(dir, e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| HistoryError::io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| HistoryError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{record, step};
    use upkeep_contract::{RunStatus, StepStatus};

    fn count(h: &History, sql: &str) -> i64 {
        h.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_new_database_is_at_the_latest_schema_in_wal_mode_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let h = History::open_in(dir.path()).unwrap();
        assert_eq!(h.schema_version().unwrap(), SCHEMA_VERSION);
        let mode: String = h
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = h
            .conn()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let perm = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(perm & 0o777, 0o600);
    }

    #[test]
    fn an_older_database_is_migrated_forward_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        {
            let mut h = History {
                conn: Connection::open(&path).unwrap(),
                path: path.clone(),
            };
            h.configure().unwrap();
            h.migrate(&MIGRATIONS[..1]).unwrap();
            assert_eq!(h.schema_version().unwrap(), 1);
            h.conn()
                .execute_batch(
                    "INSERT INTO runs VALUES ('old', '2026-01-01T00:00:00Z', 1767225600, NULL, NULL,
                     'completed', 'me', NULL, 1, '[]', '{}');
                     INSERT INTO steps VALUES ('old', 0, 'chart', 'apps', 'podinfo', '6.0.0',
                     '6.1.0', 'completed', NULL, NULL, 'abc', NULL);",
                )
                .unwrap();
        }
        let h = History::open(&path).unwrap();
        assert_eq!(h.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(
            count(&h, "SELECT count(*) FROM steps WHERE run_id='old'"),
            1
        );
        // The new columns exist and are empty for the old rows.
        assert_eq!(
            count(&h, "SELECT count(*) FROM steps WHERE revert_commit IS NULL"),
            1
        );
    }

    #[test]
    fn a_database_from_a_newer_upkeep_is_refused_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("PRAGMA user_version = 99").unwrap();
        }
        let e = History::open(&path).unwrap_err().to_string();
        assert!(e.contains("schema version 99 is newer"), "{e}");
        let c = Connection::open(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 99);
    }

    #[test]
    fn a_run_saved_many_times_is_one_run_with_its_latest_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open_in(dir.path()).unwrap();
        let mut r = record("r1", "2026-11-01T02:00:00Z", RunStatus::Running);
        r.steps = vec![
            step(0, "podinfo", "6.0.0", "6.1.0", StepStatus::Applying),
            step(1, "longhorn", "1.9.0", "1.9.1", StepStatus::Pending),
        ];
        h.upsert(&r, &RunDocs::default()).unwrap();
        r.steps[0].status = StepStatus::Completed;
        r.steps[0].commit_after = Some("c0ffee".into());
        r.steps.truncate(1);
        r.status = RunStatus::Completed;
        h.upsert(&r, &RunDocs::default()).unwrap();
        assert_eq!(count(&h, "SELECT count(*) FROM runs"), 1);
        assert_eq!(count(&h, "SELECT count(*) FROM steps"), 1);
        let (status, commit): (String, String) = h
            .conn()
            .query_row(
                "SELECT status, commit_after FROM steps WHERE run_id='r1' AND idx=0",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), commit.as_str()), ("completed", "c0ffee"));
        assert_eq!(h.records().unwrap()[0].status, RunStatus::Completed);
    }
}
