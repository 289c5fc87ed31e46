//! `upkeep run`, `resume`, `status` and `rollback` as a user runs them: the
//! built binary, a real git checkout with a bare origin that the simulated
//! Flux fetches, and sim-cluster's helm-controller installing (or failing)
//! the chart versions.

#[path = "../../apply-update/tests/common/flux.rs"]
mod flux;
#[path = "common/run.rs"]
mod run;
#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::path::PathBuf;
use std::process::Stdio;

use flux::*;
use run::*;
use serde_json::{Value, json};

#[test]
fn a_run_updates_a_chart_with_a_restore_point_and_validators_then_a_broken_one_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let sim = cluster(tmp.path(), &g.origin);
    ready(&sim);
    let cfg = config(tmp.path());

    // Without --yes and without a terminal, nothing happens.
    let out = upkeep(tmp.path(), &g, &sim, &cfg)
        .arg("run")
        .arg("--plan")
        .arg(plan(tmp.path(), "p1.json", "6.5.0", "6.6.0"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert!(upkeep_commits(&g).is_empty());

    let (code, run, stderr) = record(
        upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["run", "--yes", "--poll", "200ms", "--plan"])
            .arg(plan(tmp.path(), "p1.json", "6.5.0", "6.6.0")),
    );
    assert_eq!(code, 0, "{run} {stderr}");
    assert_eq!(run["status"], "completed");
    let step = &run["steps"][0];
    assert_eq!(step["status"], "completed");
    assert_eq!(
        installed(&sim).unwrap(),
        ("6.6.0".into(), "deployed".into())
    );
    assert_eq!(
        upkeep_commits(&g),
        ["upkeep: chart podinfo/podinfo 6.5.0 -> 6.6.0"]
    );
    // The restore point exists and every stage's document is in the run folder.
    let point = PathBuf::from(step["restorePoint"].as_str().unwrap());
    assert!(point.is_file(), "{}", point.display());
    let run_dir = tmp
        .path()
        .join("state/runs")
        .join(run["runId"].as_str().unwrap());
    for f in [
        "run.json",
        "plan.json",
        "step-1/snapshot.json",
        "step-1/before-flux.json",
        "step-1/before-apps.json",
        "step-1/apply.json",
        "step-1/after-flux.json",
        "step-1/after-apps.json",
    ] {
        assert!(
            run_dir.join(f).is_file(),
            "{f} missing in {}",
            run_dir.display()
        );
    }
    let commit_msg = git(&g.checkout, &["log", "-1", "--pretty=%B"]);
    assert!(
        commit_msg.contains(&format!("Upkeep-Run: {}", run["runId"].as_str().unwrap()))
            && commit_msg.contains(&format!("Upkeep-Restore-Point: {}", point.display())),
        "{commit_msg}"
    );
    // `status` shows the same record.
    let (code, status, _) = record(upkeep(tmp.path(), &g, &sim, &cfg).arg("status"));
    assert_eq!(code, 0);
    assert_eq!(status, run);

    // The broken version: Flux refuses it, the step is reverted, the
    // validators pass again, the run says rolled back, exit 1.
    let (code, bad, stderr) = record(
        upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["run", "--yes", "--poll", "200ms", "--plan"])
            .arg(plan(tmp.path(), "p2.json", "6.6.0", "6.7.0")),
    );
    assert_eq!(code, 1, "{bad} {stderr}");
    assert_eq!(bad["status"], "rolled-back");
    assert_eq!(bad["steps"][0]["status"], "rolled-back");
    assert!(
        bad["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("did not go in"),
        "{bad}"
    );
    let commits = upkeep_commits(&g);
    assert_eq!(
        commits[..2],
        [
            "upkeep: roll back chart podinfo/podinfo 6.7.0 -> 6.6.0",
            "upkeep: chart podinfo/podinfo 6.6.0 -> 6.7.0"
        ]
    );
    assert_eq!(installed(&sim).unwrap().0, "6.6.0");
    let bad_dir = tmp
        .path()
        .join("state/runs")
        .join(bad["runId"].as_str().unwrap());
    let after: Value = serde_json::from_slice(
        &std::fs::read(bad_dir.join("step-1/after-rollback-flux.json")).unwrap(),
    )
    .unwrap();
    assert!(
        after["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["regression"] != true),
        "{after}"
    );

    // `rollback` takes the first run's completed step back.
    let (code, back, stderr) = record(
        upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["rollback", "--poll", "200ms"])
            .arg(run["runId"].as_str().unwrap()),
    );
    assert_eq!(code, 0, "{back} {stderr}");
    assert_eq!(back["steps"][0]["status"], "rolled-back");
    assert_eq!(installed(&sim).unwrap().0, "6.5.0");
}

