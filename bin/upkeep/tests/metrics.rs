//! `upkeep metrics` as a user runs it: the built binary over a state
//! directory of runs and an UpdateReport, printing, writing node_exporter's
//! textfile, and pushing to a real Pushgateway that a real Prometheus
//! scrapes (both from Debian's `prometheus` and `prometheus-pushgateway`,
//! started here on loopback ports).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

fn upkeep(home: &Path, config: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .arg("--config")
        .arg(config);
    c
}

fn write(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn run_record(id: &str, status: &str, start: &str, end: &str, step_status: &str) -> Value {
    json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "RunRecord", "runId": id,
           "startedAt": start, "finishedAt": end, "status": status, "actor": "me",
           "steps": [{"index": 1, "component": {"kind": "chart", "name": "podinfo", "namespace": "podinfo"},
                      "from": "6.5.0", "to": "6.6.0", "status": step_status}]})
}

/// A state directory with a completed run and a rolled-back one, an
/// UpdateReport with two components, and upkeep.yaml (`extra` appended).
fn setup(dir: &Path, extra: &str) -> (PathBuf, PathBuf) {
    let state = dir.join("state");
    write(
        &state.join("runs/20261101-030000/run.json"),
        &run_record(
            "20261101-030000",
            "completed",
            "2026-11-01T03:00:00Z",
            "2026-11-01T03:20:00Z",
            "completed",
        ),
    );
    write(
        &state.join("runs/20261108-030000/run.json"),
        &run_record(
            "20261108-030000",
            "rolled-back",
            "2026-11-08T03:00:00Z",
            "2026-11-08T03:30:00Z",
            "rolled-back",
        ),
    );
    let report = dir.join("report.json");
    write(
        &report,
        &json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
                "generatedAt": "2026-11-28T04:00:00Z",
                "summary": {"components": 2, "withUpdates": 1, "patch": 0, "minor": 1, "major": 0,
                            "security": 1, "breaking": 0, "blocked": 0, "errors": 0},
                "components": [
                  {"apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
                   "component": {"kind": "chart", "name": "ingress-nginx", "namespace": "networking"},
                   "current": {"version": "4.12.0"}, "latest": "4.13.1",
                   "candidates": [{"version": "4.13.1", "published": "2026-10-02T09:12:00Z", "update": "minor",
                                   "security": {"ids": ["CVE-2026-1234"]}}],
                   "checkedAt": "2026-11-28T04:00:00Z"},
                  {"apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
                   "component": {"kind": "chart", "name": "echo-server", "namespace": "default"},
                   "current": {"version": "0.5.0"}, "latest": "0.5.0", "candidates": [],
                   "checkedAt": "2026-11-28T04:00:00Z"}]}),
    );
    let config = dir.join("upkeep.yaml");
    std::fs::write(&config, format!("stateDir: {}\n{extra}", state.display())).unwrap();
    (config, report)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn prints_writes_the_textfile_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (config, report) = setup(dir.path(), "");

    // No target: the text on stdout.
    let o = upkeep(dir.path(), &config)
        .args(["metrics", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let printed = stdout(&o);
    for line in [
        "# TYPE upkeep_runs_total counter",
        "upkeep_runs_total{status=\"completed\"} 1",
        "upkeep_runs_total{status=\"rolled-back\"} 1",
        "upkeep_rollbacks_total 1",
        "upkeep_last_run_status{status=\"rolled-back\"} 1",
        "upkeep_last_successful_run_timestamp_seconds 1793503200",
        "upkeep_updates_available{component=\"networking/ingress-nginx\",kind=\"chart\",type=\"minor\"} 1",
        "upkeep_security_updates_pending{component=\"networking/ingress-nginx\",kind=\"chart\"} 1",
        "upkeep_security_updates_pending{component=\"default/echo-server\",kind=\"chart\"} 0",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line:?} missing:\n{printed}"
        );
    }

    // --textfile: the same text in the file, nothing on stdout.
    let prom = dir.path().join("textfile/upkeep.prom");
    let o = upkeep(dir.path(), &config)
        .args(["metrics", "--report"])
        .arg(&report)
        .arg("--textfile")
        .arg(&prom)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(std::fs::read_to_string(&prom).unwrap(), printed);

    // Without --report: the report `upkeep scan` keeps in the state dir
    // (none yet), so only the run metrics.
    let o = upkeep(dir.path(), &config).arg("metrics").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("upkeep_runs_total{status=\"completed\"} 1"));
    assert!(!stdout(&o).contains("upkeep_updates_available"));

    // Bad input: exit 2, one line naming what was wrong, nothing written.
    let dead = format!("http://127.0.0.1:{}", closed_port());
    for (args, says) in [
        (
            vec!["--textfile", "upkeep.txt"],
            "--textfile: upkeep.txt must end in .prom",
        ),
        (
            vec!["--pushgateway", "ftp://gw"],
            "--pushgateway: ftp is not http or https",
        ),
        (
            vec!["--pushgateway", "http://u:pw@gw:9091"],
            "must not carry credentials",
        ),
        (
            vec!["--pushgateway", &dead, "--job", "a/b"],
            "--pushgateway: job \"a/b\"",
        ),
        (vec!["--report", "missing.json"], "missing.json"),
    ] {
        let o = upkeep(dir.path(), &config)
            .current_dir(dir.path())
            .arg("metrics")
            .args(&args)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert_eq!(stdout(&o), "");
    }
    assert!(!dir.path().join("upkeep.txt").exists());

    // A Pushgateway that is not there: exit 3, within the timeout.
    let t = Instant::now();
    let o = upkeep(dir.path(), &config)
        .args(["metrics", "--pushgateway", &dead])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot reach it"), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_metrics_section_of_upkeep_yaml_is_used_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("collector/upkeep.prom");
    let (config, _) = setup(
        dir.path(),
        &format!("metrics:\n  textfile: {}\n", prom.display()),
    );
    let o = upkeep(dir.path(), &config).arg("metrics").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "written to the configured textfile instead");
    assert!(
        std::fs::read_to_string(&prom)
            .unwrap()
            .contains("upkeep_rollbacks_total 1")
    );

    let (config, _) = setup(
        dir.path(),
        "metrics:\n  pushgateway:\n    url: pushgateway.monitoring:9091\n",
    );
    let o = upkeep(dir.path(), &config).arg("metrics").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("key `metrics.pushgateway`"),
        "{}",
        stderr(&o)
    );
    let (config, _) = setup(dir.path(), "metrics:\n  textfile: /tmp/upkeep.txt\n");
    let o = upkeep(dir.path(), &config).arg("metrics").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("key `metrics.textfile`"),
        "{}",
        stderr(&o)
    );
}

