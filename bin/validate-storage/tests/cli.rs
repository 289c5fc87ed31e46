//! validate-storage as a user runs it: the built binary against sim-cluster
//! serving the homelab, whose simulated workloads controller runs the data
//! test's Jobs and prints what SIM.yaml says their containers print.

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::process::Command;

use serde_json::Value;
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_validate-storage");
const SUM: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

/// SIM.yaml: the writer and the reader end as given, printing their sums; Longhorn
/// provisions the test PVC.
fn sim_yaml(write: (&str, &str), read: (&str, &str)) -> String {
    restore_sim_yaml(write, read, ("Succeeded", ""), "0s")
}

/// SIM.yaml for --with-restore: also the reader of the restored PVC (listed first: the
/// first match wins, and `*-read` matches it too), and how long Longhorn takes to make a
/// snapshot ready.
fn restore_sim_yaml(
    write: (&str, &str),
    read: (&str, &str),
    restored: (&str, &str),
    snapshot_delay: &str,
) -> String {
    format!(
        "controllers:\n  longhorn:\n    interval: 100ms\n    delay: {snapshot_delay}\n  workloads:\n    interval: 100ms\n    pods:\n      - match: \"upkeep-storage-*-restored-read\"\n        result: {}\n        logs: {:?}\n      - match: \"upkeep-storage-*-write\"\n        result: {}\n        logs: {:?}\n      - match: \"upkeep-storage-*-read\"\n        result: {}\n        logs: {:?}\n",
        restored.0, restored.1, write.0, write.1, read.0, read.1
    )
}

fn run(c: &mut Command) -> (i32, Value) {
    let out = c.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not a report ({e}): {stdout:?} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// Everything the data test labels, of every kind it creates, and the PVs and Longhorn
/// volumes provisioned for its claims.
fn leftovers(sim: &Sim) -> String {
    let mut left = sim.kubectl(&[
        "get",
        "pvc,jobs,pods,volumesnapshots,volumesnapshotcontents,snapshots.longhorn.io",
        "-A",
        "-l",
        "upkeep.dev/storage-test",
        "-o",
        "name",
    ]);
    let pvs = sim.json(&["get", "pv"]);
    for pv in pvs["items"].as_array().unwrap() {
        let claim = pv["spec"]["claimRef"]["name"].as_str().unwrap_or("");
        if claim.starts_with("upkeep-storage-") {
            left.push_str(&format!("pv/{} (claim {claim})\n", pv["metadata"]["name"]));
        }
    }
    let vols = sim.json(&["get", "volumes.longhorn.io", "-A"]);
    for v in vols["items"].as_array().unwrap() {
        let claim = v["status"]["kubernetesStatus"]["pvcName"]
            .as_str()
            .unwrap_or("");
        if claim.starts_with("upkeep-storage-") {
            left.push_str(&format!(
                "volume/{} (claim {claim})\n",
                v["metadata"]["name"]
            ));
        }
    }
    left
}

fn validate(sim: &Sim, home: &std::path::Path) -> Command {
    let mut c = tool(BIN, home);
    c.args(["--timeout", "30s", "--kubeconfig"])
        .arg(sim.kubeconfig());
    c
}

#[test]
fn a_healthy_longhorn_passes_and_the_data_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = format!("{SUM}  /data/probe");
    let sim = Sim::start(
        &workspace().join("testdata/clusters/homelab"),
        Some(&sim_yaml(("Succeeded", &probe), ("Succeeded", &probe))),
    );
    let (code, report) = run(&mut validate(&sim, tmp.path()));
    assert_eq!(code, 0, "{report}");
    let data = check(&report, "storage/data-roundtrip");
    assert_eq!(data["status"], "pass");
    assert!(data["detail"].as_str().unwrap().contains(SUM));
    assert_eq!(
        check(&report, "storage/data-test-cleanup")["status"],
        "pass"
    );
    assert_eq!(check(&report, "storage/volume-healthy")["status"], "pass");
    assert_eq!(check(&report, "storage/node-ready")["status"], "pass");
    assert_eq!(check(&report, "storage/manager-ready")["status"], "pass");
    assert_eq!(leftovers(&sim).trim(), "");
}

#[test]
fn a_wrong_sum_and_a_failed_writer_fail_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        &workspace().join("testdata/clusters/homelab"),
        Some(&sim_yaml(
            ("Succeeded", &format!("{SUM}  /data/probe")),
            ("Succeeded", &format!("{OTHER}  /data/probe")),
        )),
    );
    let (code, report) = run(&mut validate(&sim, tmp.path()));
    assert_eq!(code, 1);
    let data = check(&report, "storage/data-roundtrip");
    assert_eq!(data["status"], "fail");
    assert!(
        data["detail"].as_str().unwrap().contains("differs"),
        "{data}"
    );
    assert_eq!(
        check(&report, "storage/data-test-cleanup")["status"],
        "pass"
    );
    assert_eq!(leftovers(&sim).trim(), "");
    drop(sim);

    // The writer fails mid-way: the reader never runs, and the clean-up still happens.
    let sim = Sim::start(
        &workspace().join("testdata/clusters/homelab"),
        Some(&sim_yaml(
            (
                "Failed",
                "dd: error writing '/data/probe': No space left on device",
            ),
            ("Succeeded", ""),
        )),
    );
    let (code, report) = run(&mut validate(&sim, tmp.path()));
    assert_eq!(code, 1);
    let data = check(&report, "storage/data-roundtrip");
    assert!(
        data["detail"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{data}"
    );
    assert_eq!(
        check(&report, "storage/data-test-cleanup")["status"],
        "pass"
    );
    assert_eq!(leftovers(&sim).trim(), "");
    let jobs = sim.kubectl(&["get", "jobs", "-A", "-o", "name"]);
    assert!(!jobs.contains("upkeep-storage"), "{jobs}");
}