#[test]
fn a_second_run_is_refused_while_one_holds_the_locks() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let sim = cluster(tmp.path(), &g.origin);
    ready(&sim);
    let cfg = config(tmp.path());
    let p = plan(tmp.path(), "p.json", "6.5.0", "6.6.0");
    // A slow first run: it polls every 2 s.
    let mut first = upkeep(tmp.path(), &g, &sim, &cfg)
        .args(["run", "--yes", "--poll", "2s", "--plan"])
        .arg(&p)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_status(&tmp.path().join("state"), &["applying", "validating-after"]);
    // Maintenance is on while it works, and the Kustomization that applies
    // the step's HelmRelease keeps reconciling.
    let cm = sim.json(&[
        "get",
        "configmap",
        "upkeep-maintenance",
        "-n",
        "kube-system",
    ]);
    assert!(
        cm["data"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("upkeep run-"),
        "{cm}"
    );
    let ks = sim.json(&["get", "kustomization", "apps", "-n", "flux-system"]);
    assert_ne!(ks["spec"]["suspend"], true);
    // Same machine: the local lock.
    let out = upkeep(tmp.path(), &g, &sim, &cfg)
        .args(["run", "--yes", "--plan"])
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another upkeep run is going on this machine"),
        "{stderr}"
    );
    // Another machine (another state directory): the cluster's Lease.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let out = upkeep(tmp.path(), &g, &sim, &config(&other))
        .args(["run", "--yes", "--plan"])
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("holds the Lease kube-system/upkeep-run"),
        "{stderr}"
    );
    assert!(first.wait().unwrap().success());
    // Maintenance ended with the run.
    let out = sim.kubectl_out(&[
        "get",
        "configmap",
        "upkeep-maintenance",
        "-n",
        "kube-system",
    ]);
    assert!(!out.status.success());
    let out = sim.kubectl_out(&[
        "get",
        "validatingadmissionpolicy",
        "upkeep-maintenance-freeze",
    ]);
    assert!(!out.status.success());
    // The finished run gave the Lease back.
    let out = sim.kubectl_out(&["get", "lease", "upkeep-run", "-n", "kube-system"]);
    assert!(!out.status.success());
}

/// SIGKILL at each stage of a step, then `upkeep resume`: the run ends
/// completed, with one update commit, pushed, and the chart installed.
#[test]
fn a_run_killed_at_any_stage_resumes_to_the_end() {
    let order = [
        "snapshotting",
        "validating-before",
        "applying",
        "validating-after",
    ];
    for (n, stage) in order.iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let g = gitops(tmp.path());
        let sim = cluster(tmp.path(), &g.origin);
        ready(&sim);
        let cfg = config(tmp.path());
        let mut child = upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["run", "--yes", "--poll", "300ms", "--plan"])
            .arg(plan(tmp.path(), "p.json", "6.5.0", "6.6.0"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let seen = wait_for_status(&tmp.path().join("state"), &order[n..]);
        eprintln!("killing the run at {seen} (asked for {stage})");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (code, run, stderr) =
            record(upkeep(tmp.path(), &g, &sim, &cfg).args(["resume", "--poll", "200ms"]));
        assert_eq!(code, 0, "killed at {seen} (wanted {stage}): {run} {stderr}");
        assert_eq!(run["status"], "completed", "killed at {seen}");
        assert_eq!(
            upkeep_commits(&g),
            ["upkeep: chart podinfo/podinfo 6.5.0 -> 6.6.0"],
            "killed at {seen}"
        );
        assert_eq!(
            git(&g.origin, &["rev-parse", "main"]),
            git(&g.checkout, &["rev-parse", "HEAD"]),
            "killed at {seen}: pushed"
        );
        assert_eq!(
            installed(&sim).unwrap(),
            ("6.6.0".into(), "deployed".into())
        );
        // Nothing left to resume.
        let out = upkeep(tmp.path(), &g, &sim, &cfg)
            .arg("resume")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("already ended"));
    }
}