/// A server process killed when the test ends, pass or fail.
struct Server {
    child: Child,
    name: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET over plain HTTP/1.0 (the body ends with the connection).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Starts `cmd` (its listen address on a free port) until it answers
/// `/-/ready`; a port taken in between is retried on another.
fn start(name: &'static str, dir: &Path, cmd: impl Fn(u16) -> Command) -> (Server, u16) {
    for _ in 0..3 {
        let port = closed_port();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let mut c = cmd(port);
        c.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e} (run scripts/install-test-deps.sh)"));
        let mut server = Server { child, name };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.child.try_wait() {
                break;
            }
            if let Some((200, _)) = get(port, "/-/ready") {
                return (server, port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = server.child.kill();
        eprintln!(
            "{}: not ready on port {port}:\n{}",
            server.name,
            std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
        );
    }
    panic!("{name} did not start");
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query: each series' labels and value.
fn query(port: u16, q: &str) -> Vec<(Value, f64)> {
    let Some((200, body)) = get(port, &format!("/api/v1/query?query={}", encode(q))) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"].clone(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Waits (bounded) until `q` has exactly `want` as its one value.
fn wait_for(port: u16, q: &str, want: f64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last = query(port, q);
        if let [(labels, v)] = last.as_slice()
            && *v == want
        {
            return labels.clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{q}: wanted {want}, Prometheus has {last:?}");
}

#[test]
fn a_real_pushgateway_receives_them_and_a_real_prometheus_scrapes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (config, report) = setup(dir.path(), "");
    let (_gw, gw_port) = start("pushgateway", dir.path(), |port| {
        let mut c = Command::new("prometheus-pushgateway");
        c.arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--persistence.file={}",
                dir.path().join("pushgateway.db").display()
            ));
        c
    });
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{gw_port}']\n"
        ),
    )
    .unwrap();
    let (_prom, prom_port) = start("prometheus", dir.path(), |port| {
        let mut c = Command::new("prometheus");
        c.arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        c
    });

