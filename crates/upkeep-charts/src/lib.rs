//! Chart updates for every Flux HelmRelease of a GitOps checkout, of a
//! cluster, or of both.
//!
//! [`detect`] takes a scanned checkout ([`upkeep_gitops::Tree`]) and/or the
//! cluster's objects ([`ClusterState`], read by [`cluster::read`] from a
//! live cluster or a `kubectl get -o json` file), resolves each
//! HelmRelease's chart source as Flux does, fetches every repository once
//! (concurrently, bounded, through the shared HTTP client and its cache),
//! and writes one [`ComponentUpdates`] per HelmRelease: the current version
//! (installed, from the cluster's status, when known; else the one the
//! checkout selects), where it was read (the cluster object's field and the
//! checkout's file:line), the latest overall and allowed, and the
//! candidates with update type, security, breaking changes and Kubernetes
//! requirements. The version rules are in the `analyze` module's docs. A
//! repository that cannot be read leaves its error in `errors` of every
//! release that needs it; the documents are always all written.
//!
//! With the cluster as an input, each document also says where the cluster
//! and what it was asked for disagree: `installed-differs`,
//! `release-failed`, `release-stuck`, `auto-update-in-range` (Flux will
//! install a newer version by itself), `needs-git-change` (the newest
//! version is outside the range); with both inputs, `spec-differs`
//! (the checkout is not applied yet), `cluster-only` and `checkout-only`.

mod analyze;
pub mod cli;
pub mod cluster;
mod resolve;
mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::StreamExt;
use upkeep_contract::{
    Component, ComponentKind, ComponentUpdates, DocError, Finding, Location, SafeText, Severity,
    Source, Timestamp,
};
use upkeep_gitops::Tree;
use upkeep_helm::Repositories;
use upkeep_version::Version;

use analyze::{Desired, Published};
pub use cluster::{ClusterError, ClusterState};
use resolve::{Release, Upstream};

/// How [`detect`] runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cluster's Kubernetes version; versions whose `kubeVersion`
    /// excludes it are held back. `None` skips that check.
    pub kubernetes: Option<Version>,
    /// Repositories fetched at the same time.
    pub concurrency: usize,
    /// `checkedAt` of every document, and "now" for how long a release
    /// has been reconciling.
    pub checked_at: Timestamp,
    /// A release reconciling for longer than this is reported stuck.
    pub stuck_after: Duration,
}

/// helm-controller's default timeout for an install or upgrade is 5
/// minutes; twice that without finishing is not progress any more.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(10 * 60);

impl Default for Options {
    fn default() -> Self {
        Options {
            kubernetes: None,
            concurrency: 8,
            checked_at: Timestamp::now(),
            stuck_after: DEFAULT_STUCK_AFTER,
        }
    }
}

/// What [`detect`] reads: a checkout, the cluster, or both.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    pub gitops: Option<&'a Tree>,
    pub cluster: Option<&'a ClusterState>,
}

/// What one repository gave: versions by chart, or the error for everyone
/// who needs it.
type Fetched = Result<BTreeMap<String, Vec<Published>>, (String, String)>;

/// One HelmRelease as the inputs give it, matched by namespace/name.
struct Entry<'t> {
    gitops: Option<Release<'t>>,
    cluster: Option<(Release<'t>, &'t serde_json::Value)>,
}

impl<'t> Entry<'t> {
    /// The side whose spec is checked against upstream: the checkout (Git
    /// is the source of truth, and its file:line is where a change goes),
    /// unless only the cluster could resolve the source (a `${VAR}`
    /// substitution, a source outside the checkout).
    /// `None` only for an entry with neither side, which [`entries`] never makes.
    fn desired(&self) -> Option<&Release<'t>> {
        match (&self.gitops, &self.cluster) {
            (Some(g), Some((c, _)))
                if g.upstream == Upstream::None && c.upstream != Upstream::None =>
            {
                Some(c)
            }
            (Some(g), _) => Some(g),
            (None, Some((c, _))) => Some(c),
            (None, None) => None,
        }
    }
}

