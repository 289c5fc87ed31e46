//! The simulated controllers, driven through the real binary, the real kubectl and (for Flux)
//! a real git repository made by the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, eventually, repo_root};
use serde_json::Value;

fn homelab_crds(sub: &str) -> PathBuf {
    repo_root().join("testdata/clusters/homelab/crds").join(sub)
}

/// A fixture directory: the CRD files of `crd_dirs` plus `objects` (YAML), and a SIM.yaml.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(crd_dirs: &[&str], objects: &str, sim: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let fx = dir.path().join("fixture");
        std::fs::create_dir_all(fx.join("crds")).unwrap();
        for d in crd_dirs {
            for e in std::fs::read_dir(homelab_crds(d)).unwrap() {
                let p = e.unwrap().path();
                std::fs::copy(&p, fx.join("crds").join(p.file_name().unwrap())).unwrap();
            }
        }
        std::fs::write(fx.join("objects.yaml"), objects).unwrap();
        std::fs::write(dir.path().join("SIM.yaml"), sim).unwrap();
        Setup { dir }
    }

    fn start(&self) -> Server {
        let fx = self.dir.path().join("fixture");
        let cfg = self.dir.path().join("SIM.yaml");
        Server::start(&fx, &["--config", cfg.to_str().unwrap()])
    }
}

