//! Chart updates for every Flux HelmRelease of a GitOps checkout.
//!
//! [`detect`] takes a scanned checkout ([`upkeep_gitops::Tree`]), resolves
//! each HelmRelease's chart source as Flux does, fetches every repository
//! once (concurrently, bounded, through the shared HTTP client and its
//! cache), and writes one [`ComponentUpdates`] per HelmRelease: the current
//! version (where in the checkout it is set, to the line), the latest
//! overall and allowed, and the candidates with update type, security,
//! breaking changes and Kubernetes requirements. The version rules are in
//! the `analyze` module's docs. A repository that cannot be read leaves
//! its error in `errors` of every release that needs it; the documents are
//! always all written.

mod analyze;
mod resolve;

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use upkeep_contract::{
    Component, ComponentKind, ComponentUpdates, DocError, SafeText, Source, Timestamp,
};
use upkeep_gitops::Tree;
use upkeep_helm::Repositories;
use upkeep_version::Version;

use analyze::Published;
use resolve::Upstream;

/// How [`detect`] runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cluster's Kubernetes version; versions whose `kubeVersion`
    /// excludes it are held back. `None` skips that check.
    pub kubernetes: Option<Version>,
    /// Repositories fetched at the same time.
    pub concurrency: usize,
    /// `checkedAt` of every document.
    pub checked_at: Timestamp,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kubernetes: None,
            concurrency: 8,
            checked_at: Timestamp::now(),
        }
    }
}

/// What one repository gave: versions by chart, or the error for everyone
/// who needs it.
type Fetched = Result<BTreeMap<String, Vec<Published>>, (String, String)>;

/// One document per HelmRelease, in file order.
pub async fn detect(tree: &Tree, repos: &Repositories, options: &Options) -> Vec<ComponentUpdates> {
    let releases = resolve::releases(tree);

    // Each upstream once, with every chart wanted from it.
    let mut wanted: BTreeMap<Upstream, BTreeSet<String>> = BTreeMap::new();
    for r in &releases {
        match &r.upstream {
            Upstream::Index { repo, chart } => {
                wanted
                    .entry(Upstream::Index {
                        repo: repo.trim_end_matches('/').to_string(),
                        chart: String::new(),
                    })
                    .or_default()
                    .insert(chart.clone());
            }
            Upstream::OciTags { url } => {
                wanted
                    .entry(Upstream::OciTags { url: url.clone() })
                    .or_default();
            }
            Upstream::None => {}
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

    releases
        .into_iter()
        .map(|r| {
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
            doc.observed.push(r.observed.clone());
            doc.findings = r.findings;
            let (key, chart) = match &r.upstream {
                Upstream::Index { repo, chart } => (
                    Upstream::Index {
                        repo: repo.trim_end_matches('/').to_string(),
                        chart: String::new(),
                    },
                    chart.clone(),
                ),
                Upstream::OciTags { url } => {
                    (Upstream::OciTags { url: url.clone() }, String::new())
                }
                Upstream::None => {
                    // Still say what is pinned, even when nothing can be compared.
                    analyze::analyze(&mut doc, r.constraint, &[], options.kubernetes.as_ref());
                    return doc;
                }
            };
            let published: &[Published] = match fetched.get(&key) {
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
            };
            analyze::analyze(
                &mut doc,
                r.constraint,
                published,
                options.kubernetes.as_ref(),
            );
            doc
        })
        .collect()
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
