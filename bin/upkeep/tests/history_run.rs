//! The history is written by real runs, as they go: `upkeep run` against
//! sim-cluster and a real git checkout, one update that goes in and one
//! that Flux refuses and is rolled back; then `upkeep history` and
//! `upkeep report` show both without any import.

#[path = "../../apply-update/tests/common/flux.rs"]
mod flux;
#[path = "common/run.rs"]
mod run;
#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::path::{Path, PathBuf};
use std::process::Command;

use flux::*;
use run::plan;
use serde_json::{Value, json};
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("upkeep.yaml");
    std::fs::write(
        &path,
        format!(
            "stateDir: {}\nsnapshot:\n  excludeSecrets: true\nrun:\n  validators: [flux]\n  stepTimeout: 60s\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    path
}

fn upkeep(tmp: &Path, g: &Gitops, sim: &Sim, cfg: &Path) -> Command {
    let mut c = tool(BIN, tmp);
    c.arg("--config")
        .arg(cfg)
        .arg("--gitops")
        .arg(&g.checkout)
        .arg("--kubeconfig")
        .arg(sim.kubeconfig());
    c
}

/// The exit code, stdout, and stdout with stderr for failure messages.
fn stdout(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let both = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap(), stdout, both)
}

/// The same commit, however short either side wrote it.
fn same_commit(recorded: &Value, full: &str) -> bool {
    recorded
        .as_str()
        .is_some_and(|c| c.len() >= 7 && (full.starts_with(c) || c.starts_with(full)))
}

#[test]
fn every_run_lands_in_the_history_as_it_happens() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let sim = cluster(tmp.path(), &g.origin);
    eventually("6.5.0 installed", || {
        (installed(&sim)? == ("6.5.0".into(), "deployed".into())).then_some(())
    });
    let cfg = config(tmp.path());
    let (code, _, all) = stdout(
        upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["run", "--yes", "--poll", "200ms", "--plan"])
            .arg(plan(tmp.path(), "p1.json", "6.5.0", "6.6.0")),
    );
    assert_eq!(code, 0, "{all}");
    // The broken version is refused by Flux and reverted.
    let (code, _, all) = stdout(
        upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["run", "--yes", "--poll", "200ms", "--plan"])
            .arg(plan(tmp.path(), "p2.json", "6.6.0", "6.7.0")),
    );
    assert_eq!(code, 1, "{all}");
    assert!(
        tmp.path().join("state/history.db").is_file(),
        "the run wrote the history itself"
    );

    let (code, out, all) =
        stdout(upkeep(tmp.path(), &g, &sim, &cfg).args(["-o", "json", "history"]));
    assert_eq!(code, 0, "{all}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    let head = |dir: &Path| git(dir, &["log", "--pretty=%H", "-n", "3"]);
    let commits: Vec<String> = head(&g.checkout).lines().map(str::to_string).collect();
    // git log, newest first: the revert, the broken update, the good update.
    assert_eq!(rows[0]["component"], "podinfo/podinfo", "{out}");
    assert_eq!(
        (rows[0]["from"].as_str(), rows[0]["to"].as_str()),
        (Some("6.5.0"), Some("6.6.0")),
        "{out}"
    );
    assert_eq!(rows[0]["status"], "completed");
    assert_eq!(rows[0]["runStatus"], "completed");
    assert!(
        same_commit(&rows[0]["commit"], &commits[2]),
        "{} {commits:?}",
        rows[0]
    );
    assert!(
        rows[0]["restorePoint"]
            .as_str()
            .unwrap()
            .ends_with(".tar.zst")
    );
    assert_eq!(rows[1]["status"], "rolled-back");
    assert_eq!(rows[1]["runStatus"], "rolled-back");
    assert!(
        same_commit(&rows[1]["commit"], &commits[1]),
        "{} {commits:?}",
        rows[1]
    );
    assert!(
        same_commit(&rows[1]["revertCommit"], &commits[0]),
        "{} {commits:?}",
        rows[1]
    );
    assert!(
        rows[1]["errors"]
            .as_str()
            .unwrap()
            .contains("did not go in"),
        "{}",
        rows[1]
    );
    assert!(!rows[0]["actor"].as_str().unwrap().is_empty());

    let (code, out, all) = stdout(upkeep(tmp.path(), &g, &sim, &cfg).args([
        "-o",
        "json",
        "report",
        "--since",
        "2000-01-01",
    ]));
    assert_eq!(code, 0, "{all}");
    let r: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(r["runs"], 2);
    assert_eq!(r["stepsCompleted"], 1);
    assert_eq!(r["stepsRolledBack"], 1);
    assert_eq!(r["stepSuccessRate"], json!(0.5));
    assert!(
        same_commit(&r["rollbacks"][0]["revertCommit"], &commits[0]),
        "{r}"
    );
    assert_eq!(r["failures"][0]["cause"], "the update did not go in");
}
