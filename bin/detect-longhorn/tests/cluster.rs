//! detect-longhorn reading a live cluster: the built binary with
//! `--kubeconfig` against sim-cluster serving the homelab fixture
//! (testdata/clusters/homelab) and sim-upstream, both in process.

// One copy of the test harness serves the three platform detectors.
#[path = "../../detect-k3s/tests/common/mod.rs"]
mod common;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_detect-longhorn");

const JELLYFIN_VOLUME: &str = "pvc-cf0b7646-deb7-7550-10cb-b48c33f1afbe";

#[test]
fn longhorn_19_in_the_homelab_goes_one_minor_at_a_time() {
    let sim = Sim::start();
    let k8s = sim.cluster("clusters/homelab", "v1.31.4+k3s1", false);
    let (code, doc, stderr) = run_doc(sim.cmd(BIN).arg("--kubeconfig").arg(k8s.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["current"]["version"], "v1.9.0");
    // Both places the cluster says it: the setting and the HelmRelease.
    let observed: Vec<(String, String)> = doc["observed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["from"], "cluster");
            (
                o["object"]["kind"].as_str().unwrap().to_string(),
                o["object"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        observed,
        [
            (
                "Setting".to_string(),
                "current-longhorn-version".to_string()
            ),
            ("HelmRelease".to_string(), "longhorn".to_string()),
            // The running longhorn-manager image, in both workloads that run it.
            ("DaemonSet".to_string(), "longhorn-manager".to_string()),
            (
                "Deployment".to_string(),
                "longhorn-driver-deployer".to_string()
            )
        ]
    );
    // 1.9 -> 1.12 is never one jump.
    assert_eq!(hops(&doc), ["v1.9.2", "v1.10.2", "v1.11.3", "v1.12.1"]);
    assert_eq!(doc["path"][0]["from"], "v1.9.0");
    // The homelab's volumes are healthy and its nodes schedulable.
    let codes = finding_codes(&doc);
    assert!(!codes.iter().any(|c| c.starts_with("volume-")), "{codes:?}");
    // The cluster's Kubernetes (1.31, from its nodes) is checked per hop:
    // 1.11 needs 1.34.
    assert_eq!(doc["path"][2]["requires"]["kubernetes"], ">=1.34.0-0");
    assert!(
        doc["path"][2]["blockers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["message"].as_str().unwrap().contains("1.31.4")),
        "{}",
        doc["path"][2]
    );

    // A volume that goes faulted in the cluster blocks the upgrade on the
    // next run: what is read is the cluster's state now.
    k8s.kubectl(&[
        "patch",
        "volumes.longhorn.io",
        JELLYFIN_VOLUME,
        "-n",
        "longhorn-system",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"robustness":"faulted","state":"detached"}}"#,
    ]);
    let (code, doc, stderr) = run_doc(sim.cmd(BIN).arg("--kubeconfig").arg(k8s.kubeconfig()));
    assert_eq!(code, 0, "{stderr}");
    let faulted = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "volume-faulted")
        .expect("faulted volume finding");
    assert_eq!(faulted["severity"], "blocking");
    assert_eq!(faulted["locations"][0]["object"]["name"], JELLYFIN_VOLUME);
}