fn try_json(s: &Server, args: &[&str]) -> Option<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = s.kubectl(&all);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn resource_version(s: &Server) -> u64 {
    let v: Value =
        serde_json::from_str(&s.ok(&["get", "--raw", "/api/v1/namespaces?limit=1"])).unwrap();
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `kubectl get KIND --watch -o json`, collecting every object it prints until stopped.
struct Watch {
    child: std::process::Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Watch {
    fn start(s: &Server, args: &[&str]) -> Watch {
        let mut child = Command::new(common::KUBECTL)
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .arg("get")
            .args(args)
            .args(["--watch", "-o", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            for v in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
                let Ok(v) = v else { break };
                sink.lock().unwrap().push(v);
            }
        });
        Watch {
            child,
            seen,
            reader,
        }
    }

    /// Waits until the watch has printed an object named `name`.
    fn wait_for(&self, name: &str) {
        eventually(&format!("watch to show {name}"), || {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .any(|v| v["metadata"]["name"] == name)
                .then_some(())
        });
    }

    fn stop(mut self) -> Vec<Value> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.reader.join();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn is_true(obj: &Value, kind: &str) -> bool {
    condition(obj, kind).is_some_and(|c| c["status"] == "True")
}

// ---------------------------------------------------------------- Flux

struct Repo {
    path: PathBuf,
}

impl Repo {
    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args([
                "-c",
                "user.name=Test",
                "-c",
                "user.email=test@example.invalid",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn write(&self, file: &str, text: &str) {
        let p = self.path.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }
}

fn helmrelease(version: &str) -> String {
    format!(
        r#"# podinfo, pinned
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
spec:
  interval: 10m
  chart:
    spec:
      chart: podinfo
      version: "{version}"
      sourceRef:
        kind: HelmRepository
        name: podinfo
        namespace: flux-system
  upgrade:
    remediation:
      retries: 1
  values:
    replicaCount: 2
"#
    )
}

const FLUX_SIM: &str = r#"
controllers:
  flux:
    interval: 100ms
    charts:
      - name: podinfo
        versions:
          - {version: 6.5.0, appVersion: 6.5.0}
          - {version: 6.6.0, appVersion: 6.6.0}
          - {version: 6.7.0, appVersion: 6.7.0, broken: true}
"#;

fn flux_setup(repo: &Path) -> Setup {
    let objects = format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: flux-system
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: homelab
  namespace: flux-system
spec:
  interval: 1m
  url: file://{}
  ref:
    branch: main
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: homelab
"#,
        repo.display()
    );
    Setup::new(&["flux"], &objects, FLUX_SIM)
}

fn history(hr: &Value) -> Vec<(String, String, String)> {
    hr["status"]["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| {
                    (
                        e["chartVersion"].as_str().unwrap_or("").to_string(),
                        e["status"].as_str().unwrap_or("").to_string(),
                        e["action"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn flux_follows_git_commits_to_a_chart_version_and_rolls_back_a_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo {
        path: tmp.path().join("gitops"),
    };
    std::fs::create_dir_all(&repo.path).unwrap();
    repo.git(&["init", "-q", "-b", "main"]);
    repo.write(
        "apps/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - namespace.yaml\n  - podinfo\n",
    );
    repo.write(
        "apps/namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: podinfo\n",
    );
    repo.write(
        "apps/podinfo/kustomization.yaml",
        "namespace: podinfo\nresources:\n  - helmrelease.yaml\n  - extra.yaml\n",
    );
    repo.write("apps/podinfo/helmrelease.yaml", &helmrelease("6.5.0"));
    repo.write(
        "apps/podinfo/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo-extra\ndata:\n  a: b\n",
    );
    repo.write("README.md", "not a manifest\n");
    let c1 = repo.commit("podinfo 6.5.0");

    let setup = flux_setup(&repo.path);
    let s = setup.start();

    // The source is fetched with the real git: revision is branch@sha1:commit.
    let gr = eventually("GitRepository fetched", || {
        let gr = try_json(
            &s,
            &["get", "gitrepository", "homelab", "-n", "flux-system"],
        )?;
        is_true(&gr, "Ready").then_some(gr)
    });
    assert_eq!(
        gr["status"]["artifact"]["revision"],
        format!("main@sha1:{c1}")
    );
    let hr = eventually("podinfo 6.5.0 installed", || {
        let hr = try_json(&s, &["get", "helmrelease", "podinfo", "-n", "podinfo"])?;
        is_true(&hr, "Ready").then_some(hr)
    });
    assert_eq!(
        history(&hr),
        [("6.5.0".into(), "deployed".into(), "install".into())]
    );
    let h0 = &hr["status"]["history"][0];
    assert_eq!(h0["chartName"], "podinfo");
    assert_eq!(h0["appVersion"], "6.5.0");
    assert_eq!(h0["namespace"], "podinfo");
    assert_eq!(
        condition(&hr, "Ready").unwrap()["reason"],
        "InstallSucceeded"
    );
    assert!(is_true(&hr, "Released"));
    assert_eq!(hr["status"]["lastAttemptedRevision"], "6.5.0");
    assert_eq!(
        hr["status"]["observedGeneration"],
        hr["metadata"]["generation"]
    );
    assert_eq!(
        hr["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"],
        "apps"
    );
    let ks = eventually("Kustomization applied", || {
        let ks = try_json(&s, &["get", "kustomization", "apps", "-n", "flux-system"])?;
        is_true(&ks, "Ready").then_some(ks)
    });
    assert_eq!(
        ks["status"]["lastAppliedRevision"],
        format!("main@sha1:{c1}")
    );
    assert!(try_json(&s, &["get", "configmap", "podinfo-extra", "-n", "podinfo"]).is_some());
    // Passes are idempotent: with nothing new in git, the controllers write nothing.
    eventually("a quiet cluster", || {
        let a = resource_version(&s);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        (a == resource_version(&s)).then_some(())
    });

    // A commit bumps the chart version (and drops the ConfigMap: prune).
    repo.write("apps/podinfo/helmrelease.yaml", &helmrelease("6.6.0"));
    repo.write(
        "apps/podinfo/kustomization.yaml",
        "namespace: podinfo\nresources:\n  - helmrelease.yaml\n",
    );
    let c2 = repo.commit("podinfo 6.6.0");
    let hr = eventually("podinfo upgraded to 6.6.0", || {
        let hr = try_json(&s, &["get", "helmrelease", "podinfo", "-n", "podinfo"])?;
        (hr["status"]["history"][0]["chartVersion"] == "6.6.0" && is_true(&hr, "Ready"))
            .then_some(hr)
    });
    assert_eq!(
        history(&hr),
        [
            ("6.6.0".into(), "deployed".into(), "upgrade".into()),
            ("6.5.0".into(), "superseded".into(), "install".into()),
        ]
    );
    assert_eq!(
        condition(&hr, "Ready").unwrap()["reason"],
        "UpgradeSucceeded"
    );
    assert_eq!(hr["status"]["observedGeneration"], 2);
    assert_eq!(hr["metadata"]["generation"], 2);
    let ks = eventually("Kustomization at the new commit", || {
        let ks = try_json(&s, &["get", "kustomization", "apps", "-n", "flux-system"])?;
        (ks["status"]["lastAppliedRevision"] == format!("main@sha1:{c2}")).then_some(ks)
    });
    assert!(is_true(&ks, "Ready"));
    eventually("pruned ConfigMap gone", || {
        try_json(&s, &["get", "configmap", "podinfo-extra", "-n", "podinfo"])
            .is_none()
            .then_some(())
    });

    // A broken version: the upgrade fails, is retried once, and Flux rolls back each time.
    repo.write("apps/podinfo/helmrelease.yaml", &helmrelease("6.7.0"));
    repo.commit("podinfo 6.7.0 (broken)");
    let hr = eventually("broken 6.7.0 remediated and stalled", || {
        let hr = try_json(&s, &["get", "helmrelease", "podinfo", "-n", "podinfo"])?;
        is_true(&hr, "Stalled").then_some(hr)
    });
    let h = history(&hr);
    assert_eq!(
        h[0],
        ("6.6.0".into(), "deployed".into(), "rollback".into()),
        "{h:?}"
    );
    assert_eq!(
        h[1],
        ("6.7.0".into(), "failed".into(), "upgrade".into()),
        "{h:?}"
    );
    assert_eq!(
        h[2],
        ("6.6.0".into(), "superseded".into(), "rollback".into()),
        "{h:?}"
    );
    assert_eq!(
        h[3],
        ("6.7.0".into(), "failed".into(), "upgrade".into()),
        "{h:?}"
    );
    assert_eq!(h.len(), 5, "history is capped at 5: {h:?}");
    let ready = condition(&hr, "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "RollbackSucceeded");
    assert_eq!(
        condition(&hr, "Remediated").unwrap()["reason"],
        "RollbackSucceeded"
    );
    assert_eq!(
        condition(&hr, "Released").unwrap()["reason"],
        "UpgradeFailed"
    );
    assert_eq!(
        condition(&hr, "Stalled").unwrap()["reason"],
        "RetriesExceeded"
    );
    assert_eq!(hr["status"]["upgradeFailures"], 2);
    assert_eq!(hr["status"]["lastAttemptedRevision"], "6.7.0");

    // `flux reconcile` is an annotation; it is echoed in lastHandledReconcileAt.
    s.ok(&[
        "annotate",
        "--overwrite",
        "helmrelease",
        "podinfo",
        "-n",
        "podinfo",
        "reconcile.fluxcd.io/requestedAt=2026-11-28T06:00:00Z",
    ]);
    eventually("requestedAt handled", || {
        let hr = try_json(&s, &["get", "helmrelease", "podinfo", "-n", "podinfo"])?;
        (hr["status"]["lastHandledReconcileAt"] == "2026-11-28T06:00:00Z").then_some(())
    });

    // Suspended: a new version in git reaches the spec but is not acted on until resumed.
    s.ok(&[
        "patch",
        "helmrelease",
        "podinfo",
        "-n",
        "podinfo",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    repo.write("apps/podinfo/helmrelease.yaml", &helmrelease("6.5.0"));
    let c4 = repo.commit("back to podinfo 6.5.0");
    eventually("Kustomization applied the revert", || {
        let ks = try_json(&s, &["get", "kustomization", "apps", "-n", "flux-system"])?;
        (ks["status"]["lastAppliedRevision"] == format!("main@sha1:{c4}")).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let hr = try_json(&s, &["get", "helmrelease", "podinfo", "-n", "podinfo"]).unwrap();
    assert_eq!(hr["spec"]["chart"]["spec"]["version"], "6.5.0");
    assert_eq!(
        hr["spec"]["suspend"], true,
        "kustomize-controller keeps others' fields"
    );
    assert_eq!(history(&hr)[0].0, "6.6.0", "suspended: nothing installed");
    s.ok(&[
        "patch",
        "helmrelease",
        "podinfo",
        "-n",
        "podinfo",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    let hr = eventually("resumed release moves to 6.5.0", || {
        let hr = try_json(&s, &["get", "helmrelease", "podinfo", "-n", "podinfo"])?;
        (hr["status"]["history"][0]["chartVersion"] == "6.5.0" && is_true(&hr, "Ready"))
            .then_some(hr)
    });
    assert!(
        condition(&hr, "Stalled").is_none(),
        "a new generation resets remediation"
    );
    assert!(hr["status"].get("upgradeFailures").is_none());
}

#[test]
fn flux_reports_a_bad_path_an_unknown_chart_and_unsupported_kustomize_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo {
        path: tmp.path().join("gitops"),
    };
    std::fs::create_dir_all(&repo.path).unwrap();
    repo.git(&["init", "-q", "-b", "main"]);
    repo.write(
        "elsewhere/hr.yaml",
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: mystery\n  namespace: flux-system\nspec:\n  chart:\n    spec:\n      chart: mystery\n      version: 1.x\n",
    );
    repo.write(
        "broken/kustomization.yaml",
        "resources:\n  - cm.yaml\npatches:\n  - path: p.yaml\n",
    );
    repo.write(
        "broken/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: flux-system\n",
    );
    repo.commit("init");
    let setup = flux_setup(&repo.path);
    let s = setup.start();
    let ks = eventually("Kustomization fails on the missing path", || {
        let ks = try_json(&s, &["get", "kustomization", "apps", "-n", "flux-system"])?;
        condition(&ks, "Ready")
            .is_some_and(|c| c["status"] == "False")
            .then_some(ks)
    });
    let ready = condition(&ks, "Ready").unwrap();
    assert_eq!(ready["reason"], "ReconciliationFailed");
    assert!(
        ready["message"].as_str().unwrap().contains("./apps"),
        "{ready}"
    );
    // A HelmRelease whose chart the catalogue lacks is not Ready.
    s.ok(&[
        "patch",
        "kustomization",
        "apps",
        "-n",
        "flux-system",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"path":"./elsewhere"}}"#,
    ]);
    let hr = eventually("mystery release reported", || {
        let hr = try_json(&s, &["get", "helmrelease", "mystery", "-n", "flux-system"])?;
        condition(&hr, "Ready").is_some().then_some(hr)
    });
    let ready = condition(&hr, "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    assert!(
        ready["message"].as_str().unwrap().contains("catalogue"),
        "{ready}"
    );
    // Unsupported kustomize features are refused by name, not silently ignored.
    s.ok(&[
        "patch",
        "kustomization",
        "apps",
        "-n",
        "flux-system",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"path":"./broken"}}"#,
    ]);
    let ks = eventually("unsupported field reported", || {
        let ks = try_json(&s, &["get", "kustomization", "apps", "-n", "flux-system"])?;
        condition(&ks, "Ready")
            .is_some_and(|c| {
                c["status"] == "False"
                    && c["message"].as_str().is_some_and(|m| m.contains("patches"))
            })
            .then_some(ks)
    });
    assert!(
        try_json(&s, &["get", "configmap", "x", "-n", "flux-system"]).is_none(),
        "nothing applied from a kustomization that cannot be built: {ks}"
    );
    // A requested reconcile of the source is acknowledged.
    s.ok(&[
        "annotate",
        "gitrepository",
        "homelab",
        "-n",
        "flux-system",
        "reconcile.fluxcd.io/requestedAt=now-1",
    ]);
    eventually("GitRepository requestedAt handled", || {
        let gr = try_json(
            &s,
            &["get", "gitrepository", "homelab", "-n", "flux-system"],
        )?;
        (gr["status"]["lastHandledReconcileAt"] == "now-1").then_some(())
    });
}

// ---------------------------------------------------------------- Longhorn

const LONGHORN_OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: longhorn-system
---
apiVersion: longhorn.io/v1beta2
kind: Volume
metadata:
  name: pvc-data
  namespace: longhorn-system
spec:
  size: "10737418240"
  numberOfReplicas: 3
  nodeID: node-1
---
apiVersion: longhorn.io/v1beta2
kind: Volume
metadata:
  name: pvc-media
  namespace: longhorn-system
spec:
  size: "5368709120"
  numberOfReplicas: 3
  nodeID: node-2
---
apiVersion: longhorn.io/v1beta2
kind: Volume
metadata:
  name: pvc-idle
  namespace: longhorn-system
spec:
  size: "1073741824"
  numberOfReplicas: 2
---
apiVersion: longhorn.io/v1beta2
kind: Setting
metadata:
  name: backup-target
  namespace: longhorn-system
value: s3://homelab-backups@us-east-1/
---
apiVersion: longhorn.io/v1beta2
kind: Setting
metadata:
  name: current-longhorn-version
  namespace: longhorn-system
value: v1.7.1
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: longhorn
  namespace: longhorn-system
spec:
  interval: 30m
  chart:
    spec:
      chart: longhorn
      version: 1.7.2
      sourceRef:
        kind: HelmRepository
        name: longhorn
        namespace: flux-system
"#;

#[test]
fn longhorn_volumes_snapshots_backups_and_version_setting() {
    let sim = r#"
controllers:
  flux:
    interval: 100ms
    charts:
      - name: longhorn
        versions:
          - {version: 1.7.2, appVersion: v1.7.2}
          - {version: 1.8.1, appVersion: v1.8.1}
  longhorn:
    interval: 100ms
    failBackups: ["broken-*"]
    degradedVolumes: ["pvc-media"]
"#;
    let setup = Setup::new(&["flux", "longhorn"], LONGHORN_OBJECTS, sim);
    let s = setup.start();
    let state = |name: &str| {
        let v = try_json(
            &s,
            &["get", "volumes.longhorn.io", name, "-n", "longhorn-system"],
        )?;
        Some((
            v["status"]["state"].as_str()?.to_string(),
            v["status"]["robustness"].as_str()?.to_string(),
        ))
    };
    eventually("volume states", || {
        (state("pvc-data")? == ("attached".into(), "healthy".into())
            && state("pvc-media")? == ("attached".into(), "degraded".into())
            && state("pvc-idle")? == ("detached".into(), "unknown".into()))
            .then_some(())
    });
    let snap = r#"
apiVersion: longhorn.io/v1beta2
kind: Snapshot
metadata:
  name: snap-1
  namespace: longhorn-system
spec:
  volume: pvc-data
  createSnapshot: true
---
apiVersion: longhorn.io/v1beta2
kind: Backup
metadata:
  name: backup-1
  namespace: longhorn-system
spec:
  snapshotName: snap-1
---
apiVersion: longhorn.io/v1beta2
kind: Backup
metadata:
  name: broken-1
  namespace: longhorn-system
spec:
  snapshotName: snap-1
"#;
    let f = s.write("snap.yaml", snap);
    // Watch the backups from before they exist: a sentinel shows the watch is live.
    let watch = Watch::start(&s, &["backups.longhorn.io", "-n", "longhorn-system"]);
    s.ok(&["create", "-f", s.write("sentinel.yaml", "apiVersion: longhorn.io/v1beta2\nkind: Backup\nmetadata:\n  name: sentinel\n  namespace: longhorn-system\nspec:\n  snapshotName: none\n").to_str().unwrap()]);
    watch.wait_for("sentinel");
    s.ok(&["apply", "-f", f.to_str().unwrap()]);
    let sn = eventually("snapshot ready", || {
        let sn = try_json(
            &s,
            &[
                "get",
                "snapshots.longhorn.io",
                "snap-1",
                "-n",
                "longhorn-system",
            ],
        )?;
        (sn["status"]["readyToUse"] == true).then_some(sn)
    });
    assert_eq!(sn["status"]["size"], "10737418240");
    let b = eventually("backup completed", || {
        let b = try_json(
            &s,
            &[
                "get",
                "backups.longhorn.io",
                "backup-1",
                "-n",
                "longhorn-system",
            ],
        )?;
        (b["status"]["state"] == "Completed").then_some(b)
    });
    assert_eq!(b["status"]["volumeName"], "pvc-data");
    assert_eq!(b["status"]["progress"], 100);
    assert_eq!(
        b["status"]["url"],
        "s3://homelab-backups@us-east-1/?backup=backup-1&volume=pvc-data"
    );
    let states: Vec<String> = watch
        .stop()
        .iter()
        .filter(|b| b["metadata"]["name"] == "backup-1")
        .filter_map(|b| b["status"]["state"].as_str().map(str::to_string))
        .collect();
    let progress = states.iter().position(|s| s == "InProgress");
    let done = states.iter().position(|s| s == "Completed");
    assert!(
        progress.is_some() && progress < done,
        "InProgress before Completed: {states:?}"
    );
    let bad = eventually("backup failed", || {
        let b = try_json(
            &s,
            &[
                "get",
                "backups.longhorn.io",
                "broken-1",
                "-n",
                "longhorn-system",
            ],
        )?;
        (b["status"]["state"] == "Error").then_some(b)
    });
    assert!(
        bad["status"]["error"]
            .as_str()
            .unwrap()
            .contains("SIM.yaml")
    );
    // The version setting follows the deployed Longhorn chart, and its upgrade.
    let setting = |s: &Server| {
        try_json(
            s,
            &[
                "get",
                "settings.longhorn.io",
                "current-longhorn-version",
                "-n",
                "longhorn-system",
            ],
        )
        .and_then(|v| v["value"].as_str().map(str::to_string))
    };
    eventually("setting v1.7.2", || {
        (setting(&s)? == "v1.7.2").then_some(())
    });
    s.ok(&[
        "patch",
        "helmrelease",
        "longhorn",
        "-n",
        "longhorn-system",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"chart":{"spec":{"version":"1.8.1"}}}}"#,
    ]);
    eventually("setting v1.8.1", || {
        (setting(&s)? == "v1.8.1").then_some(())
    });
}

// ---------------------------------------------------------------- k3s upgrades

fn node(name: &str, server: bool) -> String {
    let role = if server {
        "\n    node-role.kubernetes.io/control-plane: \"true\"\n    node-role.kubernetes.io/master: \"true\""
    } else {
        ""
    };
    format!(
        r#"---
apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels:
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux{role}
status:
  nodeInfo:
    kubeletVersion: v1.30.6+k3s1
    kubeProxyVersion: v1.30.6+k3s1
  conditions:
    - type: Ready
      status: "True"
"#
    )
}

const PLANS: &str = r#"
---
apiVersion: v1
kind: Namespace
metadata:
  name: system-upgrade
---
apiVersion: upgrade.cattle.io/v1
kind: Plan
metadata:
  name: server
  namespace: system-upgrade
spec:
  version: v1.31.4+k3s1
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
  namespace: system-upgrade
spec:
  version: v1.31.4+k3s1
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

#[test]
fn k3s_plans_upgrade_servers_then_agents_one_node_at_a_time() {
    let objects = format!(
        "{}{}{}",
        node("k3s-server", true),
        node("k3s-agent-1", false),
        node("k3s-agent-2", false),
    );
    let sim = "controllers:\n  upgrades:\n    interval: 100ms\n    delay: 300ms\n";
    let setup = Setup::new(&["system-upgrade"], &objects, sim);
    let s = setup.start();
    // Record every node change from a real kubectl watch, live before the Plans exist.
    let watch = Watch::start(&s, &["nodes"]);
    watch.wait_for("k3s-server");
    watch.wait_for("k3s-agent-1");
    watch.wait_for("k3s-agent-2");
    s.ok(&[
        "apply",
        "-f",
        s.write("plans.yaml", PLANS).to_str().unwrap(),
    ]);
    eventually("all nodes upgraded", || {
        let nodes = try_json(&s, &["get", "nodes"])?;
        nodes["items"]
            .as_array()?
            .iter()
            .all(|n| {
                n["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.4+k3s1"
                    && n["spec"].get("unschedulable").is_none()
                    && n["metadata"]["labels"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .any(|k| k.starts_with("plan.upgrade.cattle.io/"))
            })
            .then_some(())
    });
    let nodes = try_json(&s, &["get", "nodes"]).unwrap();
    for n in nodes["items"].as_array().unwrap() {
        let labels = n["metadata"]["labels"].as_object().unwrap();
        let server = labels.contains_key("node-role.kubernetes.io/control-plane");
        let want = if server {
            "plan.upgrade.cattle.io/server"
        } else {
            "plan.upgrade.cattle.io/agent"
        };
        assert!(labels.contains_key(want), "{n}");
        assert_eq!(
            labels
                .keys()
                .filter(|k| k.starts_with("plan.upgrade"))
                .count(),
            1
        );
        assert!(
            n["spec"]
                .get("taints")
                .is_none_or(|t| t.as_array().unwrap().is_empty())
        );
    }
    let plan = try_json(
        &s,
        &[
            "get",
            "plans.upgrade.cattle.io",
            "agent",
            "-n",
            "system-upgrade",
        ],
    )
    .unwrap();
    assert_eq!(plan["status"]["latestVersion"], "v1.31.4+k3s1");
    assert_eq!(plan["status"]["latestHash"].as_str().unwrap().len(), 56);
    assert!(is_true(&plan, "LatestResolved"));
    let events = watch.stop();
    // Replay the watch: at most one node cordoned at any time, and the server finished
    // (new version, uncordoned) before any agent was touched.
    let mut cordoned = std::collections::BTreeSet::new();
    let mut server_done = false;
    let mut upgraded_order = Vec::new();
    for e in &events {
        let name = e["metadata"]["name"].as_str().unwrap().to_string();
        let is_server = e["metadata"]["labels"]
            .get("node-role.kubernetes.io/control-plane")
            .is_some();
        let unsched = e["spec"]["unschedulable"] == true;
        if unsched {
            cordoned.insert(name.clone());
        } else {
            cordoned.remove(&name);
        }
        assert!(
            cordoned.len() <= 1,
            "two nodes cordoned at once: {cordoned:?}"
        );
        let new = e["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.4+k3s1";
        if new && !upgraded_order.contains(&name) {
            upgraded_order.push(name.clone());
        }
        if is_server && new && !unsched {
            server_done = true;
        }
        if !is_server && (unsched || new) {
            assert!(
                server_done,
                "agent {name} touched before the server finished"
            );
        }
    }
    assert_eq!(
        upgraded_order.first().map(String::as_str),
        Some("k3s-server"),
        "{upgraded_order:?}"
    );
    assert_eq!(upgraded_order.len(), 3, "{upgraded_order:?}");
}

// ---------------------------------------------------------------- Jobs and Pods

#[test]
fn jobs_and_pods_run_to_completion_with_configured_logs() {
    let objects = node("k3s-server", true);
    let sim = r#"
controllers:
  workloads:
    interval: 100ms
    pods:
      - match: "bad-*"
        result: Failed
        logs: "error: validation failed\n"
      - match: "check-*"
        logs: "line one\nline two\nall good\n"
"#;
    let setup = Setup::new(&[], &objects, sim);
    let s = setup.start();
    // Every pod change, from a watch that a long-running sentinel pod shows is live.
    let watch = Watch::start(&s, &["pods"]);
    s.ok(&["run", "sentinel", "--image=nginx"]);
    watch.wait_for("sentinel");
    s.ok(&["create", "job", "check-1", "--image=busybox", "--", "true"]);
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/check-1",
        "--timeout=90s",
    ]);
    let job = try_json(&s, &["get", "job", "check-1"]).unwrap();
    assert_eq!(job["status"]["succeeded"], 1);
    assert!(job["status"]["completionTime"].is_string());
    let pods = try_json(&s, &["get", "pods", "-l", "job-name=check-1"]).unwrap();
    let pod = &pods["items"][0];
    assert_eq!(pod["status"]["phase"], "Succeeded");
    assert_eq!(pod["spec"]["nodeName"], "k3s-server");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    let name = pod["metadata"]["name"].as_str().unwrap();
    assert_eq!(s.ok(&["logs", name]), "line one\nline two\nall good\n");
    assert_eq!(s.ok(&["logs", name, "--tail=1"]), "all good\n");

    // A failing job is retried up to backoffLimit, then Failed.
    s.ok(&["create", "job", "bad-1", "--image=busybox", "--", "false"]);
    s.ok(&[
        "patch",
        "job",
        "bad-1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"backoffLimit":1}}"#,
    ]);
    s.ok(&[
        "wait",
        "--for=condition=failed",
        "job/bad-1",
        "--timeout=90s",
    ]);
    let job = try_json(&s, &["get", "job", "bad-1"]).unwrap();
    assert_eq!(job["status"]["failed"], 2, "{job}");
    assert_eq!(
        condition(&job, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    let pods = try_json(&s, &["get", "pods", "-l", "job-name=bad-1"]).unwrap();
    let failed = pods["items"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    let pod_name = failed[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(s.ok(&["logs", pod_name]), "error: validation failed\n");

    // A bare pod with restartPolicy Never.
    s.ok(&[
        "run",
        "check-once",
        "--image=busybox",
        "--restart=Never",
        "--",
        "true",
    ]);
    s.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/check-once",
        "--timeout=90s",
    ]);
    assert_eq!(
        s.ok(&["logs", "check-once"]),
        "line one\nline two\nall good\n"
    );
    let mut phases: Vec<String> = Vec::new();
    for p in watch.stop() {
        if p["metadata"]["name"] == "check-once"
            && let Some(ph) = p["status"]["phase"].as_str()
            && phases.last().map(String::as_str) != Some(ph)
        {
            phases.push(ph.to_string());
        }
    }
    assert_eq!(phases, ["Pending", "Running", "Succeeded"]);
    // A long-running pod stays Running and Ready.
    s.ok(&["run", "web", "--image=nginx"]);
    s.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=90s"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let web = try_json(&s, &["get", "pod", "web"]).unwrap();
    assert_eq!(web["status"]["phase"], "Running");
    assert_eq!(s.ok(&["logs", "web"]), "", "no logs configured");
}

#[test]
fn a_failing_node_upgrade_stays_cordoned_on_the_old_version() {
    let objects = format!(
        "{}{}{}{}",
        node("k3s-server", true),
        node("k3s-agent-1", false),
        node("k3s-agent-2", false),
        PLANS
    );
    let sim = "controllers:\n  upgrades:\n    interval: 100ms\n    failNodes: [k3s-agent-1]\n";
    let setup = Setup::new(&["system-upgrade"], &objects, sim);
    let s = setup.start();
    let plan = eventually("agent plan stuck applying on k3s-agent-1", || {
        let p = try_json(
            &s,
            &[
                "get",
                "plans.upgrade.cattle.io",
                "agent",
                "-n",
                "system-upgrade",
            ],
        )?;
        (p["status"]["applying"] == serde_json::json!(["k3s-agent-1"])).then_some(p)
    });
    assert!(!is_true(&plan, "Complete"));
    let server = try_json(&s, &["get", "node", "k3s-server"]).unwrap();
    assert_eq!(
        server["status"]["nodeInfo"]["kubeletVersion"],
        "v1.31.4+k3s1"
    );
    // It stays that way: the failed node is cordoned, on the old version, and blocks agent-2
    // (concurrency 1).
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let a1 = try_json(&s, &["get", "node", "k3s-agent-1"]).unwrap();
    assert_eq!(a1["spec"]["unschedulable"], true);
    assert_eq!(a1["status"]["nodeInfo"]["kubeletVersion"], "v1.30.6+k3s1");
    let a2 = try_json(&s, &["get", "node", "k3s-agent-2"]).unwrap();
    assert_eq!(a2["status"]["nodeInfo"]["kubeletVersion"], "v1.30.6+k3s1");
    assert!(a2["spec"].get("unschedulable").is_none());
}
