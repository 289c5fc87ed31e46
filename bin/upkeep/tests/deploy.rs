//! deploy/upkeep, the kustomization a Flux user drops into their repository:
//! its CronJob and RBAC are exactly what `upkeep schedule print-cronjob`
//! prints (so the two never drift), the real kubectl builds it, and the
//! simulated API server takes every object of it.

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::collections::BTreeSet;

use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_upkeep");

#[test]
fn the_deploy_kustomization_is_the_printed_cronjob_and_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let deploy = workspace().join("deploy/upkeep");
    let out = tool(BIN, tmp.path())
        .args(["schedule", "print-cronjob"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(deploy.join("upkeep.yaml")).unwrap();
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "deploy/upkeep/upkeep.yaml is not what `upkeep schedule print-cronjob` prints: regenerate it with\n  \
         cargo run --bin upkeep -- schedule print-cronjob > deploy/upkeep/upkeep.yaml"
    );

    let sim = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    let built = sim.kubectl(&["kustomize", deploy.to_str().unwrap()]);
    let kinds: BTreeSet<String> = built
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .map(str::to_string)
        .collect();
    let want: BTreeSet<String> = [
        "Namespace",
        "PersistentVolumeClaim",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "CronJob",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(kinds, want, "{built}");

    let out = sim.kubectl_out(&["apply", "--server-side", "-k", deploy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cj = sim.json(&["get", "cronjob", "-n", "upkeep", "upkeep-0"]);
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"],
        "upkeep"
    );
    let ns = sim.json(&["get", "namespace", "upkeep"]);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    sim.kubectl(&["get", "pvc", "-n", "upkeep", "upkeep-state"]);
    sim.kubectl(&["get", "role", "-n", "kube-system", "upkeep"]);
    sim.kubectl(&["get", "clusterrolebinding", "upkeep"]);
}
