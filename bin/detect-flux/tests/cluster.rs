//! detect-flux reading a live cluster: the built binary with `--kubeconfig`
//! against sim-cluster serving the homelab fixture (testdata/clusters/homelab)
//! and sim-upstream, both in process.

// One copy of the test harness serves the three platform detectors.
#[path = "../../detect-k3s/tests/common/mod.rs"]
mod common;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_detect-flux");

#[test]
fn the_flux_version_comes_from_the_homelab_cluster() {
    let sim = Sim::start();
    let k8s = sim.cluster("clusters/homelab", "v1.31.4+k3s1", false);
    let (code, doc, stderr) = run_doc(sim.cmd(BIN).arg("--kubeconfig").arg(k8s.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["current"]["version"], "v2.9.4");
    let observed = &doc["observed"][0];
    assert_eq!(observed["from"], "cluster");
    assert_eq!(observed["object"]["kind"], "Namespace");
    assert_eq!(observed["object"]["name"], "flux-system");
    assert_eq!(
        observed["field"],
        "metadata.labels[app.kubernetes.io/version]"
    );
    // The running controllers' images say the same, and are recorded as seen.
    let deployments: Vec<&str> = doc["observed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["object"]["kind"] == "Deployment")
        .map(|o| o["object"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(deployments.len(), 1, "{:?}", doc["observed"]);
    assert!(!finding_codes(&doc).contains(&"flux-version-disagrees".to_string()));
    // v2.9.4 is the newest release sim-upstream knows.
    assert!(hops(&doc).is_empty(), "{:?}", hops(&doc));
    assert!(doc["errors"].as_array().unwrap().is_empty());

    // What is read is the cluster as it is now: an older Flux label gives
    // the path from there, one minor at a time.
    k8s.kubectl(&[
        "label",
        "namespace",
        "flux-system",
        "app.kubernetes.io/version=v2.7.2",
        "--overwrite",
    ]);
    let (code, doc, stderr) = run_doc(sim.cmd(BIN).arg("--kubeconfig").arg(k8s.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["current"]["version"], "v2.7.2");
    assert_eq!(hops(&doc), ["v2.7.5", "v2.8.8", "v2.9.4"]);
    // The controllers still run v2.9.4's images: the label is not the whole truth.
    assert!(finding_codes(&doc).contains(&"flux-version-disagrees".to_string()));
}