#[test]
fn a_degraded_volume_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&workspace().join("testdata/clusters/homelab"), None);
    let volumes = sim.json(&["-n", "longhorn-system", "get", "volumes.longhorn.io"]);
    let name = volumes["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    sim.kubectl(&[
        "-n",
        "longhorn-system",
        "patch",
        "volumes.longhorn.io",
        &name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"robustness":"degraded"}}"#,
    ]);
    let (code, report) = run(validate(&sim, tmp.path()).arg("--no-data-test"));
    assert_eq!(code, 1);
    let bad: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["name"], "storage/volume-healthy");
    assert_eq!(bad[0]["objects"][0]["name"], name.as_str());
    assert!(bad[0]["detail"].as_str().unwrap().contains("degraded"));
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "storage/data-roundtrip")
    );
}

fn homelab(yaml: &str) -> Sim {
    Sim::start(&workspace().join("testdata/clusters/homelab"), Some(yaml))
}

#[test]
fn with_restore_the_snapshot_of_the_test_volume_reads_back_the_same_sum() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = format!("{SUM}  /data/probe");
    let sim = homelab(&restore_sim_yaml(
        ("Succeeded", &probe),
        ("Succeeded", &probe),
        ("Succeeded", &probe),
        "0s",
    ));
    let (code, report) = run(validate(&sim, tmp.path()).arg("--with-restore"));
    assert_eq!(code, 0, "{report}");
    assert_eq!(check(&report, "storage/data-roundtrip")["status"], "pass");
    let restore = check(&report, "storage/restore-roundtrip");
    assert_eq!(restore["status"], "pass", "{restore}");
    let detail = restore["detail"].as_str().unwrap();
    assert!(
        detail.contains(SUM) && detail.contains("snap://pvc-"),
        "{detail}"
    );
    assert!(
        restore["objects"][0]["name"]
            .as_str()
            .unwrap()
            .ends_with("-restored")
    );
    assert_eq!(
        check(&report, "storage/data-test-cleanup")["status"],
        "pass",
        "{report}"
    );
    assert_eq!(leftovers(&sim).trim(), "");
}

#[test]
fn with_restore_a_different_sum_from_the_restored_volume_fails_naming_its_pvc() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = format!("{SUM}  /data/probe");
    let sim = homelab(&restore_sim_yaml(
        ("Succeeded", &probe),
        ("Succeeded", &probe),
        ("Succeeded", &format!("{OTHER}  /data/probe")),
        "0s",
    ));
    let (code, report) = run(validate(&sim, tmp.path()).arg("--with-restore"));
    assert_eq!(code, 1, "{report}");
    assert_eq!(check(&report, "storage/data-roundtrip")["status"], "pass");
    let restore = check(&report, "storage/restore-roundtrip");
    assert_eq!(restore["status"], "fail");
    let detail = restore["detail"].as_str().unwrap();
    assert!(
        detail.contains("restored PVC default/upkeep-storage-")
            && detail.contains(OTHER)
            && detail.contains(SUM),
        "{detail}"
    );
    assert_eq!(
        check(&report, "storage/data-test-cleanup")["status"],
        "pass"
    );
    assert_eq!(leftovers(&sim).trim(), "");
}

#[test]
fn with_restore_a_failure_midway_still_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = format!("{SUM}  /data/probe");
    // The Longhorn snapshot never becomes ready within --timeout.
    let sim = homelab(&restore_sim_yaml(
        ("Succeeded", &probe),
        ("Succeeded", &probe),
        ("Succeeded", &probe),
        "10m",
    ));
    let mut c = tool(BIN, tmp.path());
    c.args(["--timeout", "3s", "--with-restore", "--kubeconfig"])
        .arg(sim.kubeconfig());
    let (code, report) = run(&mut c);
    assert_eq!(code, 1, "{report}");
    let restore = check(&report, "storage/restore-roundtrip");
    assert_eq!(restore["status"], "fail");
    assert!(
        restore["detail"]
            .as_str()
            .unwrap()
            .contains("did not become ready"),
        "{restore}"
    );
    assert_eq!(
        check(&report, "storage/data-test-cleanup")["status"],
        "pass",
        "{report}"
    );
    assert_eq!(leftovers(&sim).trim(), "");
    drop(sim);

    // The reader of the restored PVC fails.
    let sim = homelab(&restore_sim_yaml(
        ("Succeeded", &probe),
        ("Succeeded", &probe),
        ("Failed", "sha256sum: /data/probe: Input/output error"),
        "0s",
    ));
    let (code, report) = run(validate(&sim, tmp.path()).arg("--with-restore"));
    assert_eq!(code, 1, "{report}");
    let restore = check(&report, "storage/restore-roundtrip");
    assert_eq!(restore["status"], "fail");
    let detail = restore["detail"].as_str().unwrap();
    assert!(
        detail.contains("Input/output error") && detail.contains("-restored"),
        "{detail}"
    );
    assert_eq!(
        check(&report, "storage/data-test-cleanup")["status"],
        "pass"
    );
    assert_eq!(leftovers(&sim).trim(), "");
}

#[test]
fn with_restore_is_not_run_when_the_data_test_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = homelab(&restore_sim_yaml(
        (
            "Failed",
            "dd: error writing '/data/probe': No space left on device",
        ),
        ("Succeeded", ""),
        ("Succeeded", ""),
        "0s",
    ));
    let (code, report) = run(validate(&sim, tmp.path()).arg("--with-restore"));
    assert_eq!(code, 1);
    assert!(
        report["notRun"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "storage/restore-roundtrip"),
        "{report}"
    );
    assert_eq!(leftovers(&sim).trim(), "");
}
