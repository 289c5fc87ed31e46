//! The three detectors against the in-process sim-upstream (the committed
//! recorded upstream), the constructed cluster dumps in testdata/clusters,
//! and, when present, the real GitOps repositories of ../shared/realdata.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sim_upstream::{SimOptions, SimUpstream};
use upkeep_contract::{ComponentUpdates, Finding, Location, Severity};
use upkeep_http::{BaseUrl, ClientConfig};
use upkeep_platform::{DumpFile, Inputs, Options, Target, flux, k3s, longhorn};
use upkeep_upstream::Upstream;
use upkeep_version::Version;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn realdata(rel: &str) -> Option<PathBuf> {
    let p = workspace().join("../shared/realdata").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} is absent (../shared/realdata is not part of a clone)",
            p.display()
        );
        None
    }
}

fn dump(name: &str) -> DumpFile {
    DumpFile::new(workspace().join("testdata/clusters").join(name))
}

struct Env {
    sim: SimUpstream,
    _cache: tempfile::TempDir,
    upstream: Upstream,
}

async fn env() -> Env {
    let sim = SimUpstream::start(SimOptions::new(sim_upstream::workspace_fixture()))
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let base = sim.base_url();
    let upstream = Upstream::new(
        ClientConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            max_retries: 0,
            ..ClientConfig::default()
        },
        BaseUrl::parse(&base).unwrap(),
        &format!("{base}/v1-release/channels"),
        None,
    )
    .unwrap();
    Env {
        sim,
        _cache: cache,
        upstream,
    }
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn opts(target: &str) -> Options {
    Options {
        target: target.parse().unwrap(),
        include_prereleases: false,
        kubernetes_version: None,
        known_bad: Vec::new(),
    }
}

fn current(s: &str) -> Inputs {
    Inputs {
        current: Some(v(s)),
        ..Inputs::default()
    }
}

fn hops(doc: &ComponentUpdates) -> Vec<String> {
    doc.path.iter().map(|h| h.to.to_string()).collect()
}

fn codes(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.code.as_str()).collect()
}

