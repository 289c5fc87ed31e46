//! The index parser on real repository indexes from ../shared/realdata.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use upkeep_helm::{Charts, parse_index};

fn index_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realdata/helm/index");
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

/// Counts `- ... version:`-bearing entries the dumb way: lines of the form
/// `  - ` that start a list item directly under a chart name.
fn count_entries(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("  - ")).count()
}

#[test]
fn grafana_every_version() {
    let Some(dir) = index_dir() else { return };
    let bytes = std::fs::read(dir.join("grafana-helm-charts__gh-pages__index.yaml")).unwrap();
    let idx = parse_index(&bytes, Charts::All).unwrap();
    let total: usize = idx.entries.values().map(Vec::len).sum();
    assert_eq!(total, count_entries(std::str::from_utf8(&bytes).unwrap()));
    assert_eq!(total, 3591);
    let loki = &idx.entries["loki"];
    assert!(
        loki.iter()
            .all(|v| v.parsed.is_some() && !v.urls.is_empty())
    );
    // Filtering keeps only what was asked for, with the same content.
    let want: BTreeSet<String> = ["loki".to_string()].into();
    let only = parse_index(&bytes, Charts::Only(&want)).unwrap();
    assert_eq!(only.entries.len(), 1);
    assert_eq!(&only.entries["loki"], loki);
}

#[test]
fn renovate_edge_cases() {
    let Some(dir) = index_dir() else { return };
    let dir = dir.join("renovate-fixtures");
    let blank = parse_index(
        &std::fs::read(dir.join("index_blank-digest.yaml")).unwrap(),
        Charts::All,
    )
    .unwrap();
    let v = &blank.entries["blank-digest"][0];
    assert_eq!(v.version, "3.2.1");
    assert_eq!(v.digest, None);
    assert_eq!(v.urls, vec!["charts/blank-digest-3.2.1.tgz".to_string()]);
    let empty = parse_index(
        &std::fs::read(dir.join("index_emptypackage.yaml")).unwrap(),
        Charts::All,
    )
    .unwrap();
    assert!(empty.entries["aerospike"].is_empty());
    assert_eq!(
        empty.entries["ambassador"][0].app_version.as_deref(),
        Some("0.70.1")
    );
    let big = std::fs::read(dir.join("index.yaml")).unwrap();
    let idx = parse_index(&big, Charts::All).unwrap();
    let deprecated = idx
        .entries
        .values()
        .flatten()
        .filter(|v| v.deprecated)
        .count();
    let expected = std::str::from_utf8(&big)
        .unwrap()
        .lines()
        .filter(|l| l.trim() == "deprecated: true")
        .count();
    assert_eq!(deprecated, expected);
    assert!(deprecated > 0);
}

/// Parsing only the charts asked for (the fast path) gives exactly what
/// the whole parse gives, for every chart of every real index.
#[test]
fn every_chart_alone_matches_the_whole_parse() {
    let Some(dir) = index_dir() else { return };
    for file in [
        "grafana-helm-charts__gh-pages__index.yaml",
        "argoproj-argo-helm__gh-pages__index.yaml",
        "longhorn-charts__gh-pages__index.yaml",
        "renovate-fixtures/index.yaml",
        "renovate-fixtures/sample.yaml",
        "renovate-fixtures/index_emptypackage.yaml",
        "renovate-fixtures/index_blank-digest.yaml",
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let whole = parse_index(&bytes, Charts::All).unwrap();
        assert!(!whole.entries.is_empty(), "{file}");
        for (name, versions) in &whole.entries {
            let want: BTreeSet<String> = [name.clone()].into();
            let alone = parse_index(&bytes, Charts::Only(&want)).unwrap();
            assert_eq!(alone.entries.len(), 1, "{file}: {name}");
            assert_eq!(&alone.entries[name], versions, "{file}: {name}");
        }
    }
}
