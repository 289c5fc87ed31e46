//! `--config SIM.yaml` validation and fault injection (from SIM.yaml and `/_admin/faults`),
//! judged over real connections and by the real kubectl.

mod common;

use std::time::{Duration, Instant};

use common::{Server, fixture, http, run_binary, stderr};
use serde_json::Value;

fn with_config(yaml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("SIM.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

#[test]
fn bad_config_is_one_line_naming_file_and_key_with_exit_2() {
    let cases = [
        (
            "controllers: {flux: {interval: often}}",
            "controllers.flux.interval",
        ),
        ("controllers: {longhorn: {failBackup: [x]}}", "failBackup"),
        (
            "faults: {rules: [{action: error, rate: 1.5}]}",
            "faults.rules[0].rate",
        ),
        (
            "faults: {rules: [{action: throttle, status: 500}]}",
            "faults.rules[0].status",
        ),
        ("controllers: [1, 2]", "invalid type"),
        ("controllers: {flux: {interval: 1s}\n", "SIM.yaml"),
    ];
    for (yaml, want) in cases {
        let (dir, cfg) = with_config(yaml);
        let kc = dir.path().join("kc");
        let out = run_binary(&[
            "serve",
            "--fixture",
            fixture("basic").to_str().unwrap(),
            "--kubeconfig-out",
            kc.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{yaml}: {err}");
        assert!(err.contains(cfg.to_str().unwrap()), "{err}");
        assert!(err.contains(want), "{yaml}: {err} lacks {want}");
        assert!(out.stdout.is_empty(), "no ready line on a bad config");
        assert!(!kc.exists(), "nothing served on a bad config");
    }
    let out = run_binary(&[
        "serve",
        "--fixture",
        fixture("basic").to_str().unwrap(),
        "--kubeconfig-out",
        "/tmp/never-written",
        "--config",
        "/nonexistent/SIM.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/SIM.yaml"));
}

fn list_codes(s: &Server, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| {
            http(&s.address, "GET", "/api/v1/namespaces/apps/configmaps", "")
                .expect("error faults answer")
                .status
        })
        .collect()
}

#[test]
fn seeded_error_rate_gives_the_same_500s_every_run() {
    let (_d, cfg) = with_config(
        r#"
faults:
  seed: 1234
  rules:
    - name: flaky-configmap-lists
      path: /api/v1/namespaces/*/configmaps
      verbs: [list]
      action: error
      rate: 0.5
"#,
    );
    let cfg = cfg.to_str().unwrap();
    let s = Server::start(&fixture("basic"), &["--config", cfg]);
    let first = list_codes(&s, 40);
    // A GET of one object and other paths are not matched.
    for _ in 0..5 {
        let r = http(&s.address, "GET", "/api/v1/namespaces/apps", "").unwrap();
        assert_eq!(r.status, 200);
    }
    let r = loop {
        let r = http(&s.address, "GET", "/api/v1/namespaces/apps/configmaps", "").unwrap();
        if r.status == 500 {
            break r;
        }
    };
    let status: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 500);
    assert_eq!(status["reason"], "InternalError");
    drop(s);
    let s = Server::start(&fixture("basic"), &["--config", cfg]);
    assert_eq!(first, list_codes(&s, 40), "same seed, same sequence");
    let errors = first.iter().filter(|c| **c == 500).count();
    let oks = first.iter().filter(|c| **c == 200).count();
    assert_eq!(errors + oks, 40, "{first:?}");
    assert!((8..=32).contains(&errors), "{errors} of 40 at rate 0.5");
    // kubectl sees a 500 as an error.
    let mut failed = false;
    for _ in 0..20 {
        let out = s.kubectl(&["get", "configmaps", "-n", "apps"]);
        if !out.status.success() {
            assert!(stderr(&out).contains("injected fault"), "{}", stderr(&out));
            failed = true;
            break;
        }
    }
    assert!(failed, "kubectl never met the injected 500");
}

#[test]
fn admin_endpoint_fails_the_next_n_requests_and_lists_and_clears() {
    let s = Server::start(&fixture("basic"), &[]);
    let add = r#"{"rules": [{"name": "next-two", "path": "/api/v1/namespaces/apps", "verbs": ["get"], "action": "error", "status": 503, "times": 2}]}"#;
    let r = http(&s.address, "POST", "/_admin/faults", add).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let codes: Vec<u16> = (0..4)
        .map(|_| {
            http(&s.address, "GET", "/api/v1/namespaces/apps", "")
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(codes, [503, 503, 200, 200]);
    let listing: Value =
        serde_json::from_str(&http(&s.address, "GET", "/_admin/faults", "").unwrap().body).unwrap();
    assert_eq!(listing["rules"][0]["name"], "next-two");
    assert_eq!(listing["rules"][0]["fired"], 2);
    // A bad rule is refused with the key named, and nothing changes.
    let r = http(
        &s.address,
        "PUT",
        "/_admin/faults",
        r#"{"rules": [{"action": "error", "verbs": ["shout"]}]}"#,
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("rules[0].verbs"), "{}", r.body);
    // Faults never hit the admin endpoint itself, so a catch-all rule can still be cleared.
    let r = http(
        &s.address,
        "PUT",
        "/_admin/faults",
        r#"{"rules": [{"action": "error"}]}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(http(&s.address, "GET", "/version", "").unwrap().status, 500);
    assert_eq!(
        http(&s.address, "DELETE", "/_admin/faults", "")
            .unwrap()
            .status,
        200
    );
    assert_eq!(http(&s.address, "GET", "/version", "").unwrap().status, 200);
    // kubectl reaches it only deliberately, through --raw.
    let raw = s.ok(&["get", "--raw", "/_admin/faults"]);
    assert_eq!(
        serde_json::from_str::<Value>(&raw).unwrap()["rules"],
        serde_json::json!([])
    );
}

#[test]
fn added_latency_delays_matching_requests() {
    let (_d, cfg) = with_config(
        "faults: {rules: [{path: /api/v1/namespaces/apps, action: latency, latency: 400ms}]}",
    );
    let s = Server::start(&fixture("basic"), &["--config", cfg.to_str().unwrap()]);
    let t = Instant::now();
    let r = http(&s.address, "GET", "/api/v1/namespaces/apps", "").unwrap();
    assert_eq!(r.status, 200, "latency does not change the answer");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn kubectl_retries_through_429_with_retry_after() {
    let s = Server::start(&fixture("basic"), &[]);
    let rule = r#"{"rules": [{"path": "/api/v1/namespaces/apps/configmaps/*", "verbs": ["get"], "action": "throttle", "retryAfter": 1, "times": 2}]}"#;
    assert_eq!(
        http(&s.address, "POST", "/_admin/faults", rule)
            .unwrap()
            .status,
        200
    );
    let r = http(
        &s.address,
        "GET",
        "/api/v1/namespaces/apps/configmaps/web-settings",
        "",
    )
    .unwrap();
    assert_eq!(r.status, 429);
    assert!(
        r.headers.to_ascii_lowercase().contains("retry-after: 1"),
        "{}",
        r.headers
    );
    let status: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    // One throttle left: kubectl waits Retry-After and retries, and succeeds.
    let cm = s.json(&["get", "configmap", "web-settings", "-n", "apps"]);
    assert_eq!(cm["metadata"]["name"], "web-settings");
    let listing: Value =
        serde_json::from_str(&http(&s.address, "GET", "/_admin/faults", "").unwrap().body).unwrap();
    assert_eq!(
        listing["rules"][0]["fired"], 2,
        "kubectl met the second 429"
    );
}

#[test]
fn dropped_connections_get_no_answer() {
    let (_d, cfg) = with_config(
        "faults: {rules: [{path: /api/v1/namespaces, verbs: [list], action: drop, times: 2}]}",
    );
    let s = Server::start(&fixture("basic"), &["--config", cfg.to_str().unwrap()]);
    assert!(http(&s.address, "GET", "/api/v1/namespaces", "").is_none());
    assert!(http(&s.address, "GET", "/api/v1/namespaces", "").is_none());
    let r = http(&s.address, "GET", "/api/v1/namespaces", "").unwrap();
    assert_eq!(r.status, 200, "the budget of two drops is spent");
    // The server keeps serving other connections throughout.
    assert_eq!(http(&s.address, "GET", "/version", "").unwrap().status, 200);
}

#[test]
fn admin_endpoint_needs_the_token_under_tls() {
    let s = Server::start(&fixture("basic"), &["--tls"]);
    let out = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("https://{}/_admin/faults", s.address))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    // With the kubeconfig's token (kubectl --raw) it answers.
    let raw = s.ok(&["get", "--raw", "/_admin/faults"]);
    assert!(raw.contains("\"rules\""), "{raw}");
}