/// The key every upstream is fetched under, and the chart wanted from it.
fn upstream_key(u: &Upstream) -> Option<(Upstream, String)> {
    match u {
        Upstream::Index { repo, chart } => Some((
            Upstream::Index {
                repo: repo.trim_end_matches('/').to_string(),
                chart: String::new(),
            },
            chart.clone(),
        )),
        Upstream::OciTags { url } => Some((Upstream::OciTags { url: url.clone() }, String::new())),
        Upstream::None => None,
    }
}

fn finding(severity: Severity, code: &str, message: String, locations: Vec<Location>) -> Finding {
    Finding {
        severity,
        code: code.to_string(),
        message: SafeText::new(&message),
        locations,
    }
}

/// Pairs the checkout's and the cluster's releases by namespace/name: the
/// checkout's in file order, then the cluster-only ones by namespace/name.
fn entries<'t>(inputs: &Inputs<'t>) -> Vec<Entry<'t>> {
    let mut out: Vec<Entry<'t>> = Vec::new();
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    if let Some(tree) = inputs.gitops {
        for r in resolve::releases(tree) {
            let key = (r.namespace.clone(), r.name.clone());
            if index.contains_key(&key) {
                // Two clusters in one repository may each hold it; the cluster read is one of them.
                out.push(Entry {
                    gitops: Some(r),
                    cluster: None,
                });
                continue;
            }
            index.insert(key, out.len());
            out.push(Entry {
                gitops: Some(r),
                cluster: None,
            });
        }
    }
    if let Some(state) = inputs.cluster {
        for cr in state.releases() {
            let r = resolve::resolve(state, &cr.object);
            let key = (r.namespace.clone(), r.name.clone());
            match index.get(&key) {
                Some(&i) if out[i].cluster.is_none() => out[i].cluster = Some((r, &cr.raw)),
                _ => out.push(Entry {
                    gitops: None,
                    cluster: Some((r, &cr.raw)),
                }),
            }
        }
    }
    out
}

/// One document per HelmRelease: the checkout's in file order, then those
/// only the cluster has.
pub async fn detect(
    inputs: Inputs<'_>,
    repos: &Repositories,
    options: &Options,
) -> Vec<ComponentUpdates> {
    let entries = entries(&inputs);
    let both = inputs.gitops.is_some() && inputs.cluster.is_some();

    // Each upstream once, with every chart wanted from it.
    let mut wanted: BTreeMap<Upstream, BTreeSet<String>> = BTreeMap::new();
    for e in &entries {
        if let Some((key, chart)) = e.desired().and_then(|r| upstream_key(&r.upstream)) {
            let charts = wanted.entry(key).or_default();
            if !chart.is_empty() {
                charts.insert(chart);
            }
        }
    }
    let fetched: BTreeMap<Upstream, Fetched> =
        futures_util::stream::iter(wanted.into_iter().map(|(key, charts)| async move {
            let result = fetch(repos, &key, &charts).await;
            (key, result)
        }))
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;

    entries
        .iter()
        .filter_map(|e| document(e, inputs.gitops, both, &fetched, options))
        .collect()
}