fn gitops_lines(f: &Finding) -> Vec<(String, u32)> {
    f.locations
        .iter()
        .filter_map(|l| match l {
            Location::Gitops {
                path,
                line: Some(line),
                ..
            } => Some((path.clone(), *line)),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- k3s

#[tokio::test]
async fn k3s_129_to_stable_goes_one_minor_at_a_time() {
    let e = env().await;
    let d = k3s::detect(&e.upstream, &current("v1.29.0+k3s1"), &opts("stable"))
        .await
        .unwrap();
    assert!(!d.upstream_failed, "{:?}", d.document.errors);
    let doc = d.document;
    assert_eq!(
        hops(&doc),
        [
            "v1.29.11+k3s1",
            "v1.30.8+k3s1",
            "v1.31.10+k3s1",
            "v1.32.11+k3s3",
            "v1.33.7+k3s1",
            "v1.34.2+k3s1",
            "v1.35.4+k3s1",
            "v1.36.2+k3s1",
        ]
    );
    // Independently of the list above: each hop moves at most one minor and
    // never down, and the path ends on the stable channel.
    let mut at = v("v1.29.0+k3s1");
    for hop in &doc.path {
        assert_eq!(hop.from, at);
        assert!(hop.to > hop.from);
        assert!(hop.to.minor() - hop.from.minor() <= 1, "{hop:?}");
        assert!(hop.published.is_some(), "{hop:?}");
        at = hop.to.clone();
    }
    assert_eq!(doc.latest_allowed, Some(v("v1.36.2+k3s1")));
    assert_eq!(doc.latest, Some(v("v1.37.1+k3s1")));
    // The first hop crosses v1.29.1+k3s2 and v1.29.3+k3s1 and carries their CVEs.
    let sec = doc.path[0].security.as_ref().unwrap();
    for id in [
        "CVE-2024-21626",
        "CVE-2023-49295",
        "CVE-2023-45142",
        "CVE-2023-48795",
    ] {
        assert!(sec.ids.contains(&id.to_string()), "{id}: {sec:?}");
    }
    // The hop to 1.31 crosses v1.31.8+k3s1 (CVE-2025-30215).
    assert!(
        doc.path[2]
            .security
            .as_ref()
            .unwrap()
            .ids
            .contains(&"CVE-2025-30215".to_string())
    );
    // A minor hop brings the Kubernetes upgrade notice and bundled changes.
    let hop = &doc.path[1];
    assert!(
        hop.breaking
            .as_ref()
            .unwrap()
            .reasons
            .iter()
            .any(|r| r.as_str().contains("Urgent Upgrade Notes"))
    );
    assert!(!hop.bundled.is_empty());
    for b in &hop.bundled {
        assert_ne!(b.from.as_deref(), Some(b.to.as_str()), "{b:?} unchanged");
    }
    assert!(
        doc.path
            .iter()
            .flat_map(|h| &h.bundled)
            .any(|b| b.name == "Traefik")
    );
    // Candidates: newer releases only, no pre-release or draft, newest first.
    assert!(doc.candidates.iter().all(|c| c.version > v("v1.29.0+k3s1")));
    assert!(doc.candidates.iter().all(|c| !c.prerelease));
    assert_eq!(doc.candidates[0].version, v("v1.37.1+k3s1"));
    assert!(!doc.candidates[0].allowed, "beyond the stable target");
    assert!(doc.candidates.iter().any(|c| c.allowed));
}

#[tokio::test]
async fn k3s_prereleases_only_when_asked() {
    let e = env().await;
    let mut o = opts("latest");
    let d = k3s::detect(&e.upstream, &current("v1.37.0+k3s1"), &o)
        .await
        .unwrap();
    let versions: Vec<String> = d
        .document
        .candidates
        .iter()
        .map(|c| c.version.to_string())
        .collect();
    assert_eq!(versions, ["v1.37.1+k3s1"]);
    o.include_prereleases = true;
    let d = k3s::detect(&e.upstream, &current("v1.37.0+k3s1"), &o)
        .await
        .unwrap();
    let versions: Vec<String> = d
        .document
        .candidates
        .iter()
        .map(|c| c.version.to_string())
        .collect();
    // The draft v1.37.2+k3s1 never appears; the rc does when asked for.
    assert_eq!(versions, ["v1.37.2-rc1+k3s1", "v1.37.1+k3s1"]);
    assert!(d.document.candidates[0].prerelease);
}

#[tokio::test]
async fn k3s_channel_below_installed_gives_no_downgrade() {
    let e = env().await;
    // stable is v1.36.2+k3s1; installed is newer.
    let d = k3s::detect(&e.upstream, &current("v1.37.0+k3s1"), &opts("stable"))
        .await
        .unwrap();
    let doc = d.document;
    assert!(doc.path.is_empty(), "{:?}", hops(&doc));
    let f = doc
        .findings
        .iter()
        .find(|f| f.code == "target-below-current")
        .unwrap();
    assert!(f.message.as_str().contains("v1.36.2+k3s1"), "{f:?}");
    assert!(f.message.as_str().contains("not downgrading"));
    // A minor channel below the installed minor: the same.
    let d = k3s::detect(&e.upstream, &current("v1.31.4+k3s1"), &opts("v1.30"))
        .await
        .unwrap();
    assert!(d.document.path.is_empty());
    assert!(codes(&d.document.findings).contains(&"target-below-current"));
}

#[tokio::test]
async fn k3s_mixed_versions_and_etcd_from_a_node_dump() {
    let e = env().await;
    let inputs = Inputs::load(None, None, Some(&dump("k3s-mixed-etcd.json")))
        .await
        .unwrap();
    let d = k3s::detect(&e.upstream, &inputs, &opts("v1.30"))
        .await
        .unwrap();
    let doc = d.document;
    // The oldest node decides where the path starts.
    assert_eq!(doc.current.as_ref().unwrap().version, v("v1.29.2+k3s1"));
    let mixed = doc
        .findings
        .iter()
        .find(|f| f.code == "mixed-versions")
        .unwrap();
    assert!(mixed.message.as_str().contains("worker-2 v1.29.2+k3s1"));
    assert!(
        mixed
            .message
            .as_str()
            .contains("servers [cp-1 v1.29.4+k3s1")
    );
    assert_eq!(mixed.locations.len(), 5);
    let ds = doc.findings.iter().find(|f| f.code == "datastore").unwrap();
    assert!(ds.message.as_str().contains("embedded etcd"), "{ds:?}");
    assert_eq!(doc.observed.len(), 5);
    assert_eq!(hops(&doc), ["v1.29.11+k3s1", "v1.30.8+k3s1"]);
    // k3s's own HelmCharts and Addons are reported under k3s, with what the
    // target brings; a user's HelmChart in kube-system is not.
    let packaged: Vec<&str> = doc
        .findings
        .iter()
        .filter(|f| f.code == "k3s-packaged-component")
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(packaged.len(), 3, "{packaged:?}");
    assert!(packaged.iter().all(|m| !m.contains("my-app")));
    let traefik = packaged
        .iter()
        .find(|m| m.starts_with("HelmChart kube-system/traefik "))
        .unwrap();
    assert!(
        traefik.contains("traefik-25.0.2+up25.0.0.tgz")
            && traefik.contains("v1.30.8+k3s1 brings Traefik v"),
        "{traefik}"
    );
    assert!(
        packaged
            .iter()
            .any(|m| m.starts_with("Addon kube-system/coredns") && m.contains("CoreDNS v")),
        "{packaged:?}"
    );

    let inputs = Inputs::load(None, None, Some(&dump("k3s-v1.29-sqlite.json")))
        .await
        .unwrap();
    let d = k3s::detect(&e.upstream, &inputs, &opts("stable"))
        .await
        .unwrap();
    let doc = d.document;
    assert!(!codes(&doc.findings).contains(&"mixed-versions"));
    let ds = doc.findings.iter().find(|f| f.code == "datastore").unwrap();
    assert!(ds.message.as_str().contains("SQLite"), "{ds:?}");
}

#[tokio::test]
async fn k3s_plan_channel_from_a_real_gitops_repo() {
    let Some(repo) = realdata("gitops/billimek__k8s-gitops") else {
        return;
    };
    let e = env().await;
    let inputs = Inputs::load(None, Some(&repo), None).await.unwrap();
    let d = k3s::detect(&e.upstream, &inputs, &opts("stable"))
        .await
        .unwrap();
    let doc = d.document;
    // Its Plans follow https://update.k3s.io/v1-release/channels/v1.31.
    assert_eq!(doc.current.as_ref().unwrap().version, v("v1.31.10+k3s1"));
    assert!(doc.observed.iter().any(|l| matches!(
        l,
        Location::Gitops { path, line: Some(_), .. } if path == "system-upgrade/k3s-plan.yaml"
    )));
    assert_eq!(hops(&doc)[0], "v1.32.11+k3s3");
    assert_eq!(hops(&doc).last().unwrap(), "v1.36.2+k3s1");
}

#[tokio::test]
async fn k3s_kubernetes_api_removals_block_the_hop_that_crosses_them() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flowschema.yaml"),
        "apiVersion: flowcontrol.apiserver.k8s.io/v1beta3\nkind: FlowSchema\nmetadata:\n  name: homelab-exempt\nspec:\n  matchingPrecedence: 1000\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pdb.yaml"),
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n  namespace: default\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: api\n  namespace: default\n",
    )
    .unwrap();
    let inputs = Inputs::load(Some(v("v1.31.4+k3s1")), Some(dir.path()), None)
        .await
        .unwrap();
    let d = k3s::detect(&e.upstream, &inputs, &opts("v1.33"))
        .await
        .unwrap();
    let doc = d.document;
    let blocked: Vec<(String, Vec<(String, u32)>)> = doc
        .path
        .iter()
        .filter(|h| !h.blockers.is_empty())
        .map(|h| {
            (
                h.to.to_string(),
                h.blockers.iter().flat_map(gitops_lines).collect(),
            )
        })
        .collect();
    assert_eq!(
        blocked,
        [(
            "v1.32.11+k3s3".to_string(),
            vec![("flowschema.yaml".to_string(), 1)]
        )]
    );
    // policy/v1beta1 went in 1.25: already unusable on 1.31.
    let in_use: Vec<&Finding> = doc
        .findings
        .iter()
        .filter(|f| f.code == "removed-kubernetes-api-in-use")
        .collect();
    assert_eq!(in_use.len(), 1);
    assert_eq!(gitops_lines(in_use[0]), [("pdb.yaml".to_string(), 1)]);
}

