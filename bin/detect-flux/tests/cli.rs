//! detect-flux as a user runs it: the built binary against sim-upstream and
//! the real GitOps repositories of ../shared/realdata.

// One copy of the test harness serves the three platform detectors.
#[path = "../../detect-k3s/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_detect-flux");

/// (path, line) of every top-level `apiVersion:` line on one of `apis`,
/// counted by reading the files, not through upkeep-gitops.
fn api_lines(root: &Path, apis: &[&str]) -> BTreeSet<(String, u64)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
                continue;
            }
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            for (i, line) in std::fs::read_to_string(&p).unwrap().lines().enumerate() {
                if let Some(v) = line.strip_prefix("apiVersion:")
                    && apis.contains(&v.trim().trim_matches(['"', '\'']))
                {
                    out.insert((rel.clone(), i as u64 + 1));
                }
            }
        }
    }
    out
}

/// The (path, line) of each removed-api blocker of the hop to `v2.MINOR`.
fn blockers(doc: &serde_json::Value, minor: &str) -> BTreeSet<(String, u64)> {
    let hop = doc["path"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            h["to"]
                .as_str()
                .unwrap()
                .starts_with(&format!("v2.{minor}."))
        })
        .unwrap_or_else(|| panic!("no hop to v2.{minor}"));
    hop["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["code"] == "removed-api")
        .map(|b| {
            assert_eq!(b["severity"], "blocking");
            let loc = &b["locations"][0];
            assert_eq!(loc["from"], "gitops");
            (
                loc["path"].as_str().unwrap().to_string(),
                loc["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn billimek_v251_and_the_objects_flux_28_removes() {
    let Some(repo) = realdata("gitops/billimek__k8s-gitops") else {
        return;
    };
    let sim = Sim::start();
    let (code, doc, _) = run_doc(sim.cmd(BIN).arg("--gitops").arg(&repo));
    assert_eq!(code, 0);
    assert_eq!(doc["current"]["version"], "v2.5.1");
    assert_eq!(
        doc["observed"][0]["path"],
        "flux-system/gotk-components.yaml"
    );
    assert_eq!(doc["observed"][0]["line"], 3);
    let v2beta2 = api_lines(&repo, &["helm.toolkit.fluxcd.io/v2beta2"]);
    assert_eq!(v2beta2.len(), 4, "the repo's four v2beta2 HelmReleases");
    let expected = api_lines(
        &repo,
        &[
            "helm.toolkit.fluxcd.io/v2beta2",
            "source.toolkit.fluxcd.io/v1beta2",
            "kustomize.toolkit.fluxcd.io/v1beta2",
        ],
    );
    let got = blockers(&doc, "8");
    assert_eq!(got, expected);
    assert!(v2beta2.is_subset(&got));
    assert!(
        got.contains(&("flux-system/gotk-sync.yaml".to_string(), 2)),
        "the GitRepository"
    );
}

#[test]
fn cluster_template_v0412_and_its_v2beta1_objects() {
    let Some(repo) = realdata("gitops/onedr0p__flux-cluster-template/kubernetes") else {
        return;
    };
    let sim = Sim::start();
    let (code, doc, _) = run_doc(sim.cmd(BIN).arg("--gitops").arg(&repo));
    assert_eq!(code, 0);
    assert_eq!(doc["current"]["version"], "v0.41.2");
    assert_eq!(doc["observed"][0]["path"], "bootstrap/kustomization.yaml");
    let v2beta1 = api_lines(&repo, &["helm.toolkit.fluxcd.io/v2beta1"]);
    assert_eq!(v2beta1.len(), 13, "13 HelmReleases on v2beta1");
    let got = blockers(&doc, "7");
    assert!(v2beta1.is_subset(&got), "{got:?}");
    let all_removed_in_27 = api_lines(
        &repo,
        &[
            "helm.toolkit.fluxcd.io/v2beta1",
            "source.toolkit.fluxcd.io/v1beta1",
            "kustomize.toolkit.fluxcd.io/v1beta1",
            "image.toolkit.fluxcd.io/v1beta1",
            "notification.toolkit.fluxcd.io/v1beta1",
        ],
    );
    assert_eq!(got, all_removed_in_27);
}

#[test]
fn kubernetes_version_out_of_range_blocks_and_yaml_output() {
    let sim = Sim::start();
    let (code, doc, _) =
        run_doc(
            sim.cmd(BIN)
                .args(["--current", "v2.7.0", "--kubernetes-version", "v1.32.5"]),
        );
    assert_eq!(code, 0);
    let blocked: Vec<&str> = doc["path"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["blockers"]
                .as_array()
                .is_some_and(|b| b.iter().any(|b| b["code"] == "kubernetes-unsupported"))
        })
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    // 2.7 supports 1.32-1.34; 2.8 1.33-1.35; 2.9 1.34-1.36.
    assert_eq!(blocked.len(), 2, "{blocked:?}");
    assert!(blocked[0].starts_with("v2.8.") && blocked[1].starts_with("v2.9."));

    let out = sim
        .cmd(BIN)
        .args(["--current", "v2.7.0", "-o", "yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("---\n"), "{text}");
    assert!(text.contains("kind: ComponentUpdates"));
}

#[test]
fn stored_versions_in_the_cluster_block_their_hop() {
    let sim = Sim::start();
    let (code, doc, _) = run_doc(
        sim.cmd(BIN)
            .arg("--cluster-dump")
            .arg(cluster("flux-v2.5-stored-versions.json")),
    );
    assert_eq!(code, 0);
    assert_eq!(doc["current"]["version"], "v2.5.1");
    let hop8 = doc["path"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["to"].as_str().unwrap().starts_with("v2.8."))
        .unwrap();
    let stored: Vec<&str> = hop8["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["code"] == "removed-api-stored")
        .map(|b| b["locations"][0]["object"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stored,
        [
            "helmreleases.helm.toolkit.fluxcd.io",
            "helmrepositories.source.toolkit.fluxcd.io"
        ]
    );
}

#[test]
fn stable_target_and_bad_flags_are_usage_errors() {
    let sim = Sim::start();
    assert_usage_error(
        sim.cmd(BIN)
            .args(["--current", "v2.5.1", "--target", "stable"]),
        "no stable channel",
    );
    assert_usage_error(
        sim.cmd(BIN)
            .args(["--current", "v2.5.1", "--kubernetes-version", "latest"]),
        "--kubernetes-version",
    );
    assert_usage_error(
        sim.cmd(BIN).args(["--gitops", "/nonexistent/checkout"]),
        "/nonexistent/checkout",
    );
}
