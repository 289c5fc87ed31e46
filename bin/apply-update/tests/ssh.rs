//! `apply-update --k3s-method ssh` against a real OpenSSH server on a
//! loopback port (started here, with its own host key and authorized key),
//! sim-upstream serving the k3s release (a stand-in binary and its real
//! sha256 checksum file) and sim-cluster holding the nodes.
//!
//! Each "node" is a directory on this machine holding its k3s binary. Its
//! restart command plays the k3s service: it runs the installed binary to
//! learn its version and reports it as the node's kubelet version through
//! the real kubectl, as a restarted k3s does by registering again.

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sim::*;
use sim_upstream::{SimOptions, SimUpstream};

const BIN: &str = env!("CARGO_BIN_EXE_apply-update");
const FROM: &str = "v1.31.4+k3s1";
const TO: &str = "v1.31.10+k3s1";

/// A real sshd on 127.0.0.1, killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    user: String,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs (scripts/install-test-deps.sh installs openssh-client)");
    assert!(out.status.success(), "{out:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sshd(dir: &Path) -> Sshd {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(
        sshd.exists(),
        "/usr/sbin/sshd is missing: run scripts/install-test-deps.sh (openssh-server)"
    );
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    if user == "root" {
        // sshd's privilege separation directory; a system service would make it.
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
    let host_key = dir.join("host_key");
    let key = dir.join("id_ed25519");
    keygen(&host_key);
    keygen(&key);
    let authorized = dir.join("authorized_keys");
    std::fs::copy(dir.join("id_ed25519.pub"), &authorized).unwrap();
    let port = free_port();
    let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    let known_hosts = dir.join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{port} {}", host_pub.trim()),
    )
    .unwrap();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPermitRootLogin prohibit-password\nPidFile {}\n",
            host_key.display(),
            authorized.display(),
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "sshd did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd {
        child,
        port,
        user,
        key,
        known_hosts,
    }
}

