//! Fault injection, from SIM.yaml and from `POST /_admin/faults`.

mod common;

use std::time::{Duration, Instant};

use common::{Sim, parse, request_raw};
use serde_json::json;

fn sim_with_config(yaml: &str) -> (Sim, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sim.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let sim = Sim::start(&["--config", cfg.to_str().unwrap(), "--rate-limit", "1000"]);
    (sim, dir)
}

#[test]
fn error_rate_is_seeded_and_deterministic() {
    let yaml =
        "seed: 11\nfaults:\n- path: /repos/*/releases\n  kind: error\n  status: 503\n  rate: 0.5\n";
    let run = || {
        let (sim, _d) = sim_with_config(yaml);
        let statuses: Vec<u16> = (0..24)
            .map(|_| sim.get("/repos/k3s-io/k3s/releases").status)
            .collect();
        // Paths the glob does not match are never hit.
        assert_eq!(sim.get("/repos/k3s-io/k3s/releases/latest").status, 200);
        statuses
    };
    let a = run();
    assert_eq!(a, run(), "same seed, same sequence");
    assert!(a.contains(&503) && a.contains(&200), "{a:?}");
    assert!(a.iter().all(|s| *s == 503 || *s == 200));
}

#[test]
fn fail_the_next_n_requests_then_recover() {
    let sim = Sim::start(&[]);
    let set = sim.post_json(
        "/_admin/faults",
        &json!({"faults": [{"prefix": "/v1-release/", "kind": "error", "status": 502, "times": 2}]}),
    );
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(sim.get("/v1-release/channels").status, 502);
    assert_eq!(sim.get("/v1-release/channels/stable").status, 502);
    assert_eq!(sim.get("/v1-release/channels").status, 200);
    let left = sim.get("/_admin/faults").json();
    assert_eq!(left["faults"][0]["times"], 0);
    let log = sim.admin_requests();
    assert_eq!(log[0]["fault"], "error");
    assert_eq!(log[2]["fault"], serde_json::Value::Null);
}

#[test]
fn latency_delays_matching_requests() {
    let (sim, _d) =
        sim_with_config("faults:\n- prefix: /repos/longhorn/\n  kind: latency\n  delayMs: 400\n");
    let t = Instant::now();
    let r = sim.get("/repos/longhorn/longhorn/releases/latest");
    assert_eq!(r.status, 200, "latency alone still answers");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "answered after {:?}",
        t.elapsed()
    );
}

#[test]
fn too_many_requests_with_retry_after() {
    let sim = Sim::start(&[]);
    sim.post_json(
        "/_admin/faults",
        &json!({"faults": [{"path": "/repos/fluxcd/*", "kind": "too-many-requests", "retryAfter": 7}]}),
    );
    let r = sim.get("/repos/fluxcd/flux2/releases");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(sim.get("/repos/k3s-io/k3s/releases/latest").status, 200);
}

#[test]
fn dropped_connection_gets_no_answer() {
    let sim = Sim::start(&[]);
    sim.post_json(
        "/_admin/faults",
        &json!({"faults": [{"path": "/repos/*/releases/latest", "kind": "drop", "times": 1}]}),
    );
    let raw = request_raw(
        sim.addr,
        "GET",
        "/repos/k3s-io/k3s/releases/latest",
        &[],
        None,
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        raw.bytes.is_empty(),
        "got {:?}",
        String::from_utf8_lossy(&raw.bytes)
    );
    assert_eq!(
        sim.get("/repos/k3s-io/k3s/releases/latest").status,
        200,
        "only once"
    );
    let log = sim.admin_requests();
    assert_eq!(log[0]["fault"], "drop");
    assert_eq!(log[0]["status"], serde_json::Value::Null);
}

#[test]
fn truncated_body_is_shorter_than_its_content_length() {
    let sim = Sim::start(&[]);
    sim.post_json(
        "/_admin/faults",
        &json!({"faults": [{"prefix": "/helm/", "kind": "truncate"}]}),
    );
    let raw = request_raw(
        sim.addr,
        "GET",
        "/helm/longhorn/index.yaml",
        &[],
        None,
        Duration::from_secs(10),
    )
    .unwrap();
    let resp = parse(&raw.bytes).expect("headers arrive");
    assert_eq!(resp.status, 200);
    let declared: usize = resp.header("content-length").unwrap().parse().unwrap();
    assert!(declared > 100);
    assert_eq!(
        resp.body.len(),
        declared / 2,
        "half the body, then the connection closes"
    );
}

