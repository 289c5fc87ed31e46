//! validate-apps as a user runs it: the built binary against sim-cluster
//! serving the homelab, healthy and then with broken workloads.

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::process::Command;

use serde_json::Value;
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_validate-apps");

const BROKEN: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: broken
---
apiVersion: v1
kind: Pod
metadata:
  name: api-7d9f-crash
  namespace: broken
spec:
  containers:
    - name: api
      image: ghcr.io/example/api:2.0.0
status:
  phase: Running
  containerStatuses:
    - name: api
      ready: false
      restartCount: 12
      image: ghcr.io/example/api:2.0.0
      imageID: ''
      state:
        waiting:
          reason: CrashLoopBackOff
          message: back-off 5m0s restarting failed container=api
---
apiVersion: batch/v1
kind: Job
metadata:
  name: db-migrate
  namespace: broken
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: ghcr.io/example/api:2.0.0
status:
  failed: 1
  conditions:
    - type: Failed
      status: 'True'
      reason: BackoffLimitExceeded
      message: Job has reached the specified backoff limit
";

fn run(c: &mut Command) -> (i32, Value) {
    let out = c.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not a report ({e}): {stdout:?} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn failing(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| {
            format!(
                "{} {}",
                c["name"].as_str().unwrap(),
                c["detail"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn healthy_workloads_pass_and_broken_ones_are_each_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let healthy = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    let (code, report) = run(tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(healthy.kubeconfig()));
    assert_eq!(code, 0, "{:?}", failing(&report));
    assert_eq!(report["validator"], "apps");
    assert!(report["checks"].as_array().unwrap().len() > 5);
    drop(healthy);

    let fixture = homelab_with(tmp.path(), BROKEN);
    let sim = Sim::start(&fixture, None);
    // A Deployment short of replicas, as a failed rollout leaves it.
    sim.kubectl(&[
        "-n",
        "podinfo",
        "patch",
        "deployment",
        "podinfo",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"readyReplicas":1,"availableReplicas":1}}"#,
    ]);
    let (code, report) = run(tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(sim.kubeconfig()));
    assert_eq!(code, 1);
    let f = failing(&report);
    assert_eq!(f.len(), 3, "{f:?}");
    assert!(
        f.iter()
            .any(|l| l.starts_with("apps/deployment-ready Deployment podinfo/podinfo: 1/2 ready"))
    );
    assert!(
        f.iter()
            .any(|l| l.starts_with("apps/pod-not-stuck") && l.contains("CrashLoopBackOff"))
    );
    assert!(
        f.iter()
            .any(|l| l.starts_with("apps/job-not-failed") && l.contains("BackoffLimitExceeded"))
    );

    // A namespace selection looks only there.
    let (code, report) = run(tool(BIN, tmp.path())
        .args(["-n", "podinfo", "--kubeconfig"])
        .arg(sim.kubeconfig()));
    assert_eq!(code, 1);
    assert_eq!(failing(&report).len(), 1, "{:?}", failing(&report));
    // Text output for people names each failure.
    let out = tool(BIN, tmp.path())
        .args(["-o", "text", "--kubeconfig"])
        .arg(sim.kubeconfig())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("FAIL       apps/pod-not-stuck"), "{text}");
    assert!(text.lines().last().unwrap().contains("3 fail"), "{text}");
}

#[test]
fn an_unreachable_cluster_is_exit_3_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (kc, _) = unreachable_kubeconfig(tmp.path());
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(&kc)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// After an update step: a pod that restarted since the baseline and a
/// Deployment that fell short are regressions, each naming the step and
/// the objects it changed; what was already broken before is not blamed.
#[test]
fn after_a_step_new_restarts_are_regressions_that_name_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = homelab_with(tmp.path(), BROKEN);
    let sim = Sim::start(&fixture, None);
    let before = tmp.path().join("before.json");
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the fixture has broken objects");
    std::fs::write(&before, &out.stdout).unwrap();

    // The update: jellyfin's container is OOM-killed after the baseline,
    // and its Deployment is short of a replica.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let status = serde_json::json!({"status": {"containerStatuses": [{
        "name": "main", "image": "jellyfin/jellyfin:10.10.3", "imageID": "", "ready": true,
        "restartCount": 3, "state": {"running": {"startedAt": now}},
        "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": now}}}]}});
    sim.kubectl(&[
        "-n",
        "media",
        "patch",
        "pod",
        "jellyfin-28d81f2e7f-aade7",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
    sim.kubectl(&[
        "-n",
        "media",
        "patch",
        "deployment",
        "jellyfin",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"readyReplicas":0,"availableReplicas":0}}"#,
    ]);
    let step = tmp.path().join("apply.json");
    std::fs::write(
        &step,
        serde_json::json!({
            "apiVersion": "upkeep.dev/v1alpha1", "kind": "ApplyResult",
            "component": {"kind": "chart", "name": "jellyfin", "namespace": "media"},
            "from": "2.1.0", "to": "2.2.0", "mode": "gitops", "status": "applied",
            "startedAt": "2026-11-28T10:00:00Z", "finishedAt": "2026-11-28T10:01:00Z",
            "commit": "4f2a9c1e0b7d6a5c4f2a9c1e0b7d6a5c4f2a9c1e",
            "objects": [
                {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "namespace": "media", "name": "jellyfin"},
                {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "media", "name": "jellyfin"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let (code, report) = run(tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .arg("--baseline")
        .arg(&before)
        .arg("--after-step")
        .arg(&step));
    assert_eq!(code, 1);
    assert_eq!(report["afterStep"]["to"], "2.2.0");
    let regressions: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["regression"] == true)
        .collect();
    let names: Vec<&str> = regressions
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["apps/deployment-ready", "apps/pod-no-new-restarts"],
        "{regressions:?}"
    );
    let restart = regressions[1];
    assert!(
        restart["detail"]
            .as_str()
            .unwrap()
            .contains("restarted at ")
            && restart["detail"].as_str().unwrap().contains("OOMKilled"),
        "{restart}"
    );
    let cause = regressions[0]["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("after chart media/jellyfin 2.1.0 -> 2.2.0 (commit 4f2a9c1e0b7d)")
            && cause
                .contains("which changed Deployment media/jellyfin, HelmRelease media/jellyfin")
            && cause.contains("this check looked at an object the step changed"),
        "{cause}"
    );
    // The pod is not one of the step's objects, but it is in the namespace.
    let cause = restart["cause"].as_str().unwrap();
    assert!(
        cause.contains("which changed HelmRelease media/jellyfin") && !cause.contains("looked at"),
        "{cause}"
    );
    // The failures already in the baseline are reported, not regressions.
    assert!(failing(&report).len() >= 4, "{:?}", failing(&report));

    // A malformed --after-step is bad input: exit 2, one line, no report.
    std::fs::write(&step, "{\"kind\": \"ApplyResult\"").unwrap();
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .arg("--after-step")
        .arg(&step)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--after-step"), "{stderr}");
}

/// A real HTTP server (Python's http.server) answering for the checks.
struct Web {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn web() -> Web {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("health"), "status: all good\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "http.server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Web {
        child,
        port,
        _dir: dir,
    }
}

#[test]
fn user_defined_http_checks_pass_and_fail_for_what_they_say() {
    let tmp = tempfile::tempdir().unwrap();
    let w = web();
    let base = format!("http://127.0.0.1:{}", w.port);
    let checks = tmp.path().join("checks.yaml");
    std::fs::write(
        &checks,
        format!(
            "checks:\n\
             \x20 - {{name: health, url: \"{base}/health\", bodyContains: all good}}\n\
             \x20 - {{name: missing, url: \"{base}/nope\"}}\n\
             \x20 - {{name: login, url: \"{base}/health\", bodyContains: Sign in}}\n\
             \x20 - {{name: gone, url: \"http://127.0.0.1:1/\", timeout: 2s}}\n\
             \x20 - {{name: notfound-expected, url: \"{base}/nope\", expectStatus: 404}}\n"
        ),
    )
    .unwrap();
    let sim = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    let (code, report) = run(tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .arg("--http-checks")
        .arg(&checks));
    assert_eq!(code, 1);
    let http: Vec<(&str, &str, &str)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "apps/http")
        .map(|c| {
            (
                c["objects"][0]["name"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["detail"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(http.len(), 5, "{http:?}");
    let get = |n: &str| *http.iter().find(|h| h.0 == n).unwrap();
    assert_eq!(get("health").1, "pass", "{:?}", get("health"));
    assert_eq!(get("notfound-expected").1, "pass");
    assert!(
        get("missing").2.contains("answered 404, expected 200"),
        "{:?}",
        get("missing")
    );
    assert!(
        get("login").2.contains("does not contain \"Sign in\""),
        "{:?}",
        get("login")
    );
    assert_eq!(get("gone").1, "fail");
    assert_eq!(failing(&report).len(), 3, "{:?}", failing(&report));

    // A bad file is bad input: exit 2, one line naming the field.
    std::fs::write(&checks, "checks:\n  - {name: x, url: \"ftp://x/\"}\n").unwrap();
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(sim.kubeconfig())
        .arg("--http-checks")
        .arg(&checks)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("checks[0].url") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
}