/// SIGKILL while a refused update is being rolled back, then `resume`: one
/// revert commit (not two, which would put the broken version back), the
/// old version installed, the run rolled back.
#[test]
fn a_run_killed_while_rolling_back_resumes_to_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let sim = cluster(tmp.path(), &g.origin);
    ready(&sim);
    let cfg = config(tmp.path());
    let mut child = upkeep(tmp.path(), &g, &sim, &cfg)
        .args(["run", "--yes", "--poll", "300ms", "--plan"])
        .arg(plan(tmp.path(), "p.json", "6.5.0", "6.7.0"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_status(&tmp.path().join("state"), &["rolling-back"]);
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, run, stderr) =
        record(upkeep(tmp.path(), &g, &sim, &cfg).args(["resume", "--poll", "200ms"]));
    assert_eq!(code, 1, "{run} {stderr}");
    assert_eq!(run["status"], "rolled-back");
    assert_eq!(
        upkeep_commits(&g),
        [
            "upkeep: roll back chart podinfo/podinfo 6.7.0 -> 6.5.0",
            "upkeep: chart podinfo/podinfo 6.5.0 -> 6.7.0"
        ]
    );
    assert_eq!(installed(&sim).unwrap().0, "6.5.0");
    assert_eq!(
        std::fs::read_to_string(g.checkout.join("apps/podinfo/helmrelease.yaml")).unwrap(),
        HELMRELEASE
    );
}

const NODES: &str = r#"apiVersion: v1
kind: Node
metadata:
  name: k3s-server
  labels: {kubernetes.io/hostname: k3s-server, node-role.kubernetes.io/control-plane: "true"}
status:
  nodeInfo: {kubeletVersion: v1.30.6+k3s1, kubeProxyVersion: v1.30.6+k3s1}
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Node
metadata:
  name: k3s-agent
  labels: {kubernetes.io/hostname: k3s-agent}
status:
  nodeInfo: {kubeletVersion: v1.30.6+k3s1, kubeProxyVersion: v1.30.6+k3s1}
  conditions: [{type: Ready, status: "True"}]
"#;

const PLANS: &str = r#"# k3s, upgraded by system-upgrade-controller: servers first
apiVersion: upgrade.cattle.io/v1
kind: Plan
metadata:
  name: server
spec:
  version: v1.30.6+k3s1 # k3s
  concurrency: 1
  cordon: true
  serviceAccountName: system-upgrade
  nodeSelector:
    matchExpressions:
      - {key: node-role.kubernetes.io/control-plane, operator: Exists}
  upgrade:
    image: rancher/k3s-upgrade
---
apiVersion: upgrade.cattle.io/v1
kind: Plan
metadata:
  name: agent
spec:
  version: v1.30.6+k3s1 # k3s
  concurrency: 1
  cordon: true
  serviceAccountName: system-upgrade
  nodeSelector:
    matchExpressions:
      - {key: node-role.kubernetes.io/control-plane, operator: DoesNotExist}
  prepare:
    image: rancher/k3s-upgrade
    args: ["prepare", "server"]
  upgrade:
    image: rancher/k3s-upgrade
"#;

const LONGHORN: &str = r#"apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: longhorn
spec:
  interval: 30m
  chart:
    spec:
      chart: longhorn
      version: 1.8.1
      sourceRef: {kind: HelmRepository, name: longhorn, namespace: flux-system}
"#;

const THREE_SIM: &str = r#"
controllers:
  flux:
    interval: 100ms
    charts:
      - name: podinfo
        versions:
          - {version: 6.5.0, appVersion: 6.5.0}
          - {version: 6.6.0, appVersion: 6.6.0}
      - name: longhorn
        versions:
          - {version: 1.8.1, appVersion: v1.8.1}
          - {version: 1.9.0, appVersion: v1.9.0}
  upgrades:
    interval: 100ms
    delay: 100ms
