//! What the `upkeep run` tests share (run.rs and chaos.rs include it by
//! path): upkeep.yaml, one-step plans, the command line against a
//! sim-cluster and a GitOps checkout, and waiting for a run's state.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::flux::*;
use crate::sim::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

/// upkeep.yaml: state and restore points under `dir`, Secrets left out of
/// restore points (the test has no age key), the Flux and apps validators.
pub fn config(dir: &Path) -> PathBuf {
    let path = dir.join("upkeep.yaml");
    std::fs::write(
        &path,
        format!(
            "stateDir: {}\nsnapshot:\n  excludeSecrets: true\nrun:\n  validators: [flux, apps]\n  stepTimeout: 60s\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    path
}

pub fn plan(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdatePlan", "createdAt": "2026-11-28T04:00:00Z",
               "steps": [{"index": 1, "component": {"kind": "chart", "name": "podinfo", "namespace": "podinfo"},
                          "from": from, "to": to, "update": "minor", "reason": "a newer chart", "reversibility": "revert"}]})
        .to_string(),
    )
    .unwrap();
    path
}

pub fn upkeep(tmp: &Path, g: &Gitops, sim: &Sim, cfg: &Path) -> Command {
    let mut c = tool(BIN, tmp);
    c.arg("--config")
        .arg(cfg)
        .arg("--gitops")
        .arg(&g.checkout)
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .args(["-o", "json"]);
    c
}

pub fn record(c: &mut Command) -> (i32, Value, String) {
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let doc = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not a RunRecord ({e}): {stdout:?} {stderr}"));
    (out.status.code().unwrap(), doc, stderr)
}

pub fn ready(sim: &Sim) {
    eventually("6.5.0 installed", || {
        (installed(sim)? == ("6.5.0".into(), "deployed".into())).then_some(())
    });
}

pub fn upkeep_commits(g: &Gitops) -> Vec<String> {
    git(&g.checkout, &["log", "--pretty=%s"])
        .lines()
        .filter(|l| l.starts_with("upkeep:"))
        .map(str::to_string)
        .collect()
}

/// Polls the state directory's newest run until its step is in one of
/// `statuses` (or later); returns the status seen.
pub fn wait_for_status(state: &Path, statuses: &[&str]) -> String {
    let start = Instant::now();
    loop {
        let runs = state.join("runs");
        let newest = std::fs::read_dir(&runs)
            .ok()
            .and_then(|d| d.filter_map(Result::ok).map(|e| e.path()).max());
        if let Some(r) = newest
            .and_then(|dir| std::fs::read(dir.join("run.json")).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            let s = r["steps"][0]["status"].as_str().unwrap_or("").to_string();
            if statuses.contains(&s.as_str()) {
                return s;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no step reached {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