fn document(
    e: &Entry<'_>,
    tree: Option<&Tree>,
    both: bool,
    fetched: &BTreeMap<Upstream, Fetched>,
    options: &Options,
) -> Option<ComponentUpdates> {
    let r = e.desired()?;
    let mut doc = ComponentUpdates::new(
        Component {
            kind: ComponentKind::Chart,
            name: r.name.clone(),
            namespace: Some(r.namespace.clone()),
            source: r.source_type.map(|t| Source {
                source_type: t,
                url: r.source_url.clone().unwrap_or_default(),
                chart: r.chart.clone(),
            }),
        },
        options.checked_at,
    );
    doc.findings = r.findings.clone();
    // What Flux installs before this release: the plan orders their updates first.
    if let upkeep_gitops::Spec::HelmRelease(spec) = &r.hr.spec {
        doc.depends_on = spec
            .depends_on
            .iter()
            .map(|d| {
                let ns = d
                    .namespace
                    .as_ref()
                    .map_or(r.namespace.as_str(), |n| n.value.as_str());
                format!("{ns}/{}", d.name.value)
            })
            .collect();
    }
    // And what Flux applies first because this release's Kustomization
    // dependsOn theirs.
    if let (Some(tree), Some(g)) = (tree, &e.gitops) {
        for o in tree.flux_dependencies(g.hr) {
            if o.kind.value != "HelmRelease" || o.group() != "helm.toolkit.fluxcd.io" {
                continue;
            }
            let key = format!(
                "{}/{}",
                o.namespace().unwrap_or("default"),
                o.name().unwrap_or_default()
            );
            if !doc.depends_on.contains(&key) {
                doc.depends_on.push(key);
            }
        }
    }

    // What the cluster runs, and where that was read.
    let mut installed: Option<Version> = None;
    let mut cluster_at: Option<Location> = None;
    if let Some((c, raw)) = &e.cluster {
        let hr_at = cluster::location(c.hr, None);
        match status::installed(raw) {
            Some((revision, field)) => {
                cluster_at = Some(cluster::location(c.hr, Some(field)));
                match Version::parse(status::revision_version(&revision)) {
                    Ok(v) => installed = Some(v),
                    Err(err) => doc.findings.push(finding(
                        Severity::Warning,
                        "invalid-version",
                        format!("{field} {revision:?} is not a version: {err}"),
                        vec![hr_at.clone()],
                    )),
                }
            }
            None => {
                cluster_at = Some(hr_at.clone());
                doc.findings.push(finding(
                    Severity::Warning,
                    "not-installed",
                    "the HelmRelease's status names no installed chart version (never released, or still installing)".to_string(),
                    vec![hr_at.clone()],
                ));
            }
        }
        doc.findings.extend(status::health(
            raw,
            options.checked_at,
            options.stuck_after,
            &hr_at,
        ));
    }
    // The cluster first: `current` is what it runs.
    doc.observed.extend(cluster_at.clone());
    if let Some(g) = &e.gitops {
        doc.observed.push(g.observed.clone());
    }
    if e.gitops.is_none() && e.cluster.is_some() && !resolve::in_cluster(r.hr) {
        doc.observed.push(r.observed.clone());
    }

    if both {
        both_sides(&mut doc, e);
    }

    let published: &[Published] = match upstream_key(&r.upstream) {
        None => &[],
        Some((key, chart)) => match fetched.get(&key) {
            Some(Ok(charts)) => match charts.get(&chart) {
                Some(p) => p,
                None => {
                    doc.errors.push(DocError {
                        source: "upstream".into(),
                        message: SafeText::new(&format!(
                            "chart {chart:?} is not in the repository's index"
                        )),
                        target: r.source_url.clone(),
                    });
                    &[]
                }
            },
            Some(Err((target, message))) => {
                doc.errors.push(DocError {
                    source: "upstream".into(),
                    message: SafeText::new(message),
                    target: Some(target.clone()),
                });
                &[]
            }
            None => &[],
        },
    };
    let desired = analyze::analyze(
        &mut doc,
        r.constraint,
        published,
        options.kubernetes.as_ref(),
        installed.as_ref(),
    );
    if let Some(installed) = &installed {
        reconcile(
            &mut doc,
            r,
            installed,
            &desired,
            cluster_at,
            !published.is_empty(),
        );
    }
    Some(doc)
}

