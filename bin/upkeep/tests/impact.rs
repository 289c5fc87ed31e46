//! `upkeep impact` and `upkeep plan --impact` as a user runs them: the
//! homelab served by sim-cluster (plus objects whose managedFields still
//! name an API Kubernetes 1.32 removes), a GitOps checkout, and a report
//! with a Longhorn minor and a k3s minor.

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::path::Path;

use serde_json::{Value, json};
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

fn report(dir: &Path) -> std::path::PathBuf {
    let comp = |kind: &str, name: &str, from: &str, to: &str| {
        json!({"apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
               "component": {"kind": kind, "name": name},
               "current": {"version": from},
               "candidates": [{"version": to, "update": "minor", "allowed": true}],
               "path": [{"from": from, "to": to, "update": "minor"}],
               "checkedAt": "2026-11-28T04:00:00Z"})
    };
    let doc = json!({
        "apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
        "generatedAt": "2026-11-28T04:00:00Z",
        "summary": {"components": 2, "withUpdates": 2, "patch": 0, "minor": 2, "major": 0,
                    "security": 0, "breaking": 0, "blocked": 0, "errors": 0},
        "components": [comp("longhorn", "longhorn", "v1.9.0", "v1.10.2"),
                       comp("k3s", "k3s", "v1.31.4+k3s1", "v1.32.11+k3s3")]
    });
    let p = dir.join("report.json");
    std::fs::write(&p, doc.to_string()).unwrap();
    p
}

#[test]
fn impact_reads_the_live_cluster_and_the_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let extra =
        std::fs::read_to_string(workspace().join("testdata/impact/removed-apis.yaml")).unwrap();
    let cluster = Sim::start(&homelab_with(tmp.path(), &extra), None);
    let r = report(tmp.path());
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .arg("--gitops")
        .arg(workspace().join("testdata/impact/gitops"))
        .args(["-o", "json", "impact", "--report"])
        .arg(&r)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "ImpactReport");
    let longhorn = &doc["updates"][0];
    let mut workloads: Vec<String> = longhorn["affected"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["object"]["kind"] == "Deployment")
        .map(|a| a["object"]["name"].as_str().unwrap().to_string())
        .collect();
    workloads.sort();
    assert_eq!(workloads, ["jellyfin", "paperless", "vaultwarden"]);
    assert_eq!(longhorn["storage"].as_array().unwrap().len(), 3);
    let k3s = &doc["updates"][1];
    let codes: Vec<&str> = k3s["breaking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["code"].as_str().unwrap())
        .collect();
    // managedFields come through the live API as they were stored.
    assert!(codes.contains(&"removed-api-in-managed-fields"), "{k3s}");
    assert!(codes.contains(&"removed-api-in-git"), "{k3s}");
    assert_eq!(k3s["risk"], "high");

    // The same, for people, and attached to each step of a plan.
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["impact", "--report"])
        .arg(&r)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Deployment media/jellyfin") && text.contains("risk High"),
        "{text}"
    );
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["-o", "json", "plan", "--impact", "--report"])
        .arg(&r)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lh = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["component"]["kind"] == "longhorn")
        .unwrap();
    assert!(
        lh["touches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "Deployment" && o["name"] == "jellyfin"),
        "{lh}"
    );
}

#[test]
fn impact_bad_input_is_one_line_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"kind\": \"UpdateReport\"").unwrap();
    for args in [
        vec!["impact", "--report", bad.to_str().unwrap()],
        vec!["impact"],
        vec![
            "impact",
            "--report",
            bad.to_str().unwrap(),
            "--cluster-dump",
            "/nonexistent.json",
        ],
    ] {
        let out = tool(BIN, tmp.path()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}
