//! apply-update as a user runs it: the built binary, a real git checkout
//! that the simulated Flux (sim-cluster) fetches and applies, and the
//! simulated helm-controller installing (or failing) chart versions.

#[path = "common/flux.rs"]
mod flux;
#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flux::*;
use serde_json::{Value, json};
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_apply-update");

fn report(dir: &Path) -> PathBuf {
    let path = dir.join("report.json");
    let cand = |v: &str, u: &str| json!({"version": v, "update": u, "allowed": true});
    let doc = json!({
        "apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
        "generatedAt": "2026-11-28T04:00:00Z",
        "summary": {"components": 1, "withUpdates": 1, "patch": 0, "minor": 1, "major": 0,
                    "security": 0, "breaking": 0, "blocked": 0, "errors": 0},
        "components": [{
            "apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
            "component": {"kind": "chart", "name": "podinfo", "namespace": "podinfo"},
            "current": {"version": "6.5.0"},
            "candidates": [cand("6.6.0", "minor"), cand("6.7.0", "minor")],
            "checkedAt": "2026-11-28T04:00:00Z"
        }]
    });
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

fn run(c: &mut Command) -> (i32, Value, String) {
    let out: Output = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let doc = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not a document ({e}): {stdout:?} {stderr}"));
    (out.status.code().unwrap(), doc, stderr)
}

fn apply(tmp: &Path, g: &Gitops, sim: &Sim) -> Command {
    let mut c = tool(BIN, tmp);
    c.arg("--gitops")
        .arg(&g.checkout)
        .arg("--push")
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .args(["--timeout", "60s", "--poll", "200ms"]);
    c
}

#[test]
fn a_chart_update_is_one_line_committed_pushed_and_installed_and_a_broken_one_is_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let sim = cluster(tmp.path(), &g.origin);
    eventually("6.5.0 installed", || {
        (installed(&sim)? == ("6.5.0".into(), "deployed".into())).then_some(())
    });
    let report = report(tmp.path());

    // A dry run shows the edit and changes nothing.
    let head = git(&g.checkout, &["rev-parse", "HEAD"]);
    let (code, doc, _) = run(apply(tmp.path(), &g, &sim)
        .arg("--report")
        .arg(&report)
        .args([
            "--component",
            "podinfo/podinfo",
            "--to",
            "6.6.0",
            "--dry-run",
        ]));
    assert_eq!(code, 0);
    assert_eq!(doc["dryRun"], true);
    assert_eq!(
        doc["edits"][0]["after"],
        "      version: \"6.6.0\" # pinned; upkeep moves it"
    );
    assert_eq!(git(&g.checkout, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        std::fs::read_to_string(g.checkout.join("apps/podinfo/helmrelease.yaml")).unwrap(),
        HELMRELEASE
    );

    // Waiting without pushing would wait for a commit Flux never fetches.
    let out = tool(BIN, tmp.path())
        .arg("--gitops")
        .arg(&g.checkout)
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .arg("--report")
        .arg(&report)
        .args(["--component", "podinfo", "--to", "6.6.0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("add --push, or --no-wait"), "{stderr}");
    assert_eq!(git(&g.checkout, &["rev-parse", "HEAD"]), head);

    // The update: one line changed, committed with trailers, pushed, installed.
    let (code, doc, stderr) = run(apply(tmp.path(), &g, &sim)
        .arg("--report")
        .arg(&report)
        .args(["--component", "podinfo", "--to", "6.6.0"])
        .args([
            "--run-id",
            "run-42",
            "--restore-point",
            "upkeep-20261128T040000Z",
        ]));
    assert_eq!(code, 0, "{doc} {stderr}");
    assert_eq!(doc["status"], "applied");
    assert_eq!(doc["mode"], "gitops");
    let commit = doc["commit"].as_str().unwrap().to_string();
    assert_eq!(
        installed(&sim).unwrap(),
        ("6.6.0".into(), "deployed".into())
    );
    let diff = git(
        &g.checkout,
        &["show", "--unified=0", "--pretty=format:", &commit],
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        [
            "-      version: \"6.5.0\" # pinned; upkeep moves it",
            "+      version: \"6.6.0\" # pinned; upkeep moves it"
        ]
    );
    let message = git(&g.checkout, &["log", "-1", "--pretty=%B"]);
    assert!(
        message.starts_with("upkeep: chart podinfo/podinfo 6.5.0 -> 6.6.0\n"),
        "{message}"
    );
    assert!(
        message.contains("Upkeep-Run: run-42\n")
            && message.contains("Upkeep-Restore-Point: upkeep-20261128T040000Z"),
        "{message}"
    );
    assert_eq!(git(&g.origin, &["rev-parse", "main"]).trim(), commit);
    // Applying it again is a no-op, not a second commit.
    let (code, doc, _) = run(apply(tmp.path(), &g, &sim)
        .arg("--report")
        .arg(&report)
        .args(["--component", "podinfo", "--to", "6.6.0"]));
    assert_eq!((code, doc["status"].as_str()), (0, Some("no-op")));
    assert_eq!(git(&g.checkout, &["rev-parse", "HEAD"]).trim(), commit);

    // A version the cluster refuses (the simulated chart is broken): exit 1,
    // the result says why; then the rollback reverts it and Flux goes back.
    let plan = tmp.path().join("plan.json");
    std::fs::write(
        &plan,
        json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdatePlan", "createdAt": "2026-11-28T04:00:00Z",
               "steps": [{"index": 1, "component": {"kind": "chart", "name": "podinfo", "namespace": "podinfo"},
                          "from": "6.6.0", "to": "6.7.0", "update": "minor", "reason": "newest", "reversibility": "revert"}]})
        .to_string(),
    )
    .unwrap();
    let (code, failed, _) = run(apply(tmp.path(), &g, &sim)
        .arg("--plan")
        .arg(&plan)
        .args(["--step", "1"]));
    assert_eq!(code, 1, "{failed}");
    assert_eq!(failed["status"], "failed");
    let why = failed["errors"][0]["message"].as_str().unwrap();
    assert!(
        why.contains("did not install 6.7.0") || why.contains("stalled"),
        "{why}"
    );
    let result = tmp.path().join("failed.json");
    std::fs::write(&result, failed.to_string()).unwrap();
    let (code, back, stderr) = run(apply(tmp.path(), &g, &sim).arg("--rollback").arg(&result));
    assert_eq!(code, 0, "{back} {stderr}");
    assert_eq!(back["status"], "rolled-back");
    assert_eq!(
        (back["from"].as_str(), back["to"].as_str()),
        (Some("6.7.0"), Some("6.6.0"))
    );
    let revert = back["revertCommit"].as_str().unwrap();
    assert_eq!(git(&g.origin, &["rev-parse", "main"]).trim(), revert);
    assert!(
        git(&g.checkout, &["log", "-1", "--pretty=%B"]).contains(&format!(
            "Upkeep-Reverts: {}",
            failed["commit"].as_str().unwrap()
        ))
    );
    assert_eq!(
        std::fs::read_to_string(g.checkout.join("apps/podinfo/helmrelease.yaml")).unwrap(),
        HELMRELEASE.replace("6.5.0", "6.6.0")
    );
    assert_eq!(installed(&sim).unwrap().0, "6.6.0");
    // A rollback run again (as a resumed run does) finds its revert and
    // does not revert twice, which would put the broken version back.
    let (code, again, _) = run(apply(tmp.path(), &g, &sim).arg("--rollback").arg(&result));
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["revertCommit"].as_str(), Some(revert));
    assert_eq!(git(&g.checkout, &["rev-parse", "HEAD"]).trim(), revert);
}

