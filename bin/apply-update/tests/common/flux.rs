//! A GitOps checkout with a bare `origin`, and a sim-cluster whose
//! simulated Flux fetches `origin` and installs the podinfo chart from the
//! SIM.yaml catalogue (6.7.0 is broken): shared by the apply-update and
//! upkeep tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sim::{Sim, workspace};

pub const SIM_YAML: &str = r#"
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

pub const HELMRELEASE: &str = r#"# podinfo: the demo app
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
spec:
  interval: 10m
  chart:
    spec:
      chart: podinfo
      version: "6.5.0" # pinned; upkeep moves it
      sourceRef:
        kind: HelmRepository
        name: podinfo
        namespace: flux-system
  upgrade:
    remediation:
      retries: 1
  values:
    replicaCount: 2
"#;

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A GitOps checkout with a pushed `origin` (a bare repository), which is
/// what the simulated Flux fetches, as a real one fetches the forge.
pub struct Gitops {
    pub checkout: PathBuf,
    pub origin: PathBuf,
}

pub fn gitops(dir: &Path) -> Gitops {
    gitops_with(dir, &[])
}

/// The checkout with more files: `(path, text)`; a file that exists is
/// replaced (e.g. `apps/kustomization.yaml` to list more resources).
pub fn gitops_with(dir: &Path, extra: &[(&str, &str)]) -> Gitops {
    let origin = dir.join("origin.git");
    let checkout = dir.join("home-ops");
    std::fs::create_dir_all(&origin).unwrap();
    git(&origin, &["init", "-q", "--bare", "-b", "main"]);
    std::fs::create_dir_all(checkout.join("apps/podinfo")).unwrap();
    git(&checkout, &["init", "-q", "-b", "main"]);
    for (k, v) in [
        ("user.name", "operator"),
        ("user.email", "operator@example.invalid"),
    ] {
        git(&checkout, &["config", k, v]);
    }
    let write = |p: &str, t: &str| std::fs::write(checkout.join(p), t).unwrap();
    write(
        "apps/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - namespace.yaml\n  - podinfo\n",
    );
    write(
        "apps/namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: podinfo\n",
    );
    write(
        "apps/podinfo/kustomization.yaml",
        "namespace: podinfo\nresources:\n  - helmrelease.yaml\n",
    );
    write("apps/podinfo/helmrelease.yaml", HELMRELEASE);
    for (p, t) in extra {
        let path = checkout.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, t).unwrap();
    }
    git(&checkout, &["add", "-A"]);
    git(&checkout, &["commit", "-q", "-m", "podinfo 6.5.0"]);
    git(
        &checkout,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(&checkout, &["push", "-q", "origin", "main"]);
    Gitops { checkout, origin }
}

/// The cluster: Flux's CRDs, a GitRepository on `origin` and a Kustomization of ./apps.
pub fn cluster(dir: &Path, origin: &Path) -> Sim {
    cluster_with(dir, origin, &["flux"], "", SIM_YAML)
}

/// The cluster with the homelab's CRDs of `crd_dirs`, `objects` (YAML)
/// besides Flux's, and `sim_yaml`.
pub fn cluster_with(
    dir: &Path,
    origin: &Path,
    crd_dirs: &[&str],
    objects: &str,
    sim_yaml: &str,
) -> Sim {
    let fx = dir.join("fixture");
    std::fs::create_dir_all(fx.join("crds")).unwrap();
    for d in crd_dirs {
        for e in
            std::fs::read_dir(workspace().join("testdata/clusters/homelab/crds").join(d)).unwrap()
        {
            let p = e.unwrap().path();
            std::fs::copy(&p, fx.join("crds").join(p.file_name().unwrap())).unwrap();
        }
    }
    if !objects.is_empty() {
        std::fs::write(fx.join("objects.yaml"), objects).unwrap();
    }
    std::fs::write(
        fx.join("flux.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n---\n\
             apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: home-ops\n  namespace: flux-system\n\
             spec:\n  interval: 1h\n  url: file://{}\n  ref:\n    branch: main\n---\n\
             apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\n\
             spec:\n  interval: 1h\n  path: ./apps\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: home-ops\n",
            origin.display()
        ),
    )
    .unwrap();
    Sim::start(&fx, Some(sim_yaml))
}

pub fn installed(sim: &Sim) -> Option<(String, String)> {
    let out = sim.kubectl_out(&[
        "get",
        "helmrelease",
        "podinfo",
        "-n",
        "podinfo",
        "-o",
        "json",
    ]);
    let hr: Value = serde_json::from_slice(&out.stdout).ok()?;
    let h = hr.pointer("/status/history/0")?;
    Some((
        h["chartVersion"].as_str()?.to_string(),
        h["status"].as_str()?.to_string(),
    ))
}

pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
