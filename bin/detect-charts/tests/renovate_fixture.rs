//! The N=200 Flux fixture of ../shared/peers/renovate (built with the real
//! `helm` and served over HTTP): every answer of detect-charts is checked
//! against expectations computed here from the fixture's own manifest
//! (/tmp/fixture-200.json), not against Renovate's output or ours.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use upkeep_version::{Constraint, Version};

const N: &str = "200";
const KUBERNETES: &str = "v1.29.5";

fn peers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/renovate")
}

/// Builds the fixture; `None` (with the reason printed) when it cannot be.
fn build_fixture() -> Option<Value> {
    let script = peers().join("make-fixture.sh");
    if !script.exists() {
        eprintln!(
            "skipping: {} is absent (shared peers are not in a user's clone)",
            script.display()
        );
        return None;
    }
    let Some(helm) = helm() else {
        eprintln!(
            "skipping: no helm binary ($HELM, /tmp/peers/layer/helm/helm or .tools/bin/helm); run {}/setup.sh or scripts/install-test-deps.sh",
            peers().display()
        );
        return None;
    };
    let out = Command::new(&script)
        .arg(N)
        .env("HELM", &helm)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "skipping: make-fixture.sh {N} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let manifest = std::fs::read(format!("/tmp/fixture-{N}.json")).ok()?;
    serde_json::from_slice(&manifest).ok()
}

/// The real helm: `$HELM`, the one setup.sh unpacks, or the one
/// scripts/install-test-deps.sh installs.
fn helm() -> Option<String> {
    let candidates = [
        std::env::var("HELM").ok(),
        Some("/tmp/peers/layer/helm/helm".to_string()),
        Some(format!(
            "{}/../../.tools/bin/helm",
            env!("CARGO_MANIFEST_DIR")
        )),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| Path::new(p).is_file())
}

