//! Shared helpers: start the real `sim-cluster` binary, drive the real `/usr/bin/kubectl`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const KUBECTL: &str = "/usr/bin/kubectl";
/// kubectl here is a dispatcher that picks the client minor matching the server's; serving
/// 1.32 makes it run kubectl 1.32.
pub const V132: &str = "v1.32.5+k3s1";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("testdata/sim-cluster").join(name)
}

/// `../shared/realdata` next to the repository, or None (with a message) when absent.
pub fn realdata() -> Option<PathBuf> {
    let p = repo_root().join("../shared/realdata");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} is absent; this test needs the real CRDs from it",
            p.display()
        );
        None
    }
}

pub struct Server {
    pub child: Child,
    pub address: String,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn start(fixture: &Path, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sim-cluster"))
            .arg("serve")
            .arg("--fixture")
            .arg(fixture)
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("ready line {line:?} is not JSON: {e}"));
        assert_eq!(ready["kubeconfig"], kubeconfig.display().to_string());
        Server {
            child,
            address: ready["address"].as_str().unwrap().to_string(),
            kubeconfig,
            dir,
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl and returns stdout, failing the test with kubectl's stderr otherwise.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(st.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn names(list: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// One HTTP/1.1 request on a fresh connection; None when the server closed it without answering.
pub struct RawResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

pub fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<RawResponse> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    // A reset connection is "no answer" too.
    let _ = s.read_to_end(&mut buf);
    if buf.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Some(RawResponse {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    })
}

/// Polls `f` until it returns Some, or panics with `what` after a generous deadline.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs the sim-cluster binary to completion (for start-up failures).
pub fn run_binary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim-cluster"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}