"#;

/// The job users come for: a Longhorn minor, a k3s hop and a chart update,
/// in the planner's order, each one commit whose diff is its version lines.
#[test]
fn a_run_with_longhorn_k3s_and_a_chart_goes_in_order_one_version_line_per_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops_with(
        tmp.path(),
        &[
            (
                "apps/kustomization.yaml",
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - namespace.yaml\n  - podinfo\n  - longhorn\n  - upgrades\n",
            ),
            (
                "apps/namespace.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: podinfo\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: longhorn-system\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: system-upgrade\n",
            ),
            (
                "apps/longhorn/kustomization.yaml",
                "namespace: longhorn-system\nresources:\n  - helmrelease.yaml\n",
            ),
            ("apps/longhorn/helmrelease.yaml", LONGHORN),
            (
                "apps/upgrades/kustomization.yaml",
                "namespace: system-upgrade\nresources:\n  - plans.yaml\n",
            ),
            ("apps/upgrades/plans.yaml", PLANS),
        ],
    );
    let sim = cluster_with(
        tmp.path(),
        &g.origin,
        &["flux", "system-upgrade"],
        NODES,
        THREE_SIM,
    );
    ready(&sim);
    let cfg = config(tmp.path());
    let step =
        |i: usize, kind: &str, name: &str, ns: Option<&str>, from: &str, to: &str, rev: &str| {
            let mut c = json!({"kind": kind, "name": name});
            if let Some(ns) = ns {
                c["namespace"] = json!(ns);
            }
            json!({"index": i, "component": c, "from": from, "to": to, "update": "minor",
               "reason": "newer", "reversibility": rev})
        };
    let plan = tmp.path().join("plan3.json");
    std::fs::write(
        &plan,
        json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdatePlan", "createdAt": "2026-11-28T04:00:00Z",
               "steps": [
                   step(1, "longhorn", "longhorn", Some("longhorn-system"), "1.8.1", "1.9.0", "restore-point-only"),
                   step(2, "k3s", "k3s", None, "v1.30.6+k3s1", "v1.31.4+k3s1", "restore-point-only"),
                   step(3, "chart", "podinfo", Some("podinfo"), "6.5.0", "6.6.0", "revert"),
               ]})
        .to_string(),
    )
    .unwrap();
    let (code, run, stderr) = record(
        upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["run", "--yes", "--poll", "200ms", "--plan"])
            .arg(&plan),
    );
    assert_eq!(code, 0, "{run} {stderr}");
    assert_eq!(run["status"], "completed");
    assert_eq!(
        upkeep_commits(&g),
        [
            "upkeep: chart podinfo/podinfo 6.5.0 -> 6.6.0",
            "upkeep: k3s k3s v1.30.6+k3s1 -> v1.31.4+k3s1",
            "upkeep: longhorn longhorn-system/longhorn 1.8.1 -> 1.9.0",
        ]
    );
    // Each commit's diff is its version lines and nothing else.
    let ids: Vec<String> = git(&g.checkout, &["log", "--pretty=%H", "-3"])
        .lines()
        .map(str::to_string)
        .collect();
    let changed = |id: &str| -> Vec<String> {
        git(
            &g.checkout,
            &["show", "--unified=0", "--pretty=format:", id],
        )
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .map(str::to_string)
        .collect()
    };
    assert_eq!(
        changed(&ids[2]),
        ["-      version: 1.8.1", "+      version: 1.9.0"]
    );
    assert_eq!(
        changed(&ids[1]),
        [
            "-  version: v1.30.6+k3s1 # k3s",
            "+  version: v1.31.4+k3s1 # k3s",
            "-  version: v1.30.6+k3s1 # k3s",
            "+  version: v1.31.4+k3s1 # k3s",
        ]
    );
    assert_eq!(
        changed(&ids[0]),
        [
            "-      version: \"6.5.0\" # pinned; upkeep moves it",
            "+      version: \"6.6.0\" # pinned; upkeep moves it"
        ]
    );
    // The cluster is where the plan said.
    let nodes = sim.json(&["get", "nodes"]);
    for n in nodes["items"].as_array().unwrap() {
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"], "v1.31.4+k3s1",
            "{n}"
        );
    }
    let lh = sim.json(&["get", "helmrelease", "longhorn", "-n", "longhorn-system"]);
    assert_eq!(lh["status"]["history"][0]["chartVersion"], "1.9.0");
    assert_eq!(installed(&sim).unwrap().0, "6.6.0");

    // Taking back the chart step alone: the Longhorn and k3s steps stay
    // applied, so the run is still a completed one, with step 3 rolled back.
    let (code, back, stderr) = record(
        upkeep(tmp.path(), &g, &sim, &cfg)
            .args(["rollback", "--poll", "200ms", "--step", "3"])
            .arg(run["runId"].as_str().unwrap()),
    );
    assert_eq!(code, 0, "{back} {stderr}");
    let statuses: Vec<&str> = back["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "completed", "rolled-back"]);
    assert_eq!(back["status"], "completed", "{back}");
    assert_eq!(installed(&sim).unwrap().0, "6.5.0");
}