struct StopServer;
impl Drop for StopServer {
    fn drop(&mut self) {
        let _ = Command::new(peers().join("stop-server.sh")).arg(N).output();
    }
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

struct Expected {
    current: Version,
    latest: Option<Version>,
    latest_allowed: Option<Version>,
    candidates: Vec<Version>,
    held_back: Vec<Version>,
    deprecated_newer: Vec<Version>,
}

/// The rules, from the manifest alone: the current version is the pin, or
/// for a range the newest version it matches (what Flux installs);
/// deprecated versions are never offered; pre-releases only when the spec
/// names one or the pin is a pre-release of the same x.y.z; versions whose
/// kubeVersion excludes the cluster are held back (still the latest overall).
fn expected(chart: &Value, kube: &Version) -> Expected {
    let spec = Constraint::parse(chart["spec"].as_str().unwrap()).unwrap();
    let mut versions: Vec<Version> = chart["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| v(x.as_str().unwrap()))
        .collect();
    versions.sort();
    versions.reverse();
    let deprecated: BTreeSet<String> = chart["deprecated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let is_dep = |x: &Version| deprecated.iter().any(|d| &v(d) == x);
    let kube_req: BTreeMap<String, String> = chart["kubeVersion"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string()))
        .collect();
    let kube_ok = |x: &Version| {
        kube_req
            .iter()
            .find(|(k, _)| &v(k) == x)
            .is_none_or(|(_, req)| Constraint::parse(req).unwrap().matches_with(kube, true))
    };
    let current = match spec.exact() {
        Some(p) => p.clone(),
        None => versions.iter().find(|x| spec.matches(x)).unwrap().clone(),
    };
    let pre_ok = |x: &Version| {
        !x.is_prerelease()
            || spec.matches(x)
            || (current.is_prerelease()
                && (current.major(), current.minor(), current.patch())
                    == (x.major(), x.minor(), x.patch()))
    };
    let newer: Vec<&Version> = versions
        .iter()
        .filter(|x| **x > current && pre_ok(x))
        .collect();
    Expected {
        latest: versions.iter().find(|x| !is_dep(x) && pre_ok(x)).cloned(),
        latest_allowed: versions
            .iter()
            .find(|x| spec.matches(x) && !is_dep(x) && kube_ok(x))
            .cloned(),
        candidates: newer
            .iter()
            .filter(|x| !is_dep(x) && kube_ok(x))
            .map(|x| (*x).clone())
            .collect(),
        held_back: newer
            .iter()
            .filter(|x| !is_dep(x) && !kube_ok(x))
            .map(|x| (*x).clone())
            .collect(),
        deprecated_newer: newer
            .iter()
            .filter(|x| is_dep(x))
            .map(|x| (*x).clone())
            .collect(),
        current,
    }
}

fn opt_version(x: &Value) -> Option<Version> {
    x.as_str().map(v)
}

#[test]
fn every_case_of_the_n200_fixture() {
    let Some(manifest) = build_fixture() else {
        return;
    };
    let _stop = StopServer;
    let gitops = PathBuf::from(manifest["gitops"].as_str().unwrap());
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_detect-charts"))
        .args([
            "--gitops",
            gitops.to_str().unwrap(),
            "--kubernetes-version",
            KUBERNETES,
        ])
        .arg("--cache-dir")
        .arg(cache.path())
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env_remove("UPKEEP_CONFIG")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let charts = manifest["charts"].as_array().unwrap();
    assert_eq!(docs.len(), charts.len());
    let kube = v(KUBERNETES);
    let mut cases = BTreeSet::new();
    for chart in charts {
        let name = chart["name"].as_str().unwrap();
        let d = docs
            .iter()
            .find(|d| d["component"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} not found"));
        let e = expected(chart, &kube);
        let ctx = format!("{name} ({}, spec {})", chart["case"], chart["spec"]);
        // Where it was read: the file of the manifest, the line of `version:`.
        let file = chart["file"].as_str().unwrap();
        assert_eq!(d["observed"][0]["path"], file, "{ctx}");
        let text = std::fs::read_to_string(gitops.join(file)).unwrap();
        let line = d["observed"][0]["line"].as_u64().unwrap() as usize;
        let at = text.lines().nth(line - 1).unwrap();
        assert!(
            at.trim_start().starts_with("version:") && at.contains(chart["spec"].as_str().unwrap()),
            "{ctx}: line {line} is {at:?}"
        );
        assert_eq!(d["component"]["namespace"], name, "{ctx}");
        assert_eq!(d["component"]["source"]["url"], manifest["url"], "{ctx}");
        assert_eq!(d["component"]["source"]["type"], "helm-http", "{ctx}");
        assert_eq!(d["current"]["constraint"], chart["spec"], "{ctx}");
        assert_eq!(
            v(d["current"]["version"].as_str().unwrap()),
            e.current,
            "{ctx}"
        );
        assert_eq!(opt_version(&d["latest"]), e.latest, "{ctx}: latest");
        assert_eq!(
            opt_version(&d["latestAllowed"]),
            e.latest_allowed,
            "{ctx}: latestAllowed"
        );
        let got: Vec<Version> = d["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| v(c["version"].as_str().unwrap()))
            .collect();
        assert_eq!(got, e.candidates, "{ctx}: candidates");
        for c in d["candidates"].as_array().unwrap() {
            let cv = v(c["version"].as_str().unwrap());
            // 0.x: a minor step is breaking (major); otherwise semver's parts.
            let want = if cv.major() != e.current.major()
                || (e.current.major() == 0 && cv.minor() != e.current.minor())
            {
                "major"
            } else if cv.minor() != e.current.minor() {
                "minor"
            } else {
                "patch"
            };
            assert_eq!(c["update"], want, "{ctx}: {cv}");
            assert_eq!(
                c["allowed"],
                Constraint::parse(chart["spec"].as_str().unwrap())
                    .unwrap()
                    .matches(&cv),
                "{ctx}: {cv}"
            );
        }
        let findings: Vec<&Value> = d["findings"].as_array().unwrap().iter().collect();
        let message = |code: &str| {
            findings
                .iter()
                .find(|f| f["code"] == code)
                .map(|f| f["message"].as_str().unwrap().to_string())
        };
        match message("held-back-kubernetes") {
            Some(m) => {
                assert!(!e.held_back.is_empty(), "{ctx}: unexpected {m}");
                for h in &e.held_back {
                    assert!(m.contains(&h.to_string()), "{ctx}: {m}");
                }
                cases.insert("held back by kubeVersion");
            }
            None => assert!(
                e.held_back.is_empty(),
                "{ctx}: {:?} not reported held back",
                e.held_back
            ),
        }
        match message("deprecated-skipped") {
            Some(m) => {
                for h in &e.deprecated_newer {
                    assert!(m.contains(&h.to_string()), "{ctx}: {m}");
                }
                cases.insert("deprecated skipped");
            }
            None => assert!(e.deprecated_newer.is_empty(), "{ctx}"),
        }
        assert!(d["errors"].as_array().unwrap().is_empty(), "{ctx}");
        cases.insert(chart["case"].as_str().unwrap());
    }
    // The fixture really exercised what it claims to.
    assert!(cases.contains("held back by kubeVersion") && cases.contains("deprecated skipped"));
    assert!(cases.len() >= 20, "{cases:?}");
}