fn node_yaml(name: &str, server: bool) -> String {
    let role = if server {
        "\n    node-role.kubernetes.io/control-plane: \"true\""
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    kubernetes.io/hostname: {name}{role}\n\
         status:\n  addresses:\n    - {{type: InternalIP, address: 127.0.0.1}}\n  \
         conditions:\n    - {{type: Ready, status: \"True\", reason: KubeletReady}}\n  \
         nodeInfo: {{kubeletVersion: {FROM}, architecture: amd64}}\n---\n"
    )
}

fn pod_yaml(name: &str, node: &str, owner: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  ownerReferences:\n    - {{apiVersion: apps/v1, kind: {owner}, name: {name}-owner, uid: u-{name}, controller: true}}\n\
         spec:\n  nodeName: {node}\n  containers: [{{name: c, image: busybox}}]\nstatus:\n  phase: Running\n---\n"
    )
}

/// Two nodes (a server and an agent), a ReplicaSet pod on the server and a
/// DaemonSet pod on each.
fn cluster(dir: &Path) -> Sim {
    let fx = dir.join("fixture");
    std::fs::create_dir_all(&fx).unwrap();
    let mut objects = node_yaml("server-1", true) + &node_yaml("agent-1", false);
    objects += &pod_yaml("web", "server-1", "ReplicaSet");
    objects += &pod_yaml("svclb-server", "server-1", "DaemonSet");
    objects += &pod_yaml("svclb-agent", "agent-1", "DaemonSet");
    std::fs::write(fx.join("nodes.yaml"), objects).unwrap();
    Sim::start(&fx, None)
}

/// What the tests need around apply-update.
struct World {
    tmp: tempfile::TempDir,
    sim: Sim,
    sshd: Sshd,
    upstream: Option<SimUpstream>,
    runtime: tokio::runtime::Runtime,
}

impl World {
    fn new() -> World {
        World::with_fixture(sim_upstream::workspace_fixture())
    }

    fn with_fixture(fixture: PathBuf) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let upstream = runtime
            .block_on(SimUpstream::start(SimOptions::new(fixture)))
            .unwrap();
        let sim = cluster(tmp.path());
        let sshd = sshd(tmp.path());
        // Each node's binary, at the old version.
        for n in ["server-1", "agent-1"] {
            let d = tmp.path().join("nodes").join(n);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(asset(FROM, "k3s"), d.join("k3s")).unwrap();
        }
        // The k3s service: started again, it registers at its binary's version.
        std::fs::write(
            tmp.path().join("restart.sh"),
            format!(
                "#!/bin/sh\nset -e\nv=$(\"$2\" --version | sed -n 's/^k3s version \\([^ ]*\\).*/\\1/p')\n\
                 {kubectl} --kubeconfig {kc} patch node \"$1\" --subresource=status --type=merge \
                 -p \"{{\\\"status\\\":{{\\\"nodeInfo\\\":{{\\\"kubeletVersion\\\":\\\"$v\\\"}}}}}}\" >/dev/null\n",
                kubectl = which("kubectl"),
                kc = sim.kubeconfig().display()
            ),
        )
        .unwrap();
        // A k3s that never comes back.
        std::fs::write(tmp.path().join("broken.sh"), "#!/bin/sh\nexit 0\n").unwrap();
        for s in ["restart.sh", "broken.sh"] {
            chmod_x(&tmp.path().join(s));
        }
        World {
            tmp,
            sim,
            sshd,
            upstream: Some(upstream),
            runtime,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn binary(&self, node: &str) -> PathBuf {
        self.dir().join("nodes").join(node).join("k3s")
    }

    /// upkeep.yaml: the sim-upstream, the sshd, and per node its binary and restart.
    fn config(&self, agent_restart: &str, known_hosts: &Path) -> PathBuf {
        let mut nodes = String::new();
        for (n, restart) in [("server-1", "restart.sh"), ("agent-1", agent_restart)] {
            nodes.push_str(&format!(
                "      {n}:\n        binaryPath: {bin}\n        restart: {restart} {n} {bin}\n",
                bin = self.binary(n).display(),
                restart = self.dir().join(restart).display()
            ));
        }
        let p = self.dir().join("upkeep.yaml");
        std::fs::write(
            &p,
            format!(
                "upstreams:\n  github:\n    url: {base}\nhttp:\n  retries: 0\ncache:\n  dir: {cache}\n\
                 k3s:\n  method: ssh\n  ssh:\n    user: {user}\n    port: {port}\n    sudo: false\n\
                 \x20   identityFile: {key}\n    knownHostsFile: {kh}\n    drainTimeout: 20s\n    nodeTimeout: 4s\n\
                 \x20   nodes:\n{nodes}",
                base = self.upstream.as_ref().unwrap().base_url(),
                user = self.sshd.user,
                port = self.sshd.port,
                key = self.sshd.key.display(),
                kh = known_hosts.display(),
                cache = self.dir().join("cache").display(),
            ),
        )
        .unwrap();
        p
    }

    fn apply(&self, cfg: &Path, extra: &[&str]) -> (i32, Value, String) {
        let out = tool(BIN, self.dir())
            .arg("--config")
            .arg(cfg)
            .arg("--kubeconfig")
            .arg(self.sim.kubeconfig())
            .args(["--report", "-", "--component", "k3s", "--to", TO])
            .args(extra)
            .stdin(std::fs::File::open(report(self.dir())).unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let doc = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        (out.status.code().unwrap(), doc, stderr)
    }

    fn node(&self, name: &str) -> Value {
        self.sim.json(&["get", "node", name])
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(up) = self.upstream.take() {
            self.runtime.block_on(up.shutdown());
        }
    }
}

fn which(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn asset(tag: &str, name: &str) -> PathBuf {
    sim_upstream::workspace_fixture().join(format!("github/k3s-io/k3s/assets/{tag}/{name}"))
}

fn report(dir: &Path) -> PathBuf {
    let p = dir.join("report.json");
    let doc = serde_json::json!({
        "apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
        "generatedAt": "2026-11-28T04:00:00Z",
        "summary": {"components": 1, "withUpdates": 1, "patch": 1, "minor": 0, "major": 0,
                    "security": 0, "breaking": 0, "blocked": 0, "errors": 0},
        "components": [{
            "apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
            "component": {"kind": "k3s", "name": "k3s"},
            "current": {"version": FROM},
            "candidates": [{"version": TO, "update": "patch", "allowed": true}],
            "checkedAt": "2026-11-28T04:00:00Z"
        }]
    });
    std::fs::write(&p, doc.to_string()).unwrap();
    p
}

fn version(node: &Value) -> &str {
    node["status"]["nodeInfo"]["kubeletVersion"]
        .as_str()
        .unwrap()
}

fn cordoned(node: &Value) -> bool {
    node["spec"]["unschedulable"] == true
}

fn pod_exists(sim: &Sim, name: &str) -> bool {
    sim.kubectl_out(&["get", "pod", "-n", "default", name])
        .status
        .success()
}

#[test]
fn k3s_is_rolled_over_ssh_servers_first_drained_and_verified() {
    let w = World::new();
    let cfg = w.config("restart.sh", &w.sshd.known_hosts);

    // A dry run names the nodes in order and changes nothing.
    let (code, doc, stderr) = w.apply(&cfg, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["mode"], "ssh");
    assert_eq!(doc["dryRun"], true);
    let names: Vec<&str> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["server-1", "agent-1"]);
    assert!(stderr.contains("would roll server-1"), "{stderr}");
    assert_eq!(
        std::fs::read(w.binary("server-1")).unwrap(),
        std::fs::read(asset(FROM, "k3s")).unwrap()
    );
    assert!(!cordoned(&w.node("server-1")));

    let (code, doc, stderr) = w.apply(&cfg, &[]);
    assert_eq!(code, 0, "{stderr}\n{doc}");
    assert_eq!(doc["status"], "applied", "{doc}");
    for n in ["server-1", "agent-1"] {
        let node = w.node(n);
        assert_eq!(version(&node), TO, "{n}");
        assert!(!cordoned(&node), "{n} left cordoned");
        assert!(
            node["metadata"]["annotations"]["upkeep.dev/cordoned-by"].is_null(),
            "{node}"
        );
        // The new binary in place, the old one kept beside it.
        assert_eq!(
            std::fs::read(w.binary(n)).unwrap(),
            std::fs::read(asset(TO, "k3s")).unwrap()
        );
        let prev = w.binary(n).with_file_name("k3s.upkeep-prev");
        assert_eq!(
            std::fs::read(prev).unwrap(),
            std::fs::read(asset(FROM, "k3s")).unwrap()
        );
    }
    // Servers first, each node back before the next starts.
    let server_back = stderr.find("server-1 Ready at").unwrap();
    let agent_cordon = stderr.find("agent-1: cordon").unwrap();
    assert!(server_back < agent_cordon, "{stderr}");
    // The drain moved the ReplicaSet pod and left the DaemonSet pods.
    assert!(!pod_exists(&w.sim, "web"));
    assert!(pod_exists(&w.sim, "svclb-server"));
    assert!(pod_exists(&w.sim, "svclb-agent"));

    // Again: every node is at the version, nothing to do.
    let (code, doc, _) = w.apply(&cfg, &[]);
    assert_eq!(code, 0);
    assert_eq!(doc["status"], "no-op", "{doc}");
}

#[test]
fn a_node_that_does_not_come_back_stops_the_roll_cordoned() {
    let w = World::new();
    let cfg = w.config("broken.sh", &w.sshd.known_hosts);
    let (code, doc, stderr) = w.apply(&cfg, &[]);
    assert_eq!(code, 1, "{stderr}\n{doc}");
    assert_eq!(doc["status"], "failed");
    let msg = doc["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("node agent-1")
            && msg.contains("did not come back")
            && msg.contains("left cordoned"),
        "{msg}"
    );
    let server = w.node("server-1");
    assert_eq!(version(&server), TO);
    assert!(!cordoned(&server));
    let agent = w.node("agent-1");
    assert_eq!(version(&agent), FROM);
    assert!(cordoned(&agent));
}

#[test]
fn nothing_is_touched_when_a_node_or_the_download_cannot_be_trusted() {
    // An unknown host key: refused before anything is cordoned (exit 3).
    let w = World::new();
    let empty = w.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let cfg = w.config("restart.sh", &empty);
    let (code, _, stderr) = w.apply(&cfg, &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot be upgraded over SSH") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    for n in ["server-1", "agent-1"] {
        assert!(!cordoned(&w.node(n)));
        assert_eq!(
            std::fs::read(w.binary(n)).unwrap(),
            std::fs::read(asset(FROM, "k3s")).unwrap()
        );
    }
    drop(w);

    // A binary that does not match the release's checksums: exit 2.
    let fx = tempfile::tempdir().unwrap();
    let k3s = fx.path().join("github/k3s-io/k3s");
    copy_dir(
        &sim_upstream::workspace_fixture().join("github/k3s-io/k3s"),
        &k3s,
    );
    std::fs::write(
        k3s.join(format!("assets/{TO}/k3s")),
        "#!/bin/sh\necho 'k3s version v1.31.10+k3s1 (not the published binary)'\n",
    )
    .unwrap();
    let w = World::with_fixture(fx.path().to_path_buf());
    let cfg = w.config("restart.sh", &w.sshd.known_hosts);
    let (code, _, stderr) = w.apply(&cfg, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("sha256"), "{stderr}");
    for n in ["server-1", "agent-1"] {
        assert!(!cordoned(&w.node(n)));
        assert_eq!(version(&w.node(n)), FROM);
    }
    assert!(pod_exists(&w.sim, "web"));
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

#[test]
fn bad_ssh_settings_name_their_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (yaml, key) in [
        (
            "k3s:\n  method: ssh\n  ssh:\n    binaryPath: k3s\n",
            "k3s.ssh.binaryPath",
        ),
        (
            "k3s:\n  method: ssh\n  ssh:\n    nodeTimeout: soon\n",
            "k3s.ssh.nodeTimeout",
        ),
        (
            "k3s:\n  method: ssh\n  ssh:\n    port: 22\n    hots: {}\n",
            "hots",
        ),
        ("k3s:\n  method: scp\n", "scp"),
    ] {
        let cfg = tmp.path().join("upkeep.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let out = tool(BIN, tmp.path())
            .arg("--config")
            .arg(&cfg)
            .args(["--report", "-", "--component", "k3s", "--to", TO])
            .stdin(std::fs::File::open(report(tmp.path())).unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {err}");
        assert!(
            err.contains(key) && err.lines().count() == 1,
            "{yaml}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
}