#[test]
fn bad_input_and_a_changed_checkout_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let report = report(tmp.path());
    let head = git(&g.checkout, &["rev-parse", "HEAD"]);
    let attempt = |args: &[&str]| {
        let out = tool(BIN, tmp.path())
            .arg("--gitops")
            .arg(&g.checkout)
            .arg("--no-wait")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        (out.status.code().unwrap(), stderr, out.stdout)
    };
    let rep = report.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["--report", rep, "--component", "podinfo", "--to", "9.9.9"],
            "not a candidate",
        ),
        (
            vec!["--report", rep, "--component", "nope", "--to", "6.6.0"],
            "not in the report",
        ),
        (
            vec![
                "--report",
                rep,
                "--component",
                "podinfo",
                "--to",
                "not-a-version",
            ],
            "--to",
        ),
        (vec!["--plan", rep, "--step", "1"], "--plan"),
        (vec![], "say what to apply"),
    ] {
        let (code, stderr, stdout) = attempt(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // Someone moved the version since the report: refused, file untouched.
    let file = g.checkout.join("apps/podinfo/helmrelease.yaml");
    let moved = HELMRELEASE.replace("6.5.0", "6.5.1");
    std::fs::write(&file, &moved).unwrap();
    git(&g.checkout, &["commit", "-q", "-am", "hand edit"]);
    let (code, stderr, _) = attempt(&["--report", rep, "--component", "podinfo", "--to", "6.6.0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("helmrelease.yaml:11") && stderr.contains("changed since"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), moved);
    // Uncommitted work in the checkout is never swept into an update commit.
    std::fs::write(&file, HELMRELEASE).unwrap();
    git(&g.checkout, &["commit", "-q", "-am", "back"]);
    std::fs::write(g.checkout.join("apps/notes.txt"), "wip").unwrap();
    let (code, stderr, _) = attempt(&["--report", rep, "--component", "podinfo", "--to", "6.6.0"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("uncommitted changes"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), HELMRELEASE);
    assert_ne!(git(&g.checkout, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git(&g.checkout, &["log", "-1", "--pretty=%s"]).trim(),
        "back"
    );

    // A step stopped between writing its edit and committing it: run again,
    // the edit left in the working tree is committed as the step's commit.
    std::fs::remove_file(g.checkout.join("apps/notes.txt")).unwrap();
    std::fs::write(&file, HELMRELEASE.replace("6.5.0", "6.6.0")).unwrap();
    let out = tool(BIN, tmp.path())
        .arg("--gitops")
        .arg(&g.checkout)
        .args(["--no-wait", "--run-id", "run-7", "--report", rep])
        .args(["--component", "podinfo", "--to", "6.6.0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "applied");
    let message = git(&g.checkout, &["log", "-1", "--pretty=%B"]);
    assert!(
        message.starts_with("upkeep: chart podinfo/podinfo 6.5.0 -> 6.6.0")
            && message.contains("Upkeep-Run: run-7"),
        "{message}"
    );
    assert_eq!(
        doc["commit"].as_str().unwrap(),
        git(&g.checkout, &["rev-parse", "HEAD"]).trim()
    );
    assert!(
        git(&g.checkout, &["status", "--porcelain"])
            .trim()
            .is_empty()
    );

    // The forge is gone: the push fails, the result says so (exit 1), and
    // the rollback reverts locally without trying to push again.
    std::fs::rename(&g.origin, tmp.path().join("origin-moved.git")).unwrap();
    let plan = tmp.path().join("plan.json");
    std::fs::write(
        &plan,
        json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdatePlan", "createdAt": "2026-11-28T04:00:00Z",
               "steps": [{"index": 1, "component": {"kind": "chart", "name": "podinfo", "namespace": "podinfo"},
                          "from": "6.6.0", "to": "6.7.0", "update": "minor", "reason": "newest", "reversibility": "revert"}]})
        .to_string(),
    )
    .unwrap();
    let out = tool(BIN, tmp.path())
        .arg("--gitops")
        .arg(&g.checkout)
        .args(["--no-wait", "--push", "--step", "1", "--plan"])
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["errors"][0]["source"], "push");
    let result = tmp.path().join("unpushed.json");
    std::fs::write(&result, failed.to_string()).unwrap();
    let out = tool(BIN, tmp.path())
        .arg("--gitops")
        .arg(&g.checkout)
        .args(["--no-wait", "--push", "--rollback"])
        .arg(&result)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(back["status"], "rolled-back");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        HELMRELEASE.replace("6.5.0", "6.6.0")
    );
}

/// Someone pushes right after us (Renovate, the operator): Flux fetches
/// their commit, which contains ours, and the update still counts as in.
#[test]
fn a_commit_pushed_on_top_of_ours_still_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    // Flux looks every 2 s, so the other push lands before it fetches.
    let sim = cluster_with(
        tmp.path(),
        &g.origin,
        &["flux"],
        "",
        &SIM_YAML.replace("interval: 100ms", "interval: 2s"),
    );
    eventually("6.5.0 installed", || {
        (installed(&sim)? == ("6.5.0".into(), "deployed".into())).then_some(())
    });
    let first = git(&g.origin, &["rev-parse", "main"]);
    let origin = g.origin.clone();
    let other = tmp.path().join("other");
    let pusher = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while git(&origin, &["rev-parse", "main"]) == first {
            assert!(start.elapsed() < std::time::Duration::from_secs(30));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        git(
            tmp_parent(&other),
            &[
                "clone",
                "-q",
                origin.to_str().unwrap(),
                other.to_str().unwrap(),
            ],
        );
        std::fs::write(other.join("NOTES.md"), "someone else's change\n").unwrap();
        git(&other, &["add", "NOTES.md"]);
        git(
            &other,
            &[
                "-c",
                "user.name=other",
                "-c",
                "user.email=o@example.invalid",
                "commit",
                "-q",
                "-m",
                "notes",
            ],
        );
        git(&other, &["push", "-q", "origin", "main"]);
        git(&other, &["rev-parse", "HEAD"])
    });
    let (code, doc, stderr) = run(tool(BIN, tmp.path())
        .arg("--gitops")
        .arg(&g.checkout)
        .arg("--push")
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .args(["--timeout", "30s", "--poll", "200ms", "--report"])
        .arg(report(tmp.path()))
        .args(["--component", "podinfo", "--to", "6.6.0"]));
    let theirs = pusher.join().unwrap();
    assert_eq!(code, 0, "{doc} {stderr}");
    assert_eq!(doc["status"], "applied");
    assert_eq!(git(&g.origin, &["rev-parse", "main"]), theirs);
    assert_ne!(doc["commit"].as_str().unwrap(), theirs.trim());
    assert_eq!(
        installed(&sim).unwrap(),
        ("6.6.0".into(), "deployed".into())
    );
}

fn tmp_parent(p: &Path) -> &Path {
    p.parent().unwrap()
}