#[tokio::test]
async fn k3s_unreachable_upstream_still_gives_the_document() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let upstream = Upstream::new(
        ClientConfig {
            max_retries: 0,
            ..ClientConfig::default()
        },
        BaseUrl::parse(&base).unwrap(),
        &format!("{base}/v1-release/channels"),
        None,
    )
    .unwrap();
    let d = k3s::detect(&upstream, &current("v1.29.0+k3s1"), &opts("stable"))
        .await
        .unwrap();
    assert!(d.upstream_failed);
    assert_eq!(d.document.errors.len(), 2);
    assert!(
        d.document
            .errors
            .iter()
            .all(|e| e.source == "upstream" && e.message.as_str().contains("cannot reach"))
    );
    assert_eq!(
        d.document.current.as_ref().unwrap().version,
        v("v1.29.0+k3s1")
    );
    assert!(d.document.path.is_empty());
}

// ---------------------------------------------------------------- Flux

/// Every `apiVersion:` line at the top level of a YAML file under `root`
/// whose value is one of `apis`, as (relative path, line): counted without
/// upkeep-gitops, to check the detector against.
fn scan_api_lines(root: &Path, apis: &[&str]) -> BTreeSet<(String, u32)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        for (i, line) in text.lines().enumerate() {
            if let Some(value) = line.strip_prefix("apiVersion:")
                && apis.contains(&value.trim().trim_matches(['"', '\'']))
            {
                out.insert((rel.clone(), u32::try_from(i + 1).unwrap()));
            }
        }
    }
    out
}

