//! The command line: ready line, exit codes, bad input, signals.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Sim;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sim-upstream"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sim-upstream")
}

fn one_line_error(out: &std::process::Output) -> String {
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn ready_line_names_every_endpoint() {
    let sim = Sim::start(&[]);
    let base = format!("http://{}", sim.addr);
    assert_eq!(sim.ready["github"], base);
    assert_eq!(sim.ready["channels"], format!("{base}/v1-release/channels"));
    assert_eq!(sim.ready["helm"], format!("{base}/helm/"));
    assert_ne!(sim.addr.port(), 0);
}

#[test]
fn bad_fixture_names_the_file_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("github/o/r");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("releases.json"),
        "[{\"id\": 1, \"tag_name\": \"v1\"",
    )
    .unwrap();
    let out = run(&["serve", "--fixture", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_line_error(&out);
    assert!(
        err.contains("github/o/r/releases.json") && err.contains("invalid JSON"),
        "{err}"
    );

    std::fs::write(
        repo.join("releases.json"),
        "[{\"id\": 1, \"tag_name\": \"v1\", \"draft\": \"no\"}]",
    )
    .unwrap();
    let out = run(&["serve", "--fixture", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_line_error(&out);
    assert!(
        err.contains("release [0]") && err.contains("draft"),
        "{err}"
    );

    let out = run(&["serve", "--fixture", "/nonexistent/fixture"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("/nonexistent/fixture"));
}

#[test]
fn bad_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sim.yaml");
    std::fs::write(&cfg, "faults:\n- path: /x\n  kind: error\n  rate: 3\n").unwrap();
    let fixture = common::fixture_dir();
    let out = run(&[
        "serve",
        "--fixture",
        fixture.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_line_error(&out);
    assert!(
        err.contains("sim.yaml") && err.contains("faults[0]") && err.contains("rate"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["serve"]).status.code(), Some(2));
    assert_eq!(
        run(&["serve", "--fixture", ".", "--listen", "not-an-address"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(&["bogus"]).status.code(), Some(2));
}

#[test]
fn bind_failure_exits_3() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let fixture = common::fixture_dir();
    let out = run(&[
        "serve",
        "--fixture",
        fixture.to_str().unwrap(),
        "--listen",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(one_line_error(&out).contains(&addr));
}

#[test]
fn sigterm_and_sigint_stop_cleanly() {
    for sig in ["-TERM", "-INT"] {
        let mut sim = Sim::start(&[]);
        assert_eq!(sim.get("/v1-release/channels").status, 200);
        let pid = sim.child.id().to_string();
        let killed = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(killed.success());
        let start = Instant::now();
        let status = loop {
            if let Some(s) = sim.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "still running after {sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "{sig}");
    }
}

#[test]
fn sigterm_stops_even_with_a_stalled_response_in_flight() {
    let mut sim = Sim::start(&[]);
    sim.post_json(
        "/_admin/faults",
        &serde_json::json!({"faults": [{"prefix": "/v1-release/", "kind": "stall", "delayMs": 600000}]}),
    );
    let addr = sim.addr;
    let client = std::thread::spawn(move || {
        common::request_raw(
            addr,
            "GET",
            "/v1-release/channels",
            &[],
            None,
            Duration::from_secs(30),
        )
    });
    // Wait until the stalled request has been answered with its headers.
    let start = Instant::now();
    while sim.admin_requests().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "request never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = sim.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(s) = sim.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stalled response blocked shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let raw = client.join().unwrap().unwrap();
    let partial = common::parse(&raw.bytes).expect("headers were sent before the stall");
    let declared: usize = partial.header("content-length").unwrap().parse().unwrap();
    assert!(
        partial.body.len() < declared,
        "the stalled body was never completed"
    );
}
