use std::path::{Path, PathBuf};

use upkeep_contract::{ComponentKind, Source, SourceType};
use upkeep_kube::FileSource;

use super::*;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml") {
            out.push(p);
        }
    }
}

/// The homelab fixture (and `extra` files), read as `--cluster-dump` reads files.
fn homelab(extra: &[&str]) -> Vec<Value> {
    let mut files = Vec::new();
    yaml_files(&workspace().join("testdata/clusters/homelab"), &mut files);
    files.extend(extra.iter().map(|f| workspace().join(f)));
    let src = FileSource::load(&files).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(read_all(&src))
        .unwrap()
}

fn comp(kind: ComponentKind, name: &str, ns: Option<&str>, chart: Option<&str>) -> Component {
    Component {
        kind,
        name: name.to_string(),
        namespace: ns.map(str::to_string),
        source: chart.map(|c| Source {
            source_type: SourceType::HelmHttp,
            url: String::new(),
            chart: Some(c.to_string()),
        }),
    }
}

fn update(component: Component, from: &str, to: &str, u: UpdateType) -> Update {
    Update {
        component,
        from: Version::parse(from).unwrap(),
        to: Version::parse(to).unwrap(),
        update: u,
        blockers: Vec::new(),
        notes: Vec::new(),
    }
}

fn names(u: &UpdateImpact, kind: &str) -> Vec<String> {
    u.affected
        .iter()
        .filter(|a| a.object.kind == kind)
        .map(|a| {
            format!(
                "{}/{}",
                a.object.namespace.as_deref().unwrap_or(""),
                a.object.name
            )
        })
        .collect()
}

#[test]
fn a_longhorn_update_touches_exactly_the_workloads_on_longhorn_volumes() {
    let objects = homelab(&[]);
    let u = update(
        comp(ComponentKind::Longhorn, "longhorn", None, None),
        "v1.9.0",
        "v1.10.2",
        UpdateType::Minor,
    );
    let now = Timestamp::parse("2026-11-28T04:00:00Z").unwrap();
    let out = analyze(
        &[u],
        &Inputs {
            objects,
            gitops: None,
            now: Some(now),
            ..Inputs::default()
        },
    );
    let i = &out[0];
    // Every workload of the fixture that mounts a Longhorn claim, and nothing else.
    let mut workloads: Vec<String> = i
        .affected
        .iter()
        .filter(|a| WORKLOADS.contains(&a.object.kind.as_str()) || a.object.kind == "Pod")
        .map(|a| {
            format!(
                "{} {}/{}",
                a.object.kind,
                a.object.namespace.as_deref().unwrap(),
                a.object.name
            )
        })
        .collect();
    workloads.sort();
    assert_eq!(
        workloads,
        [
            "Deployment home/paperless",
            "Deployment home/vaultwarden",
            "Deployment media/jellyfin"
        ]
    );
    assert_eq!(names(i, "PersistentVolumeClaim").len(), 3);
    assert_eq!(i.storage.len(), 3);
    let jf = i
        .storage
        .iter()
        .find(|v| v.claim.name == "jellyfin-data")
        .unwrap();
    assert_eq!(jf.volume, "pvc-cf0b7646-deb7-7550-10cb-b48c33f1afbe");
    assert_eq!(jf.robustness.as_deref(), Some("healthy"));
    assert_eq!(jf.workloads[0].name, "jellyfin");
    // A minor of a one-way component without fresh backups is high risk, and says what to do.
    assert!(i.storage.iter().all(|v| v.last_backup.is_none()));
    assert_eq!(i.risk, Risk::High);
    assert!(
        i.recommendations
            .iter()
            .any(|r| r.as_str().contains("no Longhorn backup")
                && r.as_str().contains("jellyfin-data")),
        "{:?}",
        i.recommendations
    );
    assert!(i.breaking.is_empty());
}

#[test]
fn a_kubernetes_minor_lists_removed_apis_from_git_and_managed_fields() {
    let objects = homelab(&["testdata/impact/removed-apis.yaml"]);
    let tree = upkeep_gitops::scan(&workspace().join("testdata/impact/gitops")).unwrap();
    let u = update(
        comp(ComponentKind::K3s, "k3s", None, None),
        "v1.31.4+k3s1",
        "v1.32.11+k3s3",
        UpdateType::Minor,
    );
    let out = analyze(
        &[u],
        &Inputs {
            objects,
            gitops: Some(&tree),
            now: None,
            ..Inputs::default()
        },
    );
    let i = &out[0];
    let mut found: Vec<(String, String)> = i
        .breaking
        .iter()
        .map(|f| {
            let at = match &f.locations[0] {
                upkeep_contract::Location::Gitops { path, line, .. } => {
                    format!("{path}:{}", line.unwrap())
                }
                upkeep_contract::Location::Cluster { object, .. } => {
                    format!("{} {}", object.kind, object.name)
                }
                other => format!("{other:?}"),
            };
            (f.code.clone(), at)
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (
                "removed-api-in-git".to_string(),
                "flowcontrol.yaml:3".to_string()
            ),
            (
                "removed-api-in-managed-fields".to_string(),
                "FlowSchema longhorn-manager".to_string()
            ),
        ]
    );
    let mf = i
        .breaking
        .iter()
        .find(|f| f.code == "removed-api-in-managed-fields")
        .unwrap();
    assert!(
        mf.message.as_str().contains("helm-controller")
            && mf.message.as_str().contains("v1beta3")
            && mf.message.as_str().contains("v1.32"),
        "{}",
        mf.message
    );
    assert_eq!(i.risk, Risk::High);
    // The hop touches every node and drains every workload but DaemonSets.
    // The three k3s servers (the fixture's other Nodes are Longhorn's).
    assert_eq!(names(i, "Node").len(), 3);
    assert!(
        i.affected
            .iter()
            .any(|a| a.object.kind == "Deployment" && a.restarts)
    );
    assert!(
        i.affected
            .iter()
            .any(|a| a.object.kind == "DaemonSet" && !a.restarts)
    );
}

