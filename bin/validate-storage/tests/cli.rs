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

/// SIM.yaml: the writer and the reader end as given, printing their sums.
fn sim_yaml(write: (&str, &str), read: (&str, &str)) -> String {
    format!(
        "controllers:\n  workloads:\n    interval: 100ms\n    pods:\n      - match: \"upkeep-storage-*-write\"\n        result: {}\n        logs: {:?}\n      - match: \"upkeep-storage-*-read\"\n        result: {}\n        logs: {:?}\n",
        write.0, write.1, read.0, read.1
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

fn leftovers(sim: &Sim) -> String {
    sim.kubectl(&[
        "get",
        "pvc,jobs,pods",
        "-A",
        "-l",
        "upkeep.dev/storage-test",
        "-o",
        "name",
    ])
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