/// Where the checkout and the cluster disagree about one release.
fn both_sides(doc: &mut ComponentUpdates, e: &Entry<'_>) {
    match (&e.gitops, &e.cluster) {
        (Some(g), None) => doc.findings.push(finding(
            Severity::Warning,
            "checkout-only",
            format!(
                "HelmRelease {}/{} is in the checkout but not in the cluster: not applied yet, its Flux Kustomization fails, or the checkout is another cluster's",
                g.namespace, g.name
            ),
            vec![g.observed.clone()],
        )),
        (None, Some((c, _))) => doc.findings.push(finding(
            Severity::Warning,
            "cluster-only",
            format!(
                "HelmRelease {}/{} is in the cluster but not in the checkout: created by hand or from another repository, so a Git change will not update it",
                c.namespace, c.name
            ),
            vec![cluster::location(c.hr, None)],
        )),
        (Some(g), Some((c, _))) => {
            let text = |r: &Release<'_>| r.constraint.map(|f| f.value.clone());
            let (want, applied) = (text(g), text(c));
            if want != applied {
                doc.findings.push(finding(
                    Severity::Info,
                    "spec-differs",
                    format!(
                        "the checkout asks for version {} and the cluster's spec for {}: Flux has not applied the checkout yet",
                        want.as_deref().unwrap_or("(none, the newest)"),
                        applied.as_deref().unwrap_or("(none, the newest)")
                    ),
                    vec![g.observed.clone(), cluster::location(c.hr, Some("spec.chart.spec.version"))],
                ));
            }
        }
        (None, None) => {}
    }
}

/// Installed against desired and published: what Flux will do by itself
/// and what needs a change in Git.
fn reconcile(
    doc: &mut ComponentUpdates,
    r: &Release<'_>,
    installed: &Version,
    desired: &Desired,
    cluster_at: Option<Location>,
    have_versions: bool,
) {
    let Some(constraint) = &desired.constraint else {
        return;
    };
    let spec_at = r.observed.clone();
    let locations: Vec<Location> = cluster_at.into_iter().chain([spec_at.clone()]).collect();
    if let Some(pin) = constraint
        .exact()
        .filter(|p| p.without_build() != installed.without_build())
    {
        doc.findings.push(finding(
            Severity::Warning,
            "installed-differs",
            format!("{installed} is installed but the HelmRelease pins {pin}"),
            locations.clone(),
        ));
    } else if !constraint.matches(installed) {
        let then = desired
            .version
            .as_ref()
            .map(|v| format!(" (Flux would install {v})"))
            .unwrap_or_default();
        doc.findings.push(finding(
            Severity::Warning,
            "installed-differs",
            format!("{installed} is installed but the HelmRelease asks for {constraint}{then}"),
            locations.clone(),
        ));
    } else if let Some(next) = doc.latest_allowed.as_ref().filter(|v| *v > installed) {
        doc.findings.push(finding(
            Severity::Info,
            "auto-update-in-range",
            format!(
                "{next} is allowed by {constraint}: Flux installs it by itself at the chart's next reconcile, without a Git change"
            ),
            locations.clone(),
        ));
    }
    if !have_versions {
        return;
    }
    if let Some(c) = doc.candidates.iter().find(|c| !c.allowed) {
        let where_ = match &spec_at {
            Location::Gitops { path, line, .. } => match line {
                Some(l) => format!(" at {path}:{l}"),
                None => format!(" in {path}"),
            },
            _ => String::new(),
        };
        doc.findings.push(finding(
            Severity::Info,
            "needs-git-change",
            format!(
                "{} is outside {constraint}: it needs the version changed in Git{where_}",
                c.version
            ),
            vec![spec_at],
        ));
    }
}

async fn fetch(repos: &Repositories, key: &Upstream, charts: &BTreeSet<String>) -> Fetched {
    match key {
        Upstream::Index { repo, .. } => {
            let target = repos
                .index_url(repo)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| repo.clone());
            tracing::debug!(repo = %target, "fetching index");
            let index = repos
                .index(repo, charts)
                .await
                .map_err(|e| (target, e.to_string()))?;
            Ok(index
                .entries
                .into_iter()
                .map(|(name, versions)| {
                    let p = versions.iter().filter_map(Published::from_index).collect();
                    (name, p)
                })
                .collect())
        }
        Upstream::OciTags { url } => {
            tracing::debug!(repo = %url, "listing OCI tags");
            let tags = repos
                .oci_tags(url)
                .await
                .map_err(|e| (repos.mirrored(url), e.to_string()))?;
            let p = tags.iter().filter_map(|t| Published::from_tag(t)).collect();
            Ok(BTreeMap::from([(String::new(), p)]))
        }
        Upstream::None => Ok(BTreeMap::new()),
    }
}
