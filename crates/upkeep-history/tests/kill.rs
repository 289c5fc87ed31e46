//! The history survives a kill in the middle of a write: a child process
//! (this test binary, re-run as the writer) writes runs in a loop, is
//! SIGKILLed, and the database it leaves is whole: integrity ok, every run
//! it said was committed is there with all its steps, no run without its
//! steps, and the next write works.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use upkeep_contract::RunRecord;
use upkeep_history::{History, RunDocs};

const CHILD_ENV: &str = "UPKEEP_HISTORY_KILL_TEST_DB";
/// Big runs, so that most of the child's time is spent inside a write.
const STEPS: usize = 400;

fn record(id: &str, steps: usize, status: &str) -> RunRecord {
    let steps: Vec<_> = (0..steps)
        .map(|i| {
            serde_json::json!({
                "index": i,
                "component": {"kind": "chart", "name": format!("app-{i}"), "namespace": "apps"},
                "from": "1.0.0", "to": "1.1.0", "status": "completed",
                "commitAfter": format!("{i:040x}"),
                "error": "x".repeat(200)
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "upkeep.dev/v1alpha1", "kind": "RunRecord",
        "runId": id, "startedAt": "2026-11-01T02:00:00Z", "status": status,
        "actor": "kill-test", "steps": steps
    }))
    .unwrap()
}

/// The writer half, run only as the child of the test below.
#[test]
#[ignore = "the child process of a_kill_in_the_middle_of_a_write_loses_nothing_committed"]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut h = History::open(Path::new(&path)).unwrap();
    let stdout = std::io::stdout();
    for i in 0.. {
        let id = format!("run-{i:06}");
        h.upsert(&record(&id, STEPS, "running"), &RunDocs::default())
            .unwrap();
        // The same run saved again with fewer steps: a torn write would
        // leave it with the wrong number.
        h.upsert(&record(&id, STEPS / 2, "completed"), &RunDocs::default())
            .unwrap();
        let mut out = stdout.lock();
        writeln!(out, "committed {id}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn a_kill_in_the_middle_of_a_write_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut committed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed.len() < 15 {
        assert!(Instant::now() < deadline, "the writer is too slow");
        let Some(line) = lines.next() else {
            panic!("the writer stopped early (wrote {} runs)", committed.len());
        };
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("committed ") {
            committed.push(id.to_string());
        }
    }
    // Land somewhere inside the next write, not right at its start.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::thread::sleep(Duration::from_micros(500 + u64::from(nanos % 5000)));
    child.kill().unwrap(); // SIGKILL: no destructor, no checkpoint, no close
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the writer was killed, not finished"
    );
    // Whatever the child printed after our last read was committed too.
    for line in lines.map_while(Result::ok) {
        if let Some(id) = line.strip_prefix("committed ") {
            committed.push(id.to_string());
        }
    }
    assert!(
        dir.path().join("history.db-wal").exists(),
        "the writer was in WAL mode"
    );

    let conn = rusqlite::Connection::open(&db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let torn: i64 = conn
        .query_row(
            "SELECT count(*) FROM runs r
             WHERE r.step_count != (SELECT count(*) FROM steps s WHERE s.run_id = r.run_id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(torn, 0, "a run without all of its steps");
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM steps WHERE run_id NOT IN (SELECT run_id FROM runs)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    for id in &committed {
        let (status, steps): (String, i64) = conn
            .query_row(
                "SELECT r.status, (SELECT count(*) FROM steps s WHERE s.run_id = r.run_id)
                 FROM runs r WHERE r.run_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("committed run {id} lost: {e}"));
        assert_eq!(
            (status.as_str(), steps),
            ("completed", (STEPS / 2) as i64),
            "{id}"
        );
    }
    let runs: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    // At most the one write that was in flight may have committed unreported.
    assert!(
        runs as usize == committed.len() || runs as usize == committed.len() + 1,
        "{runs} runs in the database, {} reported committed",
        committed.len()
    );
    drop(conn);

    let mut h = History::open(&db).unwrap();
    h.upsert(
        &record("after-the-kill", 3, "completed"),
        &RunDocs::default(),
    )
    .unwrap();
    let after = h
        .records()
        .unwrap()
        .into_iter()
        .find(|r| r.run_id == "after-the-kill")
        .expect("the new write is there");
    assert_eq!(after.steps.len(), 3);
}