#[test]
fn wrong_content_type_keeps_the_body() {
    let sim = Sim::start(&[]);
    sim.post_json(
        "/_admin/faults",
        &json!({"faults": [{"path": "/repos/k3s-io/k3s/releases/latest", "kind": "wrong-content-type"}]}),
    );
    let r = sim.get("/repos/k3s-io/k3s/releases/latest");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.json()["tag_name"], "v1.37.1+k3s1");
    sim.post_json(
        "/_admin/faults",
        &json!({"faults": [{"prefix": "/v1-release/", "kind": "wrong-content-type", "contentType": "application/xml"}]}),
    );
    assert_eq!(
        sim.get("/v1-release/channels").header("content-type"),
        Some("application/xml")
    );
}

#[test]
fn garbage_replaces_the_body_with_seeded_bytes() {
    let sim = Sim::start(&[]);
    let set = sim.post_json(
        "/_admin/faults",
        &json!({"seed": 3, "faults": [{"prefix": "/v1-release/", "kind": "garbage", "sizeBytes": 300000}]}),
    );
    assert_eq!(set.status, 200, "{}", set.text());
    let a = sim.get("/v1-release/channels");
    assert_eq!(a.status, 200);
    assert_eq!(a.body.len(), 300_000);
    assert!(serde_json::from_slice::<serde_json::Value>(&a.body).is_err());
    assert_eq!(a.header("etag"), None, "no validator for rubbish");
    assert_eq!(sim.get("/v1-release/channels").body, a.body, "seeded");
    // The default is 10 MiB; other paths are untouched.
    sim.post_json(
        "/_admin/faults",
        &json!({"faults": [{"prefix": "/v1-release/", "kind": "garbage"}]}),
    );
    assert_eq!(sim.get("/v1-release/channels").body.len(), 10 << 20);
    assert_eq!(
        sim.get("/repos/k3s-io/k3s/releases/latest").json()["tag_name"],
        "v1.37.1+k3s1"
    );
}

#[test]
fn stalled_response_sends_half_then_waits() {
    let sim = Sim::start(&[]);
    sim.post_json(
        "/_admin/faults",
        &json!({"faults": [{"prefix": "/v1-release/channels", "kind": "stall", "delayMs": 1500}]}),
    );
    // A client with a short read timeout sees the headers and part of the body, then nothing.
    let raw = request_raw(
        sim.addr,
        "GET",
        "/v1-release/channels",
        &[],
        None,
        Duration::from_millis(300),
    )
    .unwrap();
    let err = raw.error.expect("read timed out");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    let partial = parse(&raw.bytes).expect("headers arrive before the stall");
    let declared: usize = partial.header("content-length").unwrap().parse().unwrap();
    assert!(partial.body.len() < declared);
    // A patient client gets the whole body after the stall.
    let full = request_raw(
        sim.addr,
        "GET",
        "/v1-release/channels",
        &[],
        None,
        Duration::from_secs(20),
    )
    .unwrap();
    assert!(full.error.is_none());
    let full = parse(&full.bytes).unwrap();
    assert_eq!(full.body.len(), declared);
    assert_eq!(full.json()["type"], "collection");
}

#[test]
fn admin_faults_validate_and_clear() {
    let sim = Sim::start(&[]);
    let bad = sim.post_json("/_admin/faults", &json!({"faults": [{"kind": "error"}]}));
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("faults[0]"), "{}", bad.text());
    let bad = sim.post_json(
        "/_admin/faults",
        &json!({"faults": [{"path": "/x", "kind": "explode"}]}),
    );
    assert_eq!(bad.status, 400);
    sim.post_json(
        "/_admin/faults",
        &json!({"faults": [{"prefix": "/", "kind": "error"}]}),
    );
    assert_eq!(sim.get("/v1-release/channels").status, 500);
    let cleared = common::request(sim.addr, "DELETE", "/_admin/faults", &[], None).unwrap();
    assert_eq!(cleared.status, 200);
    assert_eq!(sim.get("/v1-release/channels").status, 200);
}