fn removed_api_blockers(doc: &ComponentUpdates, to_minor: u64) -> BTreeSet<(String, u32)> {
    let hop = doc
        .path
        .iter()
        .find(|h| h.to.major() == 2 && h.to.minor() == to_minor)
        .unwrap_or_else(|| panic!("no hop to v2.{to_minor}: {:?}", hops(doc)));
    let blockers: Vec<&Finding> = hop
        .blockers
        .iter()
        .filter(|b| b.code == "removed-api")
        .collect();
    assert!(blockers.iter().all(|b| b.severity == Severity::Blocking));
    let set: BTreeSet<(String, u32)> = blockers.iter().flat_map(|b| gitops_lines(b)).collect();
    assert_eq!(set.len(), blockers.len(), "one blocker per object");
    set
}

#[tokio::test]
async fn flux_billimek_v251_blockers_of_the_hop_to_28() {
    let Some(repo) = realdata("gitops/billimek__k8s-gitops") else {
        return;
    };
    let e = env().await;
    let inputs = Inputs::load(None, Some(&repo), None).await.unwrap();
    let d = flux::detect(&e.upstream, &inputs, &opts("latest"))
        .await
        .unwrap();
    let doc = d.document;
    assert_eq!(doc.current.as_ref().unwrap().version, v("v2.5.1"));
    assert!(doc.observed.contains(&Location::Gitops {
        path: "flux-system/gotk-components.yaml".to_string(),
        line: Some(3),
        object: None
    }));
    // v2.5.1 is the last 2.5 patch: one hop per minor line from 2.6 to 2.9.
    let minors: Vec<u64> = doc.path.iter().map(|h| h.to.minor()).collect();
    assert_eq!(minors, [6, 7, 8, 9]);
    assert_eq!(doc.path[0].from, v("v2.5.1"));

    let expected = scan_api_lines(
        &repo,
        &[
            "helm.toolkit.fluxcd.io/v2beta2",
            "source.toolkit.fluxcd.io/v1beta2",
            "kustomize.toolkit.fluxcd.io/v1beta2",
        ],
    );
    // The repo's README facts: four HelmReleases on v2beta2, and its
    // HelmRepositories, GitRepository and Kustomizations on v1beta2.
    assert!(expected.len() > 4, "{expected:?}");
    assert_eq!(removed_api_blockers(&doc, 8), expected);
    let hr = doc.path[2]
        .blockers
        .iter()
        .filter(|b| b.message.as_str().contains("HelmRelease"))
        .count();
    assert_eq!(hr, 4);
    assert!(
        doc.path[2].blockers[0]
            .message
            .as_str()
            .contains("which Flux v2.8 removes: migrate it to")
    );
    // What 2.7 removes (its notes list every v1beta1 and helm v2beta1): the
    // notification Alerts and Provider still on v1beta1.
    let v1beta1 = scan_api_lines(
        &repo,
        &[
            "helm.toolkit.fluxcd.io/v2beta1",
            "source.toolkit.fluxcd.io/v1beta1",
            "kustomize.toolkit.fluxcd.io/v1beta1",
            "image.toolkit.fluxcd.io/v1beta1",
            "notification.toolkit.fluxcd.io/v1beta1",
        ],
    );
    assert!(!v1beta1.is_empty());
    assert_eq!(removed_api_blockers(&doc, 7), v1beta1);
    // Each hop says which Kubernetes versions it supports.
    let r = doc.path[2]
        .requires
        .as_ref()
        .unwrap()
        .kubernetes
        .as_ref()
        .unwrap();
    assert_eq!(r.as_str(), ">=1.33.0-0 <1.36.0-0");
}

