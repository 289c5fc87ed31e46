//! detect-charts on real homelab repositories from ../shared/realdata,
//! offline with an empty cache: every HelmRelease is found and resolved,
//! and each reports the missing index instead of failing the run.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn realdata() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realdata");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} is absent (real data is not in a user's clone)",
            p.display()
        );
        None
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out
}

/// `kind: HelmRelease` lines, counted the way grep would.
fn count_helmreleases(dir: &Path) -> usize {
    yaml_files(dir)
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter(|l| l.trim_end() == "kind: HelmRelease")
                .count()
        })
        .sum()
}

/// Every `url:` value in files that declare a HelmRepository.
fn helm_repository_urls(dir: &Path) -> Vec<String> {
    yaml_files(dir)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|t| t.contains("kind: HelmRepository"))
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| {
                    l.trim()
                        .strip_prefix("url:")
                        .map(|u| u.trim().trim_matches('"').to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn run_offline(dir: &Path) -> (Option<i32>, Vec<Value>) {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_detect-charts"))
        .arg("--gitops")
        .arg(dir)
        .arg("--offline")
        .arg("--cache-dir")
        .arg(cache.path())
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env_remove("UPKEEP_CONFIG")
        .output()
        .unwrap();
    let docs = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code(), docs)
}

/// The document's version field, read back from the file at the line it names.
fn check_pinned(dir: &Path, d: &Value) {
    let o = &d["observed"][0];
    let text = std::fs::read_to_string(dir.join(o["path"].as_str().unwrap())).unwrap();
    let line = text
        .lines()
        .nth(o["line"].as_u64().unwrap() as usize - 1)
        .unwrap();
    let written = line
        .trim()
        .strip_prefix("version:")
        .unwrap_or_else(|| panic!("{o}: {line:?}"));
    assert_eq!(
        written.trim().trim_matches('"'),
        d["current"]["constraint"].as_str().unwrap(),
        "{o}"
    );
    assert!(d["current"]["version"].is_string(), "{d}");
    let chart = d["component"]["source"]["chart"].as_str().unwrap();
    assert!(
        text.contains(&format!("chart: {chart}")),
        "{o}: chart {chart}"
    );
}

#[test]
fn billimek_58_releases_offline() {
    let Some(data) = realdata() else { return };
    let dir = data.join("gitops/billimek__k8s-gitops");
    let (code, docs) = run_offline(&dir);
    assert_eq!(code, Some(3));
    assert_eq!(docs.len(), count_helmreleases(&dir));
    assert_eq!(docs.len(), 58);
    let urls = helm_repository_urls(&dir);
    for d in &docs {
        check_pinned(&dir, d);
        let url = d["component"]["source"]["url"].as_str().unwrap();
        assert!(
            urls.iter().any(|u| u == url),
            "{url} is not a HelmRepository url"
        );
        let err = d["errors"][0]["message"].as_str().unwrap();
        assert!(
            err.contains("offline") && err.contains("not in the cache"),
            "{err}"
        );
        let t = d["component"]["source"]["type"].as_str().unwrap();
        assert_eq!(t == "helm-oci", url.starts_with("oci://"), "{d}");
    }
}

#[test]
fn cluster_template_13_releases_one_from_git() {
    let Some(data) = realdata() else { return };
    let dir = data.join("gitops/onedr0p__flux-cluster-template/kubernetes");
    let (code, docs) = run_offline(&dir);
    assert_eq!(code, Some(3));
    assert_eq!(docs.len(), count_helmreleases(&dir));
    assert_eq!(docs.len(), 13);
    let urls = helm_repository_urls(&dir);
    let (git, helm): (Vec<&Value>, Vec<&Value>) = docs
        .iter()
        .partition(|d| d["component"]["source"]["type"] == "git");
    assert_eq!(git.len(), 1);
    let g = git[0];
    assert!(g["errors"].as_array().unwrap().is_empty());
    assert_eq!(g["findings"][0]["code"], "not-checkable");
    assert!(
        g["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("GitRepository")
    );
    for d in helm {
        check_pinned(&dir, d);
        assert!(
            urls.iter()
                .any(|u| u == d["component"]["source"]["url"].as_str().unwrap())
        );
        assert!(
            d["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("offline")
        );
    }
}
