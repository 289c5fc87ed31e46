//! `upkeep scan` as a user runs it: the four detectors in one process
//! against sim-cluster (the homelab) and sim-upstream (the recorded
//! GitHub releases, k3s channels and Longhorn chart repository), merged
//! into one UpdateReport: the same report the shell pipeline prints.

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use serde_json::Value;
use sim::*;
use sim_upstream::{SimOptions, SimUpstream};

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

#[test]
fn scan_merges_every_detector_into_one_report() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime
        .block_on(SimUpstream::start(SimOptions::new(
            sim_upstream::workspace_fixture(),
        )))
        .unwrap();
    let cluster = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    let tmp = tempfile::tempdir().unwrap();
    let base = upstream.base_url();
    let cfg = tmp.path().join("upkeep.yaml");
    std::fs::write(
        &cfg,
        format!(
            "upstreams:\n  github:\n    url: {base}\n  k3sChannels:\n    url: {base}/v1-release/channels\n  \
             helmMirrors:\n    https://charts.longhorn.io: {base}/helm/longhorn\nhttp:\n  retries: 0\n  timeout: 10s\n\
             cache:\n  dir: {}\n",
            tmp.path().join("cache").display()
        ),
    )
    .unwrap();
    let saved = tmp.path().join("report.json");
    let out = tool(BIN, tmp.path())
        .arg("--config")
        .arg(&cfg)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["-o", "json", "scan", "--save"])
        .arg(&saved)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Charts whose repositories the recorded world does not hold are
    // reported with an error: the scan is degraded (exit 3), not failed.
    assert!(matches!(out.status.code(), Some(0 | 3)), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kind"], "UpdateReport");
    let kinds: Vec<&str> = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"]["kind"].as_str().unwrap())
        .collect();
    for k in ["k3s", "flux", "longhorn", "chart"] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }
    let k3s = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"]["kind"] == "k3s")
        .unwrap();
    assert!(
        !k3s["candidates"].as_array().unwrap().is_empty(),
        "the recorded k3s releases give candidates: {k3s}"
    );
    // --save wrote the same report, which `upkeep plan` reads.
    let saved_report: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(saved_report, report);
    let out = tool(BIN, tmp.path())
        .arg("--config")
        .arg(&cfg)
        .args(["-o", "json", "plan", "--report"])
        .arg(&saved)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!plan["steps"].as_array().unwrap().is_empty(), "{plan}");
    drop(upstream);
}