#[tokio::test]
async fn flux_cluster_template_v0412_and_its_v2beta1_objects() {
    let Some(repo) = realdata("gitops/onedr0p__flux-cluster-template/kubernetes") else {
        return;
    };
    let e = env().await;
    let inputs = Inputs::load(None, Some(&repo), None).await.unwrap();
    let d = flux::detect(&e.upstream, &inputs, &opts("latest"))
        .await
        .unwrap();
    let doc = d.document;
    assert_eq!(doc.current.as_ref().unwrap().version, v("v0.41.2"));
    assert!(doc.observed.iter().any(|l| matches!(
        l,
        Location::Gitops { path, .. } if path == "bootstrap/kustomization.yaml"
    )));
    // v0.41.2 is the last 0.41 patch; 0.41 → 2.0 is the next released
    // line, then one minor at a time.
    let minors: Vec<(u64, u64)> = doc
        .path
        .iter()
        .map(|h| (h.to.major(), h.to.minor()))
        .collect();
    assert_eq!(minors[0], (2, 0));
    assert_eq!(doc.path[0].from, v("v0.41.2"));
    assert_eq!(minors.last(), Some(&(2, 9)));
    for w in minors.windows(2) {
        assert_eq!(w[1].1, w[0].1 + 1, "{minors:?}");
    }
    let expected = scan_api_lines(
        &repo,
        &[
            "helm.toolkit.fluxcd.io/v2beta1",
            "source.toolkit.fluxcd.io/v1beta1",
            "kustomize.toolkit.fluxcd.io/v1beta1",
            "image.toolkit.fluxcd.io/v1beta1",
            "notification.toolkit.fluxcd.io/v1beta1",
        ],
    );
    let v2beta1 = scan_api_lines(&repo, &["helm.toolkit.fluxcd.io/v2beta1"]);
    assert!(v2beta1.len() >= 13, "{v2beta1:?}");
    assert_eq!(removed_api_blockers(&doc, 7), expected);
}

