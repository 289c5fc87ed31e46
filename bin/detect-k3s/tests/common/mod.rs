//! Shared by the detect-k3s, detect-flux and detect-longhorn tests (they
//! include this file by path). Runs the built binary against an in-process sim-upstream, with an
//! environment of its own (no config file, token or cache of the user's).

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sim_upstream::{RequestRecord, SimOptions, SimUpstream};

pub struct Sim {
    // Dropped after `sim`, which needs it to keep serving.
    pub sim: SimUpstream,
    pub runtime: tokio::runtime::Runtime,
    pub home: tempfile::TempDir,
}

impl Sim {
    pub fn start() -> Sim {
        Sim::start_with(sim_upstream::workspace_fixture())
    }

    /// Serving `fixture` (a changed copy of testdata/upstream, say).
    pub fn start_with(fixture: std::path::PathBuf) -> Sim {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sim = runtime
            .block_on(SimUpstream::start(SimOptions::new(fixture)))
            .unwrap();
        Sim {
            sim,
            runtime,
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn base(&self) -> String {
        self.sim.base_url()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.sim.requests()
    }

    /// The binary with upstream flags pointing at the sim and a cache in
    /// this test's home.
    pub fn cmd(&self, bin: &str) -> Command {
        let base = self.base();
        let mut c = isolated(bin, self.home.path());
        c.args(["--github-api", &base])
            .args(["--channels-url", &format!("{base}/v1-release/channels")])
            .arg("--cache-dir")
            .arg(self.home.path().join("cache"));
        c
    }
}

/// The binary with an empty environment except HOME (so no upkeep.yaml,
/// GITHUB_TOKEN or UPKEEP_* of the developer's leaks in).
pub fn isolated(bin: &str, home: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env_clear().env("HOME", home).env("NO_COLOR", "1");
    c
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn cluster(name: &str) -> PathBuf {
    workspace().join("testdata/clusters").join(name)
}

pub fn realdata(rel: &str) -> Option<PathBuf> {
    let p = workspace().join("../shared/realdata").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} is absent (../shared/realdata is not part of a clone)",
            p.display()
        );
        None
    }
}

/// Runs and returns (exit code, the one document on stdout, stderr).
pub fn run_doc(c: &mut Command) -> (i32, serde_json::Value, String) {
    let out: Output = c.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one document line expected; stdout={stdout:?} stderr={stderr}"
    );
    let doc: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(doc["apiVersion"], "upkeep.dev/v1alpha1");
    assert_eq!(doc["kind"], "ComponentUpdates");
    (out.status.code().unwrap(), doc, stderr)
}

/// Runs a command that must fail on bad input: exit 2, one line on stderr
/// naming `needle`, nothing on stdout.
pub fn assert_usage_error(c: &mut Command, needle: &str) {
    let out = c.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

pub fn hops(doc: &serde_json::Value) -> Vec<String> {
    doc["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap().to_string())
        .collect()
}

pub fn finding_codes(doc: &serde_json::Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// A port nothing listens on.
pub fn dead_base() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
}

/// A sim-cluster serving a fixture directory, in process on the Sim's
/// runtime, with the kubeconfig it wrote. Serving stops when it is dropped.
pub struct Cluster {
    // Dropped before `dir`, which holds the kubeconfig.
    sim: Option<sim_cluster::SimCluster>,
    handle: tokio::runtime::Handle,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub fn kubeconfig(&self) -> &Path {
        self.sim.as_ref().unwrap().kubeconfig_path()
    }

    /// The real kubectl against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .env_clear()
            .env("HOME", self.dir.path())
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            self.handle.block_on(sim.shutdown());
        }
    }
}

impl Sim {
    /// Serves `testdata/<fixture>` as a cluster whose `/version` says
    /// `git_version`, over HTTPS with a bearer token when `tls`.
    pub fn cluster(&self, fixture: &str, git_version: &str, tls: bool) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let store = sim_cluster::load_dir(&workspace().join("testdata").join(fixture)).unwrap();
        let mut cfg = sim_cluster::ServeConfig::new(dir.path().join("kubeconfig"));
        cfg.git_version = git_version.to_string();
        cfg.tls = tls;
        let sim = self
            .runtime
            .block_on(sim_cluster::SimCluster::start(store, cfg))
            .unwrap();
        Cluster {
            sim: Some(sim),
            handle: self.runtime.handle().clone(),
            dir,
        }
    }
}

/// A kubeconfig whose only cluster is a port nothing listens on.
pub fn dead_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("dead-kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: {}\n\
             contexts:\n- name: gone\n  context:\n    cluster: gone\n    user: nobody\n\
             current-context: gone\nusers:\n- name: nobody\n  user: {{}}\n",
            dead_base()
        ),
    )
    .unwrap();
    path
}

/// The document without what differs between two runs (the time).
pub fn comparable(mut doc: serde_json::Value) -> serde_json::Value {
    doc.as_object_mut().unwrap().remove("checkedAt");
    doc
}