#[test]
fn ingress_nginx_reaches_its_ingresses_and_their_backends() {
    let objects = homelab(&[]);
    let u = update(
        comp(
            ComponentKind::Chart,
            "ingress-nginx",
            Some("ingress-nginx"),
            Some("ingress-nginx"),
        ),
        "4.11.3",
        "4.11.5",
        UpdateType::Patch,
    );
    let out = analyze(
        &[u],
        &Inputs {
            objects,
            gitops: None,
            now: None,
            ..Inputs::default()
        },
    );
    let i = &out[0];
    let mut ingresses = names(i, "Ingress");
    ingresses.sort();
    assert_eq!(ingresses.len(), 4, "{ingresses:?}");
    assert!(names(i, "IngressClass").len() == 1);
    assert!(
        names(i, "Service").iter().any(|s| s == "media/jellyfin"),
        "{:?}",
        names(i, "Service")
    );
    let text = render_text(&report(out.clone(), None, None));
    assert!(text.contains("Ingress media/jellyfin"), "{text}");
}

#[test]
fn report_hops_become_updates_with_their_blockers() {
    let r: upkeep_contract::UpdateReport = serde_json::from_value(serde_json::json!({
        "apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
        "generatedAt": "2026-11-28T04:00:00Z",
        "summary": {"components": 2, "withUpdates": 2, "patch": 0, "minor": 2, "major": 0,
                    "security": 0, "breaking": 0, "blocked": 1, "errors": 0},
        "components": [
            {"apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
             "component": {"kind": "chart", "name": "podinfo", "namespace": "podinfo"},
             "current": {"version": "6.7.1"},
             "candidates": [{"version": "6.8.0", "update": "minor", "allowed": true}],
             "checkedAt": "2026-11-28T04:00:00Z"},
            {"apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
             "component": {"kind": "flux", "name": "flux"},
             "current": {"version": "v2.5.1"},
             "candidates": [{"version": "v2.6.0", "update": "minor", "allowed": true}],
             "path": [{"from": "v2.5.1", "to": "v2.6.0", "update": "minor",
                       "blockers": [{"severity": "blocking", "code": "removed-api",
                                     "message": "HelmRelease apps/web uses v2beta1", "locations": []}]}],
             "checkedAt": "2026-11-28T04:00:00Z"}
        ]
    }))
    .unwrap();
    let ups = from_report(&r);
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[0].to.to_string(), "6.8.0");
    assert!(ups[0].blockers.is_empty());
    assert_eq!(ups[1].to.to_string(), "v2.6.0");
    assert_eq!(ups[1].blockers[0].code, "removed-api");
    // Carried into the impact, which makes it high risk.
    let out = analyze(&ups[1..], &Inputs::default());
    assert_eq!(out[0].breaking[0].code, "removed-api");
    assert_eq!(out[0].risk, Risk::High);
}

#[test]
fn release_note_requirements_of_every_version_crossed_become_recommendations() {
    let r: upkeep_contract::UpdateReport = serde_json::from_value(serde_json::json!({
        "apiVersion": "upkeep.dev/v1alpha1", "kind": "UpdateReport",
        "generatedAt": "2026-11-28T04:00:00Z",
        "summary": {"components": 1, "withUpdates": 1, "patch": 0, "minor": 1, "major": 0,
                    "security": 0, "breaking": 1, "blocked": 0, "errors": 0},
        "components": [
            {"apiVersion": "upkeep.dev/v1alpha1", "kind": "ComponentUpdates",
             "component": {"kind": "longhorn", "name": "longhorn"},
             "current": {"version": "v1.11.2"},
             "candidates": [
                {"version": "v1.12.1", "update": "minor", "allowed": true,
                 "breaking": {"reasons": ["a later note"]}},
                {"version": "v1.12.0", "update": "minor", "allowed": true,
                 "breaking": {"reasons": ["V2 volumes created from backing images must be migrated before upgrading"]}},
                {"version": "v1.11.2", "update": "patch", "allowed": true,
                 "breaking": {"reasons": ["the version running now"]}}],
             "path": [{"from": "v1.11.2", "to": "v1.12.0", "update": "minor"}],
             "checkedAt": "2026-11-28T04:00:00Z"}
        ]
    }))
    .unwrap();
    let ups = from_report(&r);
    assert_eq!(ups[0].notes.len(), 1, "only (from, to] counts");
    let out = analyze(&ups, &Inputs::default());
    let recs: Vec<&str> = out[0].recommendations.iter().map(|r| r.as_str()).collect();
    assert!(
        recs.contains(
            &"the release notes of v1.12.0 say: V2 volumes created from backing images must be migrated before upgrading"
        ),
        "{recs:?}"
    );
}