#[tokio::test]
async fn flux_kubernetes_range_and_stored_versions_from_a_cluster_dump() {
    let e = env().await;
    let inputs = Inputs::load(None, None, Some(&dump("flux-v2.5-stored-versions.json")))
        .await
        .unwrap();
    let d = flux::detect(&e.upstream, &inputs, &opts("latest"))
        .await
        .unwrap();
    let doc = d.document;
    assert_eq!(doc.current.as_ref().unwrap().version, v("v2.5.1"));
    assert!(
        matches!(&doc.observed[0], Location::Cluster { object, .. } if object.kind == "Namespace")
    );
    let stored = |minor: u64| -> Vec<String> {
        doc.path
            .iter()
            .find(|h| h.to.minor() == minor)
            .unwrap()
            .blockers
            .iter()
            .filter(|b| b.code == "removed-api-stored")
            .map(|b| {
                let Location::Cluster { object, .. } = &b.locations[0] else {
                    panic!("{b:?}")
                };
                let version = b
                    .message
                    .as_str()
                    .split("still lists ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap();
                format!("{} {version}", object.name)
            })
            .collect()
    };
    assert_eq!(stored(7), ["helmreleases.helm.toolkit.fluxcd.io v2beta1"]);
    assert_eq!(
        stored(8),
        [
            "helmreleases.helm.toolkit.fluxcd.io v2beta2",
            "helmrepositories.source.toolkit.fluxcd.io v1beta2"
        ]
    );
    // The nodes run Kubernetes 1.31: Flux 2.6 (1.31-1.33) supports it; 2.7
    // (1.32-1.34), 2.8 (1.33-1.35) and 2.9 (1.34-1.36) do not.
    let unsupported: Vec<u64> = doc
        .path
        .iter()
        .filter(|h| {
            h.blockers
                .iter()
                .any(|b| b.code == "kubernetes-unsupported")
        })
        .map(|h| h.to.minor())
        .collect();
    assert_eq!(unsupported, [7, 8, 9]);

    // The flag wins over the nodes.
    let mut o = opts("latest");
    o.kubernetes_version = Some(v("1.34.1"));
    let d = flux::detect(&e.upstream, &current("v2.5.1"), &o)
        .await
        .unwrap();
    let unsupported: Vec<u64> = d
        .document
        .path
        .iter()
        .filter(|h| {
            h.blockers
                .iter()
                .any(|b| b.code == "kubernetes-unsupported")
        })
        .map(|h| h.to.minor())
        .collect();
    // 1.34 is outside 2.6's 1.31-1.33 only.
    assert_eq!(unsupported, [6]);
}

#[tokio::test]
async fn versions_from_the_running_images() {
    let e = env().await;
    let inputs = Inputs::load(None, None, Some(&dump("workload-images.json")))
        .await
        .unwrap();
    let d = flux::detect(&e.upstream, &inputs, &opts("latest"))
        .await
        .unwrap();
    let doc = d.document;
    // kustomize-controller v1.5.1 first ships in v2.5.1; v2.5.0 had v1.5.0.
    assert_eq!(doc.current.as_ref().unwrap().version, v("v2.5.1"));
    let Location::Cluster { object, field } = &doc.observed[0] else {
        panic!("{:?}", doc.observed)
    };
    assert_eq!(object.kind, "Deployment");
    assert_eq!(
        field.as_deref(),
        Some("spec.template.spec.containers[0].image")
    );
    let d = longhorn::detect(&e.upstream, &inputs, &opts("latest"))
        .await
        .unwrap();
    let doc = d.document;
    assert_eq!(doc.current.as_ref().unwrap().version, v("v1.10.1"));
    assert_eq!(hops(&doc), ["v1.10.2", "v1.11.3", "v1.12.1"]);

    // Controllers from two different releases: no version, a finding naming them.
    let text = std::fs::read_to_string(workspace().join("testdata/clusters/workload-images.json"))
        .unwrap()
        .replace("helm-controller:v1.2.0", "helm-controller:v1.6.3");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.json");
    std::fs::write(&path, text).unwrap();
    let inputs = Inputs::load(None, None, Some(&DumpFile::new(&path)))
        .await
        .unwrap();
    let d = flux::detect(&e.upstream, &inputs, &opts("latest"))
        .await
        .unwrap();
    let doc = d.document;
    assert!(doc.current.is_none());
    let f = doc
        .findings
        .iter()
        .find(|f| f.code == "flux-controllers-unmatched")
        .expect("mixed controllers finding");
    assert!(
        f.message.as_str().contains("helm-controller v1.6.3"),
        "{}",
        f.message
    );
    assert_eq!(f.locations.len(), 4);
    assert!(codes(&doc.findings).contains(&"current-unknown"));
}

#[tokio::test]
async fn flux_instance_version_and_apis_already_removed() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flux-instance.yaml"),
        "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: flux-system\nspec:\n  distribution:\n    version: \"2.7.x\"\n    registry: ghcr.io/fluxcd\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("podinfo.yaml"),
        "apiVersion: helm.toolkit.fluxcd.io/v2beta1\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: apps\nspec:\n  interval: 10m\n",
    )
    .unwrap();
    let inputs = Inputs::load(None, Some(dir.path()), None).await.unwrap();
    let d = flux::detect(&e.upstream, &inputs, &opts("latest"))
        .await
        .unwrap();
    let doc = d.document;
    // "2.7.x" is what the Flux Operator installs: the newest 2.7 release.
    assert_eq!(doc.current.as_ref().unwrap().version, v("v2.7.5"));
    assert_eq!(
        doc.observed,
        [Location::Gitops {
            path: "flux-instance.yaml".to_string(),
            line: Some(8),
            object: Some(upkeep_contract::ObjectRef {
                api_version: "fluxcd.controlplane.io/v1".to_string(),
                kind: "FluxInstance".to_string(),
                namespace: Some("flux-system".to_string()),
                name: "flux".to_string(),
            }),
        }]
    );
    // v2beta1 went with 2.7.0, which is installed: a blocking finding now,
    // not a blocker of a later hop.
    let in_use: Vec<&Finding> = doc
        .findings
        .iter()
        .filter(|f| f.code == "removed-api-in-use")
        .collect();
    assert_eq!(in_use.len(), 1);
    assert_eq!(in_use[0].severity, Severity::Blocking);
    assert_eq!(gitops_lines(in_use[0]), [("podinfo.yaml".to_string(), 1)]);
    assert!(
        in_use[0]
            .message
            .as_str()
            .contains("helm.toolkit.fluxcd.io/v2")
    );
    assert!(
        doc.path
            .iter()
            .all(|h| h.blockers.iter().all(|b| b.code != "removed-api"))
    );
}