/// A record saved as running whose step had already ended (stopped between
/// the step's save and the run's): resume reports the step's verdict, not
/// "completed".
#[test]
fn resume_reports_a_step_that_had_already_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    let sim = cluster(tmp.path(), &g.origin);
    let cfg = config(tmp.path());
    let dir = tmp.path().join("state/runs/run-20261128T040000Z-0001");
    std::fs::create_dir_all(&dir).unwrap();
    let plan: Value = serde_json::from_str(
        &std::fs::read_to_string(plan(tmp.path(), "p.json", "6.5.0", "6.7.0")).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
    std::fs::write(
        dir.join("run.json"),
        json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "RunRecord",
               "runId": "run-20261128T040000Z-0001", "startedAt": "2026-11-28T04:00:00Z",
               "status": "running", "actor": "test",
               "steps": [{"index": 1, "component": {"kind": "chart", "name": "podinfo", "namespace": "podinfo"},
                          "from": "6.5.0", "to": "6.7.0", "status": "rolled-back"}]})
        .to_string(),
    )
    .unwrap();
    let (code, run, stderr) = record(upkeep(tmp.path(), &g, &sim, &cfg).args(["resume"]));
    assert_eq!(code, 1, "{run} {stderr}");
    assert_eq!(run["status"], "rolled-back");
    assert!(run["finishedAt"].is_string());
    assert!(upkeep_commits(&g).is_empty(), "resume changed nothing");
}

/// A run whose Lease was taken by another (it expired while the machine
/// slept, say) stops at once instead of running beside the other one.
#[test]
fn a_run_that_loses_its_lease_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gitops(tmp.path());
    // A slow Flux (it looks every 7 s), so the step outlasts a renewal (every 5 s).
    let sim = cluster_with(
        tmp.path(),
        &g.origin,
        &["flux"],
        "",
        &SIM_YAML.replace("interval: 100ms", "interval: 7s"),
    );
    ready(&sim);
    let cfg = config(tmp.path());
    let child = upkeep(tmp.path(), &g, &sim, &cfg)
        .args([
            "run",
            "--yes",
            "--poll",
            "5s",
            "--lease-ttl",
            "15s",
            "--plan",
        ])
        .arg(plan(tmp.path(), "p.json", "6.5.0", "6.6.0"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_status(&tmp.path().join("state"), &["applying"]);
    sim.kubectl(&[
        "-n",
        "kube-system",
        "patch",
        "lease",
        "upkeep-run",
        "--type=merge",
        "-p",
        r#"{"spec":{"holderIdentity":"upkeep run-on-another-machine"}}"#,
    ]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("lost the Lease kube-system/upkeep-run"),
        "{stderr}"
    );
    // The state says where it stopped; the Lease stays with the other run.
    let lease = sim.json(&["get", "lease", "upkeep-run", "-n", "kube-system"]);
    assert_eq!(
        lease["spec"]["holderIdentity"],
        "upkeep run-on-another-machine"
    );
    let out = upkeep(tmp.path(), &g, &sim, &cfg)
        .args(["status"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["status"], "running");
}
