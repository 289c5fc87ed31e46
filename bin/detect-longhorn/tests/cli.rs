//! detect-longhorn as a user runs it: the built binary against sim-upstream
//! and the constructed cluster dumps of testdata/clusters.

// One copy of the test harness serves the three platform detectors.
#[path = "../../detect-k3s/tests/common/mod.rs"]
mod common;

use common::*;
use std::process::{Command, Stdio};

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

/// A copy of testdata/upstream into `dir` whose Longhorn v1.12.0 notes carry
/// terminal escape sequences (clear screen, a window title, a hyperlink).
fn hostile_upstream(dir: &std::path::Path) -> std::path::PathBuf {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let t = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy(&p, &t);
            } else {
                std::fs::copy(&p, &t).unwrap();
            }
        }
    }
    let root = dir.join("upstream");
    copy(&sim_upstream::workspace_fixture(), &root);
    let rel = root.join("github/longhorn/longhorn/releases.json");
    let mut releases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rel).unwrap()).unwrap();
    let r = releases
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["tag_name"] == "v1.12.0")
        .unwrap();
    let body = r["body"].as_str().unwrap().replace(
        "V2 Backing Images are removed in Longhorn v1.12.0",
        "V2 Backing Images are \u{1b}[2J\u{1b}]0;pwned\u{7}removed \u{1b}]8;;https://evil.example\u{1b}\\in\u{1b}]8;;\u{1b}\\ Longhorn\u{9b}31m v1.12.0",
    );
    assert!(body.contains('\u{1b}'), "the notes were changed");
    r["body"] = body.into();
    std::fs::write(&rel, releases.to_string()).unwrap();
    root
}

#[test]
fn escape_sequences_in_release_notes_never_reach_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start_with(hostile_upstream(tmp.path()));
    let out = sim
        .cmd(BIN)
        .args(["--current", "v1.11.2", "--target", "v1.12.0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).unwrap();
    // The sentence made it through, without what a terminal would act on.
    assert!(
        json.contains("V2 Backing Images are removed in Longhorn v1.12.0"),
        "{json}"
    );
    for bad in [
        "\u{1b}",
        "\\u001b",
        "\u{7}",
        "\\u0007",
        "\u{9b}",
        "pwned\u{7}",
    ] {
        assert!(!json.contains(bad), "{bad:?} in {json}");
    }
    let text = Command::new(
        env!("CARGO_BIN_EXE_detect-longhorn").replace("detect-longhorn", "merge-report"),
    )
    .args(["-o", "text"])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .and_then(|mut c| {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(json.as_bytes())?;
        c.wait_with_output()
    })
    .unwrap();
    let shown = String::from_utf8(text.stdout).unwrap();
    assert!(shown.contains("v1.12.0"), "{shown}");
    assert!(
        !shown
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{shown:?}"
    );
}