#[tokio::test]
async fn flux_has_no_stable_channel() {
    let e = env().await;
    let err = flux::detect(&e.upstream, &current("v2.5.1"), &opts("stable"))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("--target:"), "{err}");
}

// ---------------------------------------------------------------- Longhorn

#[tokio::test]
async fn longhorn_19_to_112_goes_through_every_minor() {
    let e = env().await;
    let d = longhorn::detect(&e.upstream, &current("v1.9.2"), &opts("v1.12.1"))
        .await
        .unwrap();
    let doc = d.document;
    assert_eq!(hops(&doc), ["v1.10.2", "v1.11.3", "v1.12.1"]);
    let k = |i: usize| {
        doc.path[i]
            .requires
            .as_ref()
            .and_then(|r| r.kubernetes.as_ref())
            .map(|c| c.as_str().to_string())
    };
    assert_eq!(k(0).as_deref(), Some(">=1.25.0-0"));
    assert_eq!(k(1).as_deref(), Some(">=1.34.0-0"));
    // Release candidates are not candidates.
    assert!(doc.candidates.iter().all(|c| !c.prerelease));
    assert!(
        doc.path[2]
            .breaking
            .as_ref()
            .unwrap()
            .reasons
            .iter()
            .any(|r| r.as_str().contains("Removal"))
    );
    // Starting below the newest 1.9 patch: that patch first.
    let d = longhorn::detect(&e.upstream, &current("v1.9.0"), &opts("latest"))
        .await
        .unwrap();
    assert_eq!(
        hops(&d.document),
        ["v1.9.2", "v1.10.2", "v1.11.3", "v1.12.1"]
    );
    // Never a downgrade.
    let d = longhorn::detect(&e.upstream, &current("v1.12.1"), &opts("v1.11"))
        .await
        .unwrap();
    assert!(d.document.path.is_empty());
    assert!(codes(&d.document.findings).contains(&"target-below-current"));
}

