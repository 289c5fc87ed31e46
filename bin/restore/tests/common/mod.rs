//! Shared by the restore CLI tests: the real `sim-cluster` binary serving the homelab
//! fixture, the real `kubectl`, restore points written by the real `snapshot` binary or by
//! hand, and the built `restore` binary run in an isolated environment.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const RESTORE: &str = env!("CARGO_BIN_EXE_restore");

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A workspace binary built next to this test's own (`target/<profile>/NAME`), built first
/// when it is not there yet: binaries of other packages are not visible through
/// `CARGO_BIN_EXE_*`, and `scripts/test.sh` builds them all before running the tests.
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let path = profile_dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args(["build", "-p", package, "--bin", name])
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "building {name} failed");
    }
    path
}

/// The real sim-cluster binary, serving `testdata/clusters/homelab`.
pub struct Server {
    child: Child,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn homelab() -> Server {
        Server::start(&workspace().join("testdata/clusters/homelab"))
    }

    /// The real sim-cluster binary, serving `fixture`.
    pub fn start(fixture: &Path) -> Server {
        Server::start_with(fixture, None)
    }

    /// The real sim-cluster binary, serving `fixture` with `sim_yaml` (a SIM.yaml text) as
    /// its `--config`: simulated controllers on.
    pub fn start_with(fixture: &Path, sim_yaml: Option<&str>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut cmd = Command::new(workspace_bin("sim-cluster-bin", "sim-cluster"));
        cmd.arg("serve")
            .arg("--fixture")
            .arg(fixture)
            .arg("--kubeconfig-out")
            .arg(&kubeconfig);
        if let Some(text) = sim_yaml {
            let path = dir.path().join("SIM.yaml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The first stdout line says it is ready.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("ready line {line:?} is not JSON: {e}"));
        assert_eq!(ready["kubeconfig"], kubeconfig.display().to_string());
        Server {
            child,
            kubeconfig,
            dir,
        }
    }

    /// The real kubectl against this cluster; stdout, or the test fails with kubectl's stderr.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .env_clear()
            .env("HOME", self.dir.path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl get ... -o json`, or None when it does not exist.
    pub fn get(&self, args: &[&str]) -> Option<Value> {
        let out = Command::new("kubectl")
            .env_clear()
            .env("HOME", self.dir.path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("get")
            .args(args)
            .args(["-o", "json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            assert!(
                stderr.contains("NotFound"),
                "kubectl get {args:?}: {stderr}"
            );
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).unwrap())
    }

    /// The restore binary with this cluster's kubeconfig and nothing of the developer's.
    pub fn restore(&self) -> Command {
        let mut c = Command::new(RESTORE);
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig);
        c
    }

    /// Writes a restore point of the whole cluster to `out` with the real `snapshot` binary,
    /// Secrets encrypted to a fresh age key (`snapshot keygen`); returns the identity file.
    pub fn snapshot(&self, out: &Path) -> PathBuf {
        self.snapshot_with(out, &[])
    }

    /// [`Server::snapshot`] with more `snapshot create` flags (e.g. `--longhorn snapshot`).
    pub fn snapshot_with(&self, out: &Path, extra: &[&str]) -> PathBuf {
        let snapshot = workspace_bin("snapshot", "snapshot");
        // One key per restore point, so a test can take several.
        let stem = out.file_name().unwrap().to_string_lossy();
        let identity = self.dir.path().join(format!("identity-{stem}.txt"));
        let keygen = Command::new(&snapshot)
            .env_clear()
            .env("HOME", self.dir.path())
            .args(["keygen", "--out"])
            .arg(&identity)
            .output()
            .unwrap();
        assert!(
            keygen.status.success(),
            "snapshot keygen: {}",
            String::from_utf8_lossy(&keygen.stderr)
        );
        let public = String::from_utf8(keygen.stdout).unwrap().trim().to_string();
        assert!(public.starts_with("age1"), "{public}");
        let create = Command::new(&snapshot)
            .env_clear()
            .env("HOME", self.dir.path())
            .args(["create", "--out"])
            .arg(out)
            .args(["--age-recipient", &public, "--kubeconfig"])
            .arg(&self.kubeconfig)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            create.status.success(),
            "snapshot create: {}",
            String::from_utf8_lossy(&create.stderr)
        );
        identity
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A restore point directory written by hand: `objects` stored unencrypted, with a manifest
/// whose checksums are right.
pub fn hand_made_point(dir: &Path, objects: &[Value]) -> PathBuf {
    let root = dir.join("hand-made");
    let mut files = Vec::new();
    for obj in objects {
        let api_version = obj["apiVersion"].as_str().unwrap();
        let group = api_version.split_once('/').map_or("core", |(g, _)| g);
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("_cluster");
        let rel = format!(
            "resources/{group}/{}/{ns}/{}.json",
            obj["kind"].as_str().unwrap(),
            obj["metadata"]["name"].as_str().unwrap()
        );
        let bytes = serde_json::to_vec(obj).unwrap();
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        files.push(json!({"path": rel, "sha256": hex(&Sha256::digest(&bytes)),
            "size": bytes.len(), "encrypted": false}));
    }
    let manifest = json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "SnapshotManifest",
        "name": "hand-made", "createdAt": "2026-11-28T04:00:00Z", "toolVersion": "test",
        "scope": {}, "files": files});
    std::fs::write(root.join("manifest.json"), manifest.to_string()).unwrap();
    root
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs and returns (exit code, the RestoreResult on stdout or Null, stderr).
pub fn run(c: &mut Command) -> (i32, Value, String) {
    let out: Output = c.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let doc = match stdout.lines().collect::<Vec<_>>().as_slice() {
        [] => Value::Null,
        [one] => {
            let doc: Value = serde_json::from_str(one).unwrap();
            assert_eq!(doc["apiVersion"], "upkeep.dev/v1alpha1");
            assert_eq!(doc["kind"], "RestoreResult");
            doc
        }
        more => panic!("one document expected, got {} lines: {stdout}", more.len()),
    };
    (out.status.code().unwrap(), doc, stderr)
}

/// The entry of the result for this kind and name: (action, message).
pub fn entry(doc: &Value, kind: &str, ns: Option<&str>, name: &str) -> (String, String) {
    let o = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["object"]["kind"] == kind
                && o["object"]["name"] == name
                && o["object"]["namespace"].as_str() == ns
        })
        .unwrap_or_else(|| panic!("{kind} {name} not in {doc}"));
    (
        o["action"].as_str().unwrap().to_string(),
        o["message"].as_str().unwrap_or("").to_string(),
    )
}
