//! Real servers for the notification tests, started here on free loopback
//! ports: the HTTP receiver and the SMTP server of scripts/testservers
//! (Python; aiosmtpd from Debian's python3-aiosmtpd, which
//! scripts/install-test-deps.sh installs). Each stops when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use upkeep_config::{Overrides, Settings};
use upkeep_contract::RunRecord;
use upkeep_notify::NotifyConfig;

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/testservers")
        .join(name)
}

pub struct Server {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

impl Server {
    fn start(script_name: &str, out: PathBuf, extra: &[&Path]) -> Server {
        let mut child = Command::new("python3")
            .arg(script(script_name))
            .arg(&out)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 (scripts/install-test-deps.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("{script_name} did not start (is python3-aiosmtpd installed? scripts/install-test-deps.sh): {line:?}")
            });
        Server { child, port, out }
    }

    /// The HTTP receiver: every request as a JSON line.
    pub fn http(dir: &Path) -> Server {
        Server::start("http-recorder.py", dir.join("http-requests.jsonl"), &[])
    }

    /// aiosmtpd with STARTTLS required, presenting `cert` (PEM chain) and `key`.
    pub fn smtp(dir: &Path, cert: &Path, key: &Path) -> Server {
        Server::start("smtp-recorder.py", dir.join("mails.jsonl"), &[cert, key])
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What it received so far.
    pub fn records(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.out) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Settings from an upkeep.yaml holding `yaml` (with `stateDir` set to
/// `dir/state`), as the binaries read it.
pub fn settings(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> Settings {
    let path = dir.join("upkeep.yaml");
    std::fs::write(
        &path,
        format!("stateDir: {}\n{yaml}", dir.join("state").display()),
    )
    .unwrap();
    let home = dir.display().to_string();
    let env_fn = |name: &str| -> Option<String> {
        if name == "HOME" {
            return Some(home.clone());
        }
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let (path, file) = upkeep_config::load(Some(&path), &env_fn).unwrap();
    upkeep_config::resolve(path, &file, &Overrides::default(), &env_fn).unwrap()
}

pub fn notify_config(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> NotifyConfig {
    let s = settings(dir, yaml, env);
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env_fn = move |name: &str| -> Option<String> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    };
    NotifyConfig::load(&s, &env_fn).unwrap_or_else(|e| panic!("{e}"))
}

/// A run record of two steps: the first with `s0`, the second with `s1`.
pub fn record(id: &str, status: &str, s0: &str, s1: &str) -> RunRecord {
    let finished = if status == "running" {
        Value::Null
    } else {
        Value::String("2026-11-28T02:20:00Z".into())
    };
    let mut v = serde_json::json!({
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "RunRecord",
        "runId": id,
        "startedAt": "2026-11-28T02:00:00Z",
        "finishedAt": finished,
        "status": status,
        "actor": "alice",
        "steps": [
            {"index": 0, "component": {"kind": "longhorn", "name": "longhorn", "namespace": "longhorn-system"},
             "from": "1.9.1", "to": "1.9.2", "status": s0, "restorePoint": "/backups/rp-0",
             "commitAfter": "89abcdef0123456789abcdef0123456789abcdef"},
            {"index": 1, "component": {"kind": "chart", "name": "podinfo", "namespace": "apps"},
             "from": "6.7.0", "to": "6.8.0", "status": s1, "restorePoint": "/backups/rp-1",
             "error": "1 check(s) fail since the update: apps/podinfo has 0 of 1 replicas ready"}
        ],
        "errors": []
    });
    if finished.is_null() {
        v.as_object_mut().unwrap().remove("finishedAt");
    }
    serde_json::from_value(v).unwrap()
}

/// The transitions of a run whose second step fails validation and is rolled back.
pub fn rolled_back_run(id: &str) -> Vec<RunRecord> {
    vec![
        record(id, "running", "pending", "pending"),
        record(id, "running", "applying", "pending"),
        record(id, "running", "validating-after", "pending"),
        record(id, "running", "completed", "pending"),
        record(id, "running", "completed", "applying"),
        record(id, "running", "completed", "validating-after"),
        record(id, "running", "completed", "rolling-back"),
        record(id, "running", "completed", "rolled-back"),
        record(id, "rolled-back", "completed", "rolled-back"),
    ]
}