#[tokio::test]
async fn known_bad_releases_are_never_offered() {
    let e = env().await;
    let mut o = opts("v1.12.1");
    o.known_bad = vec![v("v1.11.3"), v("v1.10.1")];
    // Even when pre-releases are asked for.
    o.include_prereleases = true;
    let d = longhorn::detect(&e.upstream, &current("v1.9.2"), &o)
        .await
        .unwrap();
    let doc = d.document;
    // The 1.11 hop lands on the newest release of the line that is not known-bad.
    assert_eq!(hops(&doc), ["v1.10.2", "v1.11.3-rc2", "v1.12.1"]);
    o.include_prereleases = false;
    let d = longhorn::detect(&e.upstream, &current("v1.9.2"), &o)
        .await
        .unwrap();
    let doc = d.document;
    assert_eq!(hops(&doc), ["v1.10.2", "v1.11.2", "v1.12.1"]);
    assert!(
        doc.candidates
            .iter()
            .all(|c| c.version != v("v1.11.3") && c.version != v("v1.10.1"))
    );
    let bad: Vec<&str> = doc
        .findings
        .iter()
        .filter(|f| f.code == "known-bad-release")
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].starts_with("v1.10.1 is not offered: listed as known-bad"));
    // Known-bad releases below the installed version are not worth a word.
    let d = longhorn::detect(&e.upstream, &current("v1.12.1"), &o)
        .await
        .unwrap();
    assert!(!codes(&d.document.findings).contains(&"known-bad-release"));
}

#[tokio::test]
async fn longhorn_faulted_volume_blocks() {
    let e = env().await;
    let inputs = Inputs::load(None, None, Some(&dump("longhorn-v1.9-faulted.json")))
        .await
        .unwrap();
    let d = longhorn::detect(&e.upstream, &inputs, &opts("latest"))
        .await
        .unwrap();
    let doc = d.document;
    assert_eq!(doc.current.as_ref().unwrap().version, v("v1.9.0"));
    let blocking: Vec<(&str, &str)> = doc
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Blocking)
        .map(|f| (f.code.as_str(), f.message.as_str()))
        .collect();
    assert!(
        blocking
            .iter()
            .any(|(c, m)| *c == "volume-faulted" && m.contains("pvc-7c1e-faulted")),
        "{blocking:?}"
    );
    assert!(
        blocking
            .iter()
            .any(|(c, m)| *c == "volume-degraded" && m.contains("pvc-9b4d-degraded"))
    );
    assert!(
        blocking
            .iter()
            .any(|(c, m)| *c == "disk-unschedulable" && m.contains("ssd-2") && m.contains("k8s-3"))
    );
    // Healthy and detached (robustness unknown) volumes are fine.
    assert!(
        blocking
            .iter()
            .all(|(_, m)| !m.contains("healthy") && !m.contains("pvc-0a11"))
    );
    assert_eq!(blocking.len(), 3, "{blocking:?}");
    assert!(doc.has_blocking());
    // Kubernetes 1.33 on the nodes: the hop to 1.11.3 (needs 1.34) is blocked.
    let blocked: Vec<String> = doc
        .path
        .iter()
        .filter(|h| h.blockers.iter().any(|b| b.code == "kubernetes-too-old"))
        .map(|h| h.to.to_string())
        .collect();
    assert_eq!(blocked, ["v1.11.3"]);
}

#[tokio::test]
async fn longhorn_version_range_in_a_gitops_helmrelease() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("helmrelease.yaml"),
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: longhorn\n  namespace: longhorn-system\nspec:\n  interval: 30m\n  chart:\n    spec:\n      chart: longhorn\n      version: 1.10.x\n      sourceRef:\n        kind: HelmRepository\n        name: longhorn\n",
    )
    .unwrap();
    let inputs = Inputs::load(None, Some(dir.path()), None).await.unwrap();
    let d = longhorn::detect(&e.upstream, &inputs, &opts("latest"))
        .await
        .unwrap();
    let cur = d.document.current.as_ref().unwrap();
    assert_eq!(cur.version, v("v1.10.2"));
    assert_eq!(cur.constraint.as_ref().unwrap().as_str(), "1.10.x");
    assert_eq!(
        d.document.observed,
        [Location::Gitops {
            path: "helmrelease.yaml".to_string(),
            line: Some(11),
            object: Some(upkeep_contract::ObjectRef {
                api_version: "helm.toolkit.fluxcd.io/v2".to_string(),
                kind: "HelmRelease".to_string(),
                namespace: Some("longhorn-system".to_string()),
                name: "longhorn".to_string(),
            }),
        }]
    );
    assert_eq!(hops(&d.document), ["v1.11.3", "v1.12.1"]);
    assert!(e.sim.requests().len() >= 2);
}

#[test]
fn target_parsing_is_strict() {
    assert!("v1.31".parse::<Target>().is_ok());
    assert!("next".parse::<Target>().is_err());
}