    let push = || {
        let o = upkeep(dir.path(), &config)
            .args(["metrics", "--report"])
            .arg(&report)
            .args([
                "--pushgateway",
                &format!("http://127.0.0.1:{gw_port}"),
                "--job",
                "upkeep-test",
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), "");
    };
    push();

    // Scraped with honor_labels: the job is the one pushed, not "pushgateway".
    let labels = wait_for(
        prom_port,
        "upkeep_updates_available{component=\"networking/ingress-nginx\",type=\"minor\"}",
        1.0,
    );
    assert_eq!(labels["job"], "upkeep-test", "{labels}");
    assert_eq!(labels["kind"], "chart");
    for (q, want) in [
        (
            "upkeep_updates_available{component=\"networking/ingress-nginx\",type=\"major\"}",
            0.0,
        ),
        (
            "upkeep_security_updates_pending{component=\"networking/ingress-nginx\"}",
            1.0,
        ),
        (
            "upkeep_security_updates_pending{component=\"default/echo-server\"}",
            0.0,
        ),
        (
            "upkeep_security_update_published_timestamp_seconds",
            1790932320.0,
        ),
        ("upkeep_report_timestamp_seconds", 1795838400.0),
        ("upkeep_runs_total{status=\"completed\"}", 1.0),
        ("upkeep_runs_total{status=\"rolled-back\"}", 1.0),
        ("upkeep_runs_total{status=\"failed\"}", 0.0),
        ("upkeep_rollbacks_total", 1.0),
        ("upkeep_last_successful_run_timestamp_seconds", 1793503200.0),
        ("upkeep_last_run_status{status=\"rolled-back\"}", 1.0),
        ("upkeep_last_run_duration_seconds", 1800.0),
        ("upkeep_run_duration_seconds_count", 2.0),
        ("upkeep_run_duration_seconds_sum", 3000.0),
        ("upkeep_run_duration_seconds_bucket{le=\"1800\"}", 2.0),
        ("upkeep_run_duration_seconds_bucket{le=\"600\"}", 0.0),
    ] {
        let labels = wait_for(prom_port, q, want);
        assert_eq!(labels["job"], "upkeep-test", "{q}: {labels}");
    }

    // A new run, pushed again: the group is replaced, and Prometheus sees
    // the new figures.
    write(
        &dir.path().join("state/runs/20261115-030000/run.json"),
        &run_record(
            "20261115-030000",
            "completed",
            "2026-11-15T03:00:00Z",
            "2026-11-15T03:10:00Z",
            "completed",
        ),
    );
    push();
    wait_for(prom_port, "upkeep_runs_total{status=\"completed\"}", 2.0);
    wait_for(
        prom_port,
        "upkeep_last_run_status{status=\"completed\"}",
        1.0,
    );
    wait_for(
        prom_port,
        "upkeep_last_run_status{status=\"rolled-back\"}",
        0.0,
    );
    wait_for(
        prom_port,
        "upkeep_last_successful_run_timestamp_seconds",
        1794712200.0,
    );
}
