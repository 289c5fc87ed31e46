//! Tests on real release-note text: the bodies of testdata/upstream (always
//! present) and, when available, the raw files of ../shared/realdata.

use std::path::PathBuf;

use super::*;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The body of release `tag` of `owner/repo` in the committed fixture.
fn body(repo: &str, tag: &str) -> String {
    let path = workspace().join(format!("testdata/upstream/github/{repo}/releases.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let releases: serde_json::Value = serde_json::from_str(&text).unwrap();
    releases
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tag_name"] == tag)
        .unwrap_or_else(|| panic!("{tag} not in {}", path.display()))["body"]
        .as_str()
        .unwrap()
        .to_string()
}

fn realdata(rel: &str) -> Option<String> {
    let path = workspace().join("../shared/realdata").join(rel);
    match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(_) => {
            eprintln!(
                "skipping: {} is absent (../shared/realdata is not part of a clone)",
                path.display()
            );
            None
        }
    }
}

#[test]
fn k3s_cve_ids_from_notes() {
    assert_eq!(
        security_ids(&body("k3s-io/k3s", "v1.29.1+k3s2")),
        ["CVE-2024-21626", "CVE-2023-49295"]
    );
    assert_eq!(
        security_ids(&body("k3s-io/k3s", "v1.29.3+k3s1")),
        ["CVE-2023-45142", "CVE-2023-48795"]
    );
    let s = security(&body("k3s-io/k3s", "v1.32.4+k3s1")).unwrap();
    assert_eq!(s.ids, ["CVE-2025-30215"]);
    assert!(
        s.summary.unwrap().as_str().contains("nats-server"),
        "summary is the line naming the id"
    );
}

#[test]
fn security_fix_without_id_has_a_summary() {
    // "addressing several CVEs in busybox and coreutils", no id.
    let s = security(&body("k3s-io/k3s", "v1.31.0+k3s1")).unwrap();
    assert!(s.ids.is_empty());
    assert!(s.summary.unwrap().as_str().contains("busybox"));
    // A patch release with nothing about security.
    assert_eq!(security(&body("k3s-io/k3s", "v1.31.9+k3s1")), None);
}

#[test]
fn ghsa_ids_are_normalised_and_deduplicated() {
    let text =
        "Fixes GHSA-H9CX-xjg6-5v2w and CVE-2026-40109 (cve-2026-40109 again, GHSA-h9cx-xjg6-5v2w).";
    assert_eq!(
        security_ids(text),
        ["GHSA-h9cx-xjg6-5v2w", "CVE-2026-40109"]
    );
    // Unicode case folding ("ſ" for "s") must not split a character.
    assert_eq!(security_ids("GHſA-h9cx-xjg6-5v2w"), ["GHSA-h9cx-xjg6-5v2w"]);
    // Not a GHSA: wrong alphabet (no 'a' or 'b' allowed) and wrong length.
    assert!(security_ids("GHSA-abcd-efgh-ijkl GHSA-12-34-56").is_empty());
    let flux = body("fluxcd/flux2", "v2.9.0");
    let ids = security_ids(&flux);
    assert!(ids.contains(&"CVE-2026-40109".to_string()), "{ids:?}");
    assert!(ids.contains(&"GHSA-h9cx-xjg6-5v2w".to_string()), "{ids:?}");
}

#[test]
fn security_heading_gives_the_summary() {
    let text = "## Highlights\nNew things.\n\n## Security Fixes\n\nFixed a token leak in the webhook receiver.\n\n## Other\n";
    let s = security(text).unwrap();
    assert!(s.ids.is_empty());
    assert_eq!(
        s.summary.unwrap().as_str(),
        "Security Fixes: Fixed a token leak in the webhook receiver."
    );
}

#[test]
fn k3s_minor_release_upgrade_notice_is_breaking() {
    let b = breaking(&body("k3s-io/k3s", "v1.30.0+k3s1")).unwrap();
    assert!(
        b.reasons[0]
            .as_str()
            .starts_with("Upgrade Notice: Before upgrading"),
        "{:?}",
        b.reasons
    );
    assert!(b.reasons[0].as_str().contains("Urgent Upgrade Notes"));
    // Changelog bullets ("Remove deprecated `pod-infra-container-image` kubelet
    // flag") are not reasons of their own.
    assert!(
        b.reasons
            .iter()
            .all(|r| !r.as_str().contains("pod-infra-container-image")),
        "{:?}",
        b.reasons
    );
}

#[test]
fn k3s_patch_release_without_notice_is_not_breaking() {
    // Its changelog says "Remove failing Drone step", which is no upgrade hazard.
    assert_eq!(breaking(&body("k3s-io/k3s", "v1.29.2+k3s1")), None);
    assert_eq!(breaking(&body("k3s-io/k3s", "v1.31.9+k3s1")), None);
}

#[test]
fn k3s_upgrade_warning_and_intro_removals_are_breaking() {
    let b = breaking(&body("k3s-io/k3s", "v1.32.11+k3s3")).unwrap();
    assert!(
        b.reasons
            .iter()
            .any(|r| r.as_str().starts_with("K3s v1.34 Upgrade Warning:")),
        "{:?}",
        b.reasons
    );
    let b = breaking(&body("k3s-io/k3s", "v1.29.0+k3s1")).unwrap();
    assert!(
        b.reasons
            .iter()
            .any(|r| r.as_str().contains("removes the experimental rotate-keys")),
        "{:?}",
        b.reasons
    );
    let b = breaking(&body("k3s-io/k3s", "v1.36.2+k3s1")).unwrap();
    assert!(
        b.reasons.iter().any(|r| r.as_str().contains("Traefik")),
        "{:?}",
        b.reasons
    );
}

#[test]
fn flux_breaking_sections_and_alerts() {
    let b = breaking(&body("fluxcd/flux2", "v2.9.0")).unwrap();
    let all: Vec<&str> = b.reasons.iter().map(|r| r.as_str()).collect();
    assert!(
        all.iter()
            .any(|r| r.contains("post-render strategy has changed")),
        "{all:?}"
    );
    // The sentence that announces the removed APIs carries the list.
    assert!(
        all.iter().any(|r| r.contains("removed from the CRDs: image.toolkit.fluxcd.io/v1beta2, notification.toolkit.fluxcd.io/v1beta2")),
        "{all:?}"
    );
    // "## Breaking changes" has nothing of its own under it: not a reason.
    assert!(!all.contains(&"Breaking changes"), "{all:?}");
    assert!(all.len() <= MAX_REASONS);
    assert!(all.iter().all(|r| r.chars().count() <= REASON_MAX_CHARS));
    // A patch release with only highlights and tables is not breaking.
    assert_eq!(breaking(&body("fluxcd/flux2", "v2.8.1")), None);
}

#[test]
fn longhorn_removal_and_deprecation_headings() {
    // A heading alone is kept when nothing else is found.
    assert_eq!(
        breaking("## Breaking changes\n\n## Fixes\n- x\n")
            .unwrap()
            .reasons[0]
            .as_str(),
        "Breaking changes"
    );
    let b = breaking(&body("longhorn/longhorn", "v1.12.0")).unwrap();
    assert!(
        b.reasons.iter().any(|r| r
            .as_str()
            .starts_with("V2 Backing Image Removal: V2 Backing Images are removed")),
        "{:?}",
        b.reasons
    );
    // "[IMPROVEMENT] sparse-tools APIs must not introduce breaking changes"
    // is a resolved-issue title, not a breaking change.
    assert!(
        b.reasons
            .iter()
            .all(|r| !r.as_str().contains("sparse-tools")),
        "{:?}",
        b.reasons
    );
    let b = breaking(&body("longhorn/longhorn", "v1.12.1")).unwrap();
    assert!(
        b.reasons.iter().all(|r| r.as_str() != "Breaking Changes"),
        "a bare heading is no reason when its subsections give them: {:?}",
        b.reasons
    );
    assert!(
        b.reasons.iter().any(|r| r
            .as_str()
            .starts_with("Deprecation of Legacy V2 Linked Clone Volumes")),
        "{:?}",
        b.reasons
    );
}

#[test]
fn k3s_embedded_component_table() {
    let c = embedded_components(&body("k3s-io/k3s", "v1.29.1+k3s2"));
    let pairs: Vec<(&str, &str)> = c
        .iter()
        .map(|c| (c.name.as_str(), c.version.as_str()))
        .collect();
    assert_eq!(pairs.len(), 12, "{pairs:?}");
    assert_eq!(pairs[0], ("Kubernetes", "v1.29.1"));
    assert!(pairs.contains(&("Traefik", "v2.10.5")));
    assert!(pairs.contains(&("CoreDNS", "v1.10.1")));
    assert!(pairs.contains(&("Containerd", "v1.7.11-k3s2")));
    assert!(pairs.contains(&("Etcd", "v3.5.9-k3s1")));
    assert!(embedded_components(&body("fluxcd/flux2", "v2.8.0")).is_empty());
}

#[test]
fn bundled_changes_between_two_releases() {
    let from = embedded_components(&body("k3s-io/k3s", "v1.29.11+k3s1"));
    let to = embedded_components(&body("k3s-io/k3s", "v1.30.0+k3s1"));
    assert!(!from.is_empty() && !to.is_empty());
    let changes = bundled_changes(&from, &to);
    assert!(changes.iter().all(|c| c.name != "Kubernetes"));
    for c in &changes {
        let old = from.iter().find(|f| f.name == c.name).map(|f| &f.version);
        assert_ne!(old, Some(&c.to), "{c:?} did not change");
    }
    // Unchanged components are not listed; the same table gives nothing.
    assert!(bundled_changes(&to, &to).is_empty());
    // Against nothing, everything but Kubernetes is new.
    assert_eq!(bundled_changes(&[], &to).len(), to.len() - 1);
}

#[test]
fn flux_kubernetes_support_and_removed_apis() {
    let minors = |v: &[MinorVersion]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
    assert_eq!(
        minors(&kubernetes_support(&body("fluxcd/flux2", "v2.8.0"))),
        ["v1.33", "v1.34", "v1.35"]
    );
    // v2.5.0 still carries a Hugo shortcode after its table.
    assert_eq!(
        minors(&kubernetes_support(&body("fluxcd/flux2", "v2.5.0"))),
        ["v1.30", "v1.31", "v1.32"]
    );
    assert!(kubernetes_support(&body("fluxcd/flux2", "v2.4.0")).is_empty());

    assert_eq!(
        removed_apis(&body("fluxcd/flux2", "v2.7.0")),
        [
            "source.toolkit.fluxcd.io/v1beta1",
            "kustomize.toolkit.fluxcd.io/v1beta1",
            "helm.toolkit.fluxcd.io/v2beta1",
            "image.toolkit.fluxcd.io/v1beta1",
            "notification.toolkit.fluxcd.io/v1beta1",
        ]
    );
    assert_eq!(
        removed_apis(&body("fluxcd/flux2", "v2.8.0")),
        [
            "source.toolkit.fluxcd.io/v1beta2",
            "kustomize.toolkit.fluxcd.io/v1beta2",
            "helm.toolkit.fluxcd.io/v2beta2",
        ]
    );
    // v2.9's list of breaking changes after the API list is not read as APIs.
    assert_eq!(
        removed_apis(&body("fluxcd/flux2", "v2.9.0")),
        [
            "image.toolkit.fluxcd.io/v1beta2",
            "notification.toolkit.fluxcd.io/v1beta2",
        ]
    );
    assert!(removed_apis(&body("fluxcd/flux2", "v2.8.1")).is_empty());
    assert!(removed_apis(&body("fluxcd/flux2", "v2.6.0")).is_empty());
}

#[test]
fn longhorn_minimum_kubernetes() {
    let v = |tag: &str| minimum_kubernetes(&body("longhorn/longhorn", tag)).map(|v| v.canonical());
    assert_eq!(v("v1.12.0").as_deref(), Some("1.25.0"));
    assert_eq!(v("v1.10.2").as_deref(), Some("1.25.0"));
    assert_eq!(v("v1.11.3").as_deref(), Some("1.34.0"));
    assert_eq!(v("v1.10.0"), None);
    assert_eq!(
        minimum_kubernetes("Requires Kubernetes >= 1.28").map(|v| v.canonical()),
        Some("1.28.0".to_string())
    );
}

#[test]
fn excerpts_are_sanitised_and_bounded() {
    let hostile = "## Highlights\n\nRelease \u{1b}[31mred\u{1b}[0m with a \u{1b}]8;;http://evil\u{7}link and [docs](https://x).\n";
    let e = excerpt(hostile).unwrap();
    assert_eq!(e.as_str(), "Release red with a link and docs.");
    let long = excerpt(&body("longhorn/longhorn", "v1.12.0")).unwrap();
    assert!(long.as_str().chars().count() <= EXCERPT_MAX_CHARS);
    assert!(long.as_str().starts_with("The Longhorn team is excited"));
    assert_eq!(excerpt("## Only a heading\n\n| a | b |\n"), None);
    // Reasons built from hostile headings are sanitised too.
    let b = breaking("## Breaking \u{1b}[2J changes\nAll \u{9b}31mgone.\n").unwrap();
    assert!(!b.reasons[0].as_str().contains('\u{1b}'));
    assert!(!b.reasons[0].as_str().contains('\u{9b}'));
}

#[test]
fn realdata_k3s_docs_notes() {
    let Some(text) = realdata("releases/k3s/release-notes/v1.29.X.md") else {
        return;
    };
    let ids = security_ids(&text);
    for id in [
        "CVE-2024-21626",
        "CVE-2023-49295",
        "CVE-2023-45142",
        "CVE-2023-48795",
    ] {
        assert!(ids.contains(&id.to_string()), "{id} missing from {ids:?}");
    }
    // The docs' Docusaurus admonition is read as a heading.
    let b = breaking(&text).unwrap();
    assert!(
        b.reasons
            .iter()
            .any(|r| r.as_str().starts_with("Upgrade Notice: Before upgrading")),
        "{:?}",
        b.reasons
    );
}

#[test]
fn realdata_longhorn_changelogs() {
    for (file, min) in [
        ("CHANGELOG-1.10.2.md", "1.25.0"),
        ("CHANGELOG-1.11.3.md", "1.34.0"),
        ("CHANGELOG-1.12.1.md", "1.25.0"),
    ] {
        let Some(text) = realdata(&format!("releases/longhorn/{file}")) else {
            return;
        };
        assert_eq!(
            minimum_kubernetes(&text).map(|v| v.canonical()).as_deref(),
            Some(min),
            "{file}"
        );
    }
}

#[test]
fn flux_components_changelog_is_read_from_the_fixture() {
    let text = body("fluxcd/flux2", "v2.5.1");
    let comps = changelog_components(&text);
    let get = |n: &str| {
        comps
            .iter()
            .find(|c| c.name == n)
            .map(|c| c.version.as_str())
    };
    assert_eq!(get("source-controller"), Some("v1.5.0"));
    assert_eq!(get("kustomize-controller"), Some("v1.5.1"));
    assert_eq!(get("helm-controller"), Some("v1.2.0"));
    // Release notes without the list give nothing.
    assert!(changelog_components("## Highlights\n\n- fixed a bug in v1.2.3\n").is_empty());
    // A list item that is not `name version` is skipped, not misread.
    let odd = "## Components changelog\n\n- see the blog post\n- helm-controller v1.3.0\n";
    assert_eq!(
        changelog_components(odd),
        [ComponentVersion {
            name: "helm-controller".into(),
            version: "v1.3.0".into()
        }]
    );
}

#[test]
fn withdrawn_releases_are_recognised_only_at_the_top() {
    let pulled =
        "## Longhorn v1.7.9\n\n**This release has been withdrawn** because of a data-loss bug.\n";
    let why = withdrawn(pulled).unwrap();
    assert!(why.as_str().contains("withdrawn"), "{why}");
    assert!(withdrawn("> [!WARNING]\n> Do not use this release; upgrade to v1.2.4.\n").is_some());
    // An ordinary release, and a changelog entry far down about something else.
    assert!(withdrawn(&body("fluxcd/flux2", "v2.5.1")).is_none());
    let mut long = String::from("## Changes\n\n");
    for i in 0..10 {
        long.push_str(&format!("- change {i}\n"));
    }
    long.push_str(
        "- Handle a withdrawn release of a dependency\n- this version was yanked upstream\n",
    );
    assert!(withdrawn(&long).is_none());
}
