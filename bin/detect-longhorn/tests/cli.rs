//! detect-longhorn as a user runs it: the built binary against sim-upstream
//! and the constructed cluster dumps of testdata/clusters.

// One copy of the test harness serves the three platform detectors.
#[path = "../../detect-k3s/tests/common/mod.rs"]
mod common;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_detect-longhorn");

#[test]
fn a_19_to_112_jump_becomes_one_hop_per_minor() {
    let sim = Sim::start();
    let (code, doc, _) = run_doc(
        sim.cmd(BIN)
            .args(["--current", "v1.9.2", "--target", "v1.12.1"]),
    );
    assert_eq!(code, 0);
    assert_eq!(hops(&doc), ["v1.10.2", "v1.11.3", "v1.12.1"]);
    assert_eq!(doc["path"][0]["from"], "v1.9.2");
    assert_eq!(doc["path"][1]["requires"]["kubernetes"], ">=1.34.0-0");
    // Release candidates are not offered.
    assert!(
        doc["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c["version"].as_str().unwrap().contains("-rc"))
    );
    let (_, doc, _) = run_doc(sim.cmd(BIN).args([
        "--current",
        "v1.9.2",
        "--target",
        "v1.12.1",
        "--include-prereleases",
    ]));
    assert!(
        doc["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["version"].as_str().unwrap().contains("-rc") && c["prerelease"] == true)
    );
}

#[test]
fn faulted_volume_is_blocking() {
    let sim = Sim::start();
    let (code, doc, _) = run_doc(
        sim.cmd(BIN)
            .arg("--cluster-dump")
            .arg(cluster("longhorn-v1.9-faulted.json")),
    );
    assert_eq!(code, 0);
    assert_eq!(doc["current"]["version"], "v1.9.0");
    let faulted = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "volume-faulted")
        .expect("faulted volume finding");
    assert_eq!(faulted["severity"], "blocking");
    assert_eq!(
        faulted["locations"][0]["object"]["name"],
        "pvc-7c1e-faulted"
    );
    assert_eq!(hops(&doc), ["v1.9.2", "v1.10.2", "v1.11.3", "v1.12.1"]);
    // merge-report counts it as blocked: has_blocking() sees the finding.
    let codes = finding_codes(&doc);
    assert!(codes.contains(&"volume-degraded".to_string()));
    assert!(codes.contains(&"disk-unschedulable".to_string()));
}

#[test]
fn downgrade_target_is_refused_with_a_finding() {
    let sim = Sim::start();
    let (code, doc, _) = run_doc(
        sim.cmd(BIN)
            .args(["--current", "v1.12.1", "--target", "v1.11"]),
    );
    assert_eq!(code, 0);
    assert!(hops(&doc).is_empty());
    assert!(finding_codes(&doc).contains(&"target-below-current".to_string()));
}

#[test]
fn offline_from_the_cache_after_a_run() {
    let sim = Sim::start();
    let args = ["--current", "v1.10.0"];
    let (code, online, _) = run_doc(sim.cmd(BIN).args(args));
    assert_eq!(code, 0);
    let n = sim.requests().len();
    let (code, offline, _) = run_doc(sim.cmd(BIN).args(args).arg("--offline"));
    assert_eq!(code, 0);
    assert_eq!(sim.requests().len(), n, "--offline reached the network");
    assert_eq!(online["path"], offline["path"]);
    assert_eq!(online["candidates"], offline["candidates"]);
}

#[test]
fn stable_target_is_a_usage_error() {
    let sim = Sim::start();
    assert_usage_error(
        sim.cmd(BIN)
            .args(["--current", "v1.9.0", "--target", "stable"]),
        "no stable channel",
    );
    assert_usage_error(
        sim.cmd(BIN)
            .args(["--current", "1.9.0", "--target", "1.2.3.4"]),
        "--target",
    );
}

#[test]
fn known_bad_from_upkeep_yaml_and_the_flag() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("upkeep.yaml");
    std::fs::write(&config, "releases:\n  knownBad:\n    longhorn: [v1.11.3]\n").unwrap();
    let (code, doc, _) = run_doc(
        sim.cmd(BIN)
            .arg("--config")
            .arg(&config)
            .args(["--current", "v1.9.2", "--target", "v1.12"])
            .args(["--known-bad", "v1.12.1"]),
    );
    assert_eq!(code, 0);
    // v1.12.1 is out, so the v1.12 target is the newest 1.12 release left.
    let last = hops(&doc).last().cloned().unwrap();
    assert!(last.starts_with("v1.12.") && last != "v1.12.1", "{last}");
    assert_eq!(hops(&doc)[1], "v1.11.2");
    let codes = finding_codes(&doc);
    assert_eq!(
        codes.iter().filter(|c| *c == "known-bad-release").count(),
        2
    );
    // A version that does not parse names where it was written.
    std::fs::write(&config, "releases:\n  knownBad:\n    longhorn: [one.two]\n").unwrap();
    assert_usage_error(
        sim.cmd(BIN)
            .arg("--config")
            .arg(&config)
            .args(["--current", "v1.9.2"]),
        "releases.knownBad.longhorn[0]",
    );
    assert_usage_error(
        sim.cmd(BIN)
            .args(["--current", "v1.9.2", "--known-bad", "x"]),
        "--known-bad",
    );
}
