//! `upkeep notify`: `test` against a real HTTP receiver (exit 0; 3 naming a
//! channel that failed; 2 naming the key of a bad `notify` section), and
//! `runbook` naming the contacts of upkeep.yaml.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

/// scripts/testservers/http-recorder.py on a free loopback port.
struct Receiver {
    child: Child,
    port: u16,
    out: std::path::PathBuf,
}

impl Receiver {
    fn start(dir: &Path) -> Receiver {
        let out = dir.join("requests.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/testservers/http-recorder.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        Receiver { child, port, out }
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn upkeep(dir: &Path, config: &str, args: &[&str]) -> Output {
    let path = dir.join("upkeep.yaml");
    std::fs::write(
        &path,
        format!("stateDir: {}\n{config}", dir.join("state").display()),
    )
    .unwrap();
    Command::new(BIN)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("HOOK_TOKEN", "cli-hook-token")
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn notify_test_reaches_every_channel_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Receiver::start(dir.path());
    let config = format!(
        "notify:\n  channels:\n    hook: {{type: webhook, url: \"http://127.0.0.1:{p}/hook\", tokenEnv: HOOK_TOKEN}}\n    phone: {{type: ntfy, url: \"http://127.0.0.1:{p}/alerts\", events: [rolled-back]}}\n",
        p = rec.port
    );
    let o = upkeep(dir.path(), &config, &["notify", "test"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("hook (webhook, http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("phone (ntfy, http://127.0.0.1:"),
        "{stdout}"
    );
    let reqs = rec.requests();
    assert_eq!(
        reqs.len(),
        2,
        "the test message goes to every channel: {reqs:#?}"
    );
    let hook = reqs.iter().find(|r| r["path"] == "/hook").unwrap();
    assert_eq!(hook["headers"]["authorization"], "Bearer cli-hook-token");
    let b: serde_json::Value = serde_json::from_str(hook["body"].as_str().unwrap()).unwrap();
    assert_eq!(b["event"], "test");
    let ntfy = reqs.iter().find(|r| r["path"] == "/alerts").unwrap();
    assert!(
        ntfy["headers"]["title"]
            .as_str()
            .unwrap()
            .starts_with("upkeep: test notification from ")
    );
    assert!(!stderr.contains("cli-hook-token"), "{stderr}");
}

#[test]
fn notify_test_exits_3_naming_the_channel_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Receiver::start(dir.path());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "notify:\n  timeout: 2s\n  retries: 1\n  channels:\n    good: {{type: webhook, url: \"http://127.0.0.1:{p}/hook\"}}\n    gone: {{type: discord, url: \"http://127.0.0.1:{closed}/api/webhooks/1/discordsecret5\"}}\n",
        p = rec.port
    );
    let o = upkeep(dir.path(), &config, &["notify", "test"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("good (webhook, http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "gone (discord, http://127.0.0.1:{closed}): FAILED after 2 attempt(s)"
        )),
        "{stdout}"
    );
    assert!(stderr.contains("failed on gone"), "{stderr}");
    assert!(!format!("{stdout}{stderr}").contains("discordsecret5"));
    assert_eq!(rec.requests().len(), 1);
}

#[test]
fn a_bad_notify_section_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (config, key) in [
        (
            "notify:\n  templates:\n    run-started: {title: \"{{ run.idd }}\"}\n  channels:\n    h: {type: webhook, url: \"http://127.0.0.1:9/\"}\n",
            "key `notify.templates.run-started.title`",
        ),
        (
            "notify:\n  channels:\n    m: {type: matrix, url: \"http://127.0.0.1:9\", room: \"!r:example.org\", tokenEnv: NOT_SET_ANYWHERE}\n",
            "key `notify.channels.m.tokenEnv`",
        ),
        (
            "notify:\n  channels:\n    g: {type: gotify, url: \"http://127.0.0.1:9\"}\n",
            "key `notify.channels.g.tokenFile`",
        ),
        (
            "notify:\n  channels:\n    w: {type: webhook, url: \"http://127.0.0.1:9/\", colour: red}\n",
            "notify.channels.w",
        ),
    ] {
        let o = upkeep(dir.path(), config, &["notify", "test"]);
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{config}\n{stdout}\n{stderr}");
        assert!(stderr.contains(key), "{key} not named: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn the_runbook_names_the_contacts() {
    let dir = tempfile::tempdir().unwrap();
    let config = "notify:\n  contacts:\n    - {name: Alice, role: primary, phone: \"+49 170 1234567\"}\n    - {name: Bob, email: bob@home.lan}\n  runbook: \"The break-glass kubeconfig is in the safe.\"\n";
    let o = upkeep(dir.path(), config, &["notify", "runbook"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("- Alice (primary), phone +49 170 1234567\n"),
        "{stdout}"
    );
    assert!(stdout.contains("- Bob, email bob@home.lan\n"), "{stdout}");
    assert!(
        stdout.contains("The break-glass kubeconfig is in the safe."),
        "{stdout}"
    );
    let o = upkeep(dir.path(), config, &["notify", "runbook", "no-such-run"]);
    assert_eq!(o.status.code(), Some(2));
}
