//! A sim-cluster in process serving a fixture directory, the real kubectl
//! against it, and the homelab fixture with extra objects: shared by the
//! snapshot and validator CLI tests (included by path).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A sim-cluster serving `fixture` until dropped.
pub struct Sim {
    sim: Option<sim_cluster::SimCluster>,
    runtime: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
}

impl Sim {
    /// `sim_yaml`: a SIM.yaml text turning simulated controllers on.
    pub fn start(fixture: &Path, sim_yaml: Option<&str>) -> Sim {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = sim_cluster::load_dir(fixture).unwrap();
        let mut cfg = sim_cluster::ServeConfig::new(dir.path().join("kubeconfig"));
        if let Some(text) = sim_yaml {
            cfg = cfg.with_sim(sim_cluster::SimConfig::parse(text).unwrap());
        }
        let sim = runtime
            .block_on(sim_cluster::SimCluster::start(store, cfg))
            .unwrap();
        Sim {
            sim: Some(sim),
            runtime,
            dir,
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        self.sim.as_ref().unwrap().kubeconfig_path()
    }

    /// The real kubectl; returns its output whatever the exit code.
    pub fn kubectl_out(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .env_clear()
            .env("HOME", self.dir.path())
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .expect("kubectl runs")
    }

    /// The real kubectl, which must succeed.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_out(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all)).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            self.runtime.block_on(sim.shutdown());
        }
    }
}

/// One of our binaries with an empty environment except HOME, so no
/// upkeep.yaml or KUBECONFIG of the developer's leaks in.
pub fn tool(bin: &str, home: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env_clear().env("HOME", home).env("NO_COLOR", "1");
    c
}

/// The homelab fixture (testdata/clusters/homelab) copied into `dir`, with
/// `extra` (YAML) added as one more manifest file.
pub fn homelab_with(dir: &Path, extra: &str) -> PathBuf {
    let root = dir.join("fixture");
    copy_dir(&workspace().join("testdata/clusters/homelab"), &root);
    std::fs::write(root.join("90-extra.yaml"), extra).unwrap();
    root
}

/// The homelab grown by `n` generated objects (scripts/fixtures/bulk-objects.py).
pub fn homelab_grown(dir: &Path, n: usize) -> PathBuf {
    let root = homelab_with(dir, "");
    let status = Command::new("python3")
        .arg(workspace().join("scripts/fixtures/bulk-objects.py"))
        .arg(n.to_string())
        .arg(root.join("95-bulk.yaml"))
        .status()
        .unwrap();
    assert!(status.success());
    root
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// A kubeconfig pointing at a local port nothing listens on, and the port.
pub fn unreachable_kubeconfig(dir: &Path) -> (PathBuf, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kc = dir.join("unreachable-kubeconfig");
    std::fs::write(
        &kc,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"),
    )
    .unwrap();
    (kc, port)
}
